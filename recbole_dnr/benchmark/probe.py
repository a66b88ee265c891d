"""Test-time robustness probe (issue 8; the DNR reviewers' question): evaluate a trained model
with its test x corrupted — x + σ·N(0, 1) re-normalised per list (``probe_sigmas``), or x from a
weaker retriever on the same candidates (``probe_weak_retriever``) — and report its metrics.
If DNR's claim holds, DNR_X degrades more slowly than X when x is noisier than in training."""

import hashlib
import json
import logging

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_dnr import storage
from recbole_dnr.data.dataloader import ListDataLoader
from recbole_dnr.fields import REQUEST_ID, SCORE
from recbole_dnr.model.noise import perturb_scores
from recbole_dnr.data.cache import beside
from recbole_dnr.retrieval import recbole_retriever, topk


def with_scores(split, x):
    """A copy of a split (:class:`RequestSet`) whose x is ``x``; the stored split is untouched."""
    return split.view(Interaction({**split.inter.interaction, SCORE: x}))


def score_corruption_probe(config, trainer, test_loader, sigmas, seed):
    """{σ: test metrics} of the trained model (current weights) on corrupted x. The noise depends
    on ``seed`` and σ's index only, so every model of a grid sees the same corrupted lists."""
    split = test_loader.requests
    out = {}
    for i, sigma in enumerate(sigmas):
        g = torch.Generator().manual_seed(int(seed) * 1009 + i)
        loader = ListDataLoader(config, with_scores(split, perturb_scores(split.inter[SCORE], float(sigma), g)),
                                config["eval_batch_size"])
        out[str(sigma)] = {k: float(v) for k, v in trainer.evaluate(loader, load_best_model=False).items()}
    return out


class _ConfigView:
    """The config with some keys replaced (read-only, ``config[key]`` only)."""

    def __init__(self, config, overrides):
        self.config, self.overrides = config, overrides

    def __getitem__(self, key):
        return self.overrides[key] if key in self.overrides else self.config[key]

    def derived(self, model, config_dict):
        return self.config.derived(model, config_dict)


def weak_retriever_scores(config, split, overrides):
    """x ``[R, n]`` of the split's own candidates from a weaker BPR: the retriever settings with
    ``overrides`` (e.g. ``{retriever_embedding_size: 8}`` or ``{retriever_epochs: 2}``), trained on the
    same training-period rows with the list seed (keys checked by Config). Its embeddings are
    cached beside the lists."""
    tag = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    lists = split.lists
    path = beside(lists.cache_path(), f"weak-{tag}")
    vectors = storage.load_cache(path)
    if vectors is None:
        logging.getLogger().info(f"Weak retriever for the robustness probe: {overrides}")
        vectors = lists.train_retriever(config=_ConfigView(lists.config, overrides))
        storage.save(vectors, path)
    inter = split.inter
    query, item_emb = recbole_retriever.queries(vectors, inter[REQUEST_ID].numpy(), inter[split.uid_field].numpy())
    logits = topk.score_pairs(query, item_emb, np.arange(len(query)), inter[split.iid_field].numpy())
    return torch.as_tensor(topk.normalise(logits, config["score_norm"]), dtype=torch.float32)


def weak_retriever_probe(config, trainer, test_loader, overrides):
    """Test metrics of the trained model with x from the weaker retriever."""
    split = test_loader.requests
    x = weak_retriever_scores(config, split, overrides)
    loader = ListDataLoader(config, with_scores(split, x), config["eval_batch_size"])
    return {k: float(v) for k, v in trainer.evaluate(loader, load_best_model=False).items()}
