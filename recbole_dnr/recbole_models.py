"""What we read from RecBole's model zoo: its model names and classes (found without importing
lightgbm/xgboost), how its sequential models take a request's history, and a loader of their
training fields. Used by the RecBole-model rerankers, the sequential retrievers and pre-training."""

import importlib
import importlib.util
import inspect
import math
import os
import re

import recbole
import torch
from recbole.data.interaction import Interaction

from recbole_dnr.errors import UserInputError

RECBOLE_SUBMODULES = [
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
]
# RecBole's sequential models that score by <sequence vector, item embedding> (the ones early fusion
# and the sequential retriever can use)
REPRESENTATION_MODELS = ("SASRec", "GRU4Rec", "Caser", "NARM", "STAMP", "NextItNet", "LightSANs", "SINE")
# the names RecBole's sequential forward() gives its arguments -> which of (seq, len, user) they are
SEQ_ARGS = {"item_seq": "seq", "seq_item": "seq", "item_seq_len": "len", "seq_item_len": "len", "user": "user"}


def recbole_model_names():
    """RecBole's model names, read from its package layout (no import of lightgbm/xgboost)."""
    root = os.path.join(os.path.dirname(recbole.__file__), "model")
    names = []
    for sub in RECBOLE_SUBMODULES:
        folder = os.path.join(root, sub)
        for f in os.listdir(folder):
            if f.endswith(".py") and not f.startswith("_"):
                with open(os.path.join(folder, f), encoding="utf-8") as src:
                    found = re.findall(r"^class (\w+)\(", src.read(), flags=re.M)
                names += [c for c in found if c.lower() == f[:-3]]
    return sorted(names)


def find_recbole_class(model_name):
    """RecBole's model class ``model_name``, or None when RecBole has none."""
    for sub in RECBOLE_SUBMODULES:
        path = f"recbole.model.{sub}.{model_name.lower()}"
        if importlib.util.find_spec(path) is not None:
            module = importlib.import_module(path)
            if hasattr(module, model_name):
                return getattr(module, model_name)
    return None


def recbole_class(model_name):
    """RecBole's model class ``model_name`` (never ours); a clear error if RecBole has none."""
    cls = find_recbole_class(model_name)
    if cls is None:
        raise UserInputError(f"RecBole has no model '{model_name}'. RecBole models: {', '.join(recbole_model_names())}.")
    return cls


def history_window(config):
    """How many of a request's latest history items a RecBole model reads: ``min(MAX_ITEM_LIST_LENGTH,
    max_history)``."""
    return min(config["MAX_ITEM_LIST_LENGTH"], config["max_history"])


def recbole_sequence(history, window):
    """Our left-padded history ``[B, H]`` (newest last, 0 = padding) -> RecBole's right-padded
    last ``L = min(window, H)`` items ``[B, L]`` and lengths ``[B]``.

    An empty history gets length 1 (an all-padding sequence): RecBole's models read the output
    at position ``length - 1``.
    """
    H = history.shape[1]
    L = min(window, H)
    last = history[:, H - L:]
    length = (last > 0).sum(1)
    idx = (torch.arange(L, device=history.device) + (L - length)[:, None]) % L
    return last.gather(1, idx), length.clamp(min=1)


def forward_args(model):
    """Which of (seq, len, user) each argument of ``model.forward`` is, in order."""
    return [SEQ_ARGS[p] for p in inspect.signature(model.forward).parameters]


def sequence_forward(model, seq, length, users):
    """A RecBole sequential model's sequence vectors ``[B, d]`` for ``seq [B, L]``, ``length [B]``."""
    args = {"seq": seq, "len": length, "user": users}
    return model(*[args[a] for a in forward_args(model)])


class SequenceLoader:
    """Shuffled batches of RecBole's sequential fields (what its ``calculate_loss`` reads)."""

    def __init__(self, fields, batch_size, seed):
        self.fields, self.batch_size = fields, batch_size
        self.n = len(next(iter(fields.values())))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        perm = torch.randperm(self.n, generator=self.generator)
        for i in range(0, self.n, self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield Interaction({k: v[idx] for k, v in self.fields.items()})
