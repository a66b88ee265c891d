"""What the models and the list dataset need to know about the list retriever, without its fitting
code: which keys configure it, which RecBole models can retrieve, how its vectors become queries,
and the config of its run (built by the config object it is handed, so this module needs no
``Config``). Fitting: :mod:`~recbole_dnr.retrieval.recbole_retriever`."""

import torch

from recbole_dnr.errors import UserInputError
from recbole_dnr.recbole_models import REPRESENTATION_MODELS, recbole_class

RETRIEVER_KEYS = {
    "retriever_embedding_size": "embedding_size",
    "retriever_epochs": "epochs",
    "retriever_learning_rate": "learning_rate",
    "retriever_batch_size": "train_batch_size",
}
# Keys added after the lists' cache format was fixed, with the value that reproduces the lists of
# before: hashed into the cache key only when set otherwise, so existing caches stay valid.
LATER_KEYS = {"retriever_loader": "recbole", "retriever_model": "BPR", "retriever_search": "exact",
              "ann_index": "ivf", "ann_nlist": 0, "ann_nprobe": 16, "ann_hnsw_m": 32, "ann_ef_search": 128,
              "ann_ef_construction": 200}
_COPIED_KEYS = ["seed", "reproducibility", "gpu_id", "use_gpu", "checkpoint_dir", "state", "show_progress",
                "USER_ID_FIELD", "ITEM_ID_FIELD", "RATING_FIELD", "TIME_FIELD", "data_path", "worker"]


def is_sequential(model_class):
    from recbole.utils import ModelType as RecBoleModelType

    return model_class.type == RecBoleModelType.SEQUENTIAL


def check_sequential(name):
    if name not in REPRESENTATION_MODELS:
        raise UserInputError(f"retriever_model {name}: a sequential retriever must score by <sequence vector, item "
                             f"vector>; supported: {', '.join(REPRESENTATION_MODELS)}")


def retriever_class(name):
    """The RecBole general model ``name`` (``retriever_model``), checked before any training."""
    from recbole.utils import ModelType as RecBoleModelType

    try:
        cls = recbole_class(name)
    except UserInputError:
        cls = None
    if cls is not None and is_sequential(cls):
        check_sequential(name)
    elif cls is None or cls.type != RecBoleModelType.GENERAL:
        raise UserInputError(f"retriever_model must be a RecBole general model scoring by an inner product of user "
                             f"and item vectors (BPR, LightGCN, NGCF, ...) or a sequential one (SASRec, GRU4Rec, "
                             f"NARM, ...); got '{name}'")
    return cls


def queries(vectors, requests, users):
    """``(query [R, d], item vectors)`` of a retriever's vectors for requests ``requests`` of users
    ``users``: per request for a sequential retriever (``{"request", "item"}``), per user for a
    two-tower one (``(user_vectors, item_vectors)``)."""
    if isinstance(vectors, dict):
        return vectors["request"][torch.as_tensor(requests)], vectors["item"]
    return vectors[0][torch.as_tensor(users)], vectors[1]


def retriever_config(config, model_class):
    """The config of the retriever's run (``model_class``) from the reranker's ``config``: its
    ``retriever_*`` keys and the keys both runs share; built by ``config.derived``."""
    values = {dst: config[src] for src, dst in RETRIEVER_KEYS.items()}
    values.update({k: config[k] for k in _COPIED_KEYS if config[k] is not None})
    values["retriever_loader"] = config["retriever_loader"]
    values["data_path"] = "."  # the dataset object is passed in; nothing is read from disk
    values["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
    if is_sequential(model_class):
        values["train_neg_sample_args"] = None  # CE over all items: RecBole's sequential default
        values["MAX_ITEM_LIST_LENGTH"] = config["max_history"]
        values["hidden_size"] = config["retriever_embedding_size"]  # RecBole's sequential models size by it
    values["eval_step"] = 0
    values["eval_args"] = {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "RO", "group_by": "user", "mode": "full"}
    return config.derived(model_class, values)
