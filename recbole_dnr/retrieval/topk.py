"""Exact scoring and top-k search over a retriever's vectors, and the list feature x: the
score ``<p_u, q_i>`` mapped into [0, 1] (``score_norm``: per-list min-max, or sigmoid)."""

import numpy as np
import torch

from recbole_dnr.errors import UserInputError


def score_pairs(user_emb, item_emb, users, items):
    """Logits <u, e_i> of ``users [R]`` (rows of ``user_emb``) against ``items [R, n]`` -> ``[R, n]`` numpy."""
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


def range_rows(lo, hi):
    """The rows of the ranges ``lo[r] .. hi[r]-1``, flattened: ``(owner, row)``, ``owner`` = r of
    each (int64 numpy; vectorised, no loop over ranges)."""
    lens = np.asarray(hi) - np.asarray(lo)
    owner = np.repeat(np.arange(len(lens)), lens)
    offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    return owner, np.repeat(np.asarray(lo), lens) + offs


def topk_unseen(user_emb, item_emb, users, excl_lo, excl_hi, log_items, k, block_bytes=256 << 20):
    """Top-``k`` items per request by MF logit, excluding padding item 0 and the items of log rows
    ``excl_lo[r] .. excl_hi[r]-1`` (e.g. everything the user rated before the request).

    Vectorised over blocks of requests: ``torch.topk`` over a ``[block, n_items]`` fp32 score
    block, ``block = max(1, block_bytes // (4 n_items))`` (at most 1024), so the score memory
    stays under ``block_bytes`` (256 MiB: 671 requests per block at 100k items) whatever the
    catalogue. Returns ``items [R, k]`` (int64 numpy); the result does not depend on the block.
    """
    block = int(max(1, min(1024, block_bytes // (4 * item_emb.shape[0]))))
    R = len(users)
    out = np.zeros((R, k), dtype=np.int64)
    log_items = torch.as_tensor(log_items)
    for lo in range(0, R, block):
        hi = min(R, lo + block)
        scores = user_emb[torch.as_tensor(users[lo:hi])] @ item_emb.T
        scores[:, 0] = -np.inf
        row, src = range_rows(excl_lo[lo:hi], excl_hi[lo:hi])
        scores[torch.as_tensor(row), log_items[torch.as_tensor(src)]] = -np.inf
        out[lo:hi] = torch.topk(scores, k, dim=1).indices.numpy()
    return out
