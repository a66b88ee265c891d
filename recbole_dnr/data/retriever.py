"""The retriever stage: RecBole's BPR (MF) trained with RecBole's own Trainer, batched scoring.

The retriever's score of (user, item) is the MF logit ``<p_u, q_i>``; the list feature x is
that logit mapped into [0, 1] (``score_norm``: per-list min-max, or sigmoid).
"""

import logging

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.model.general_recommender import BPR
from recbole.sampler import Sampler
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_dnr.config import Config
from recbole_dnr.utils import UserInputError

RETRIEVER_KEYS = {
    "retriever_embedding_size": "embedding_size",
    "retriever_epochs": "epochs",
    "retriever_learning_rate": "learning_rate",
    "retriever_batch_size": "train_batch_size",
}
_COPIED_KEYS = ["seed", "reproducibility", "gpu_id", "use_gpu", "checkpoint_dir", "state", "show_progress",
                "USER_ID_FIELD", "ITEM_ID_FIELD", "RATING_FIELD", "TIME_FIELD", "data_path", "worker"]


class RetrieverConfig(Config):
    """Config of the retriever run: built from the reranker's ``retriever_*`` keys only.

    The command line belongs to the reranker (``--epochs`` means *its* epochs), so it is ignored.
    """

    def _load_cmd_line(self):
        return {}


def retriever_config(config):
    values = {dst: config[src] for src, dst in RETRIEVER_KEYS.items()}
    values.update({k: config[k] for k in _COPIED_KEYS if config[k] is not None})
    values["data_path"] = "."  # the dataset object is passed in; nothing is read from disk
    values["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
    values["eval_step"] = 0
    values["eval_args"] = {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "RO", "group_by": "user", "mode": "full"}
    return RetrieverConfig(model=BPR, dataset=config["dataset"], config_dict=values)


def train_retriever(config, dataset, rows, seed):
    """Train BPR-MF, seeded with ``seed``, on ``dataset``'s interaction rows ``rows`` (original row ids).

    Returns ``(user_emb [n_users, d], item_emb [n_items, d])`` on CPU.
    """
    logger = logging.getLogger()
    rconf = retriever_config(config)
    rconf["seed"] = seed
    init_seed(rconf["seed"], rconf["reproducibility"])
    train_ds = dataset.copy(dataset.inter_feat[torch.as_tensor(rows, dtype=torch.long)])
    sampler = Sampler(["train"], [train_ds], rconf["train_neg_sample_args"]["distribution"]).set_phase("train")
    loader = TrainDataLoader(rconf, train_ds, sampler, shuffle=True)
    model = BPR(rconf, train_ds).to(rconf["device"])
    logger.info(f"Retriever BPR-MF: {len(rows)} training interactions, {rconf['epochs']} epochs, "
                f"d={rconf['embedding_size']}")
    trainer = Trainer(rconf, model)
    trainer.fit(loader, None, verbose=False, saved=False, show_progress=config["show_progress"])
    trainer.tensorboard.close()  # flush now: its folder is relative to the current directory
    with torch.no_grad():
        return model.user_embedding.weight.detach().cpu(), model.item_embedding.weight.detach().cpu()


def score_pairs(user_emb, item_emb, users, items):
    """MF logits of ``users [R]`` against ``items [R, n]`` -> ``[R, n]`` numpy."""
    u = user_emb[torch.as_tensor(users)]
    i = item_emb[torch.as_tensor(items)]
    return torch.einsum("rd,rnd->rn", u, i).numpy()


def normalise(logits, how):
    """Map MF logits ``[R, n]`` into [0, 1]: ``minmax`` per list, or ``sigmoid``."""
    if how == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if how == "minmax":
        lo, hi = logits.min(1, keepdims=True), logits.max(1, keepdims=True)
        return (logits - lo) / np.maximum(hi - lo, 1e-12)
    raise UserInputError(f"score_norm must be 'minmax' or 'sigmoid', got '{how}'")


def topk_unseen(user_emb, item_emb, users, excl_lo, excl_hi, log_items, k, block=1024):
    """Top-``k`` items per request by MF logit, excluding padding item 0 and the items of log rows
    ``excl_lo[r] .. excl_hi[r]-1`` (e.g. everything the user rated before the request).

    Vectorised over blocks of requests (torch.topk over ``[block, n_items]`` score blocks).
    Returns ``items [R, k]`` (int64 numpy).
    """
    R = len(users)
    out = np.zeros((R, k), dtype=np.int64)
    log_items = torch.as_tensor(log_items)
    for lo in range(0, R, block):
        hi = min(R, lo + block)
        scores = user_emb[torch.as_tensor(users[lo:hi])] @ item_emb.T
        scores[:, 0] = -np.inf
        lens = excl_hi[lo:hi] - excl_lo[lo:hi]
        row = np.repeat(np.arange(hi - lo), lens)
        offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        src = np.repeat(excl_lo[lo:hi], lens) + offs
        scores[torch.as_tensor(row), log_items[torch.as_tensor(src)]] = -np.inf
        out[lo:hi] = torch.topk(scores, k, dim=1).indices.numpy()
    return out
