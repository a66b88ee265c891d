"""The retriever's own metrics in ``list_mode: retrieve`` (docs/metrics.md): how much of a request's
label window its top-n finds (recall@n) and how well it orders what it found (NDCG@n against all the
window's positives, so a positive it missed counts against it). numpy, per request ``[R]``."""

import numpy as np


def retrieval_recall(label, n_pos):
    """recall@n: retrieved positives ``label [R, n]`` over the window's positives ``n_pos [R]`` (0 without any)."""
    return np.where(n_pos > 0, label.sum(1) / np.maximum(n_pos, 1), 0.0)


def retrieval_ndcg(label, n_pos):
    """NDCG@n of the retrieved list in its order, binary gains, ideal DCG over ``min(n_pos, n)``
    positives (0 without any)."""
    n = label.shape[1]
    gains = 1.0 / np.log2(np.arange(n) + 2.0)
    idcg = np.concatenate([[0.0], np.cumsum(gains)])[np.minimum(n_pos, n)]
    return np.where(idcg > 0, (label * gains).sum(1) / np.maximum(idcg, 1e-12), 0.0)


def retriever_means(metrics):
    """``{"retriever_<name>": mean over requests}`` of per-request retriever metrics (``{name: [R]}``
    tensors; NaN where undefined, e.g. the AUC of a list without a positive), rounded as results are."""
    return {f"retriever_{k}": round(float(v.double().nanmean()), 4) for k, v in metrics.items() if k != "has_positive"}
