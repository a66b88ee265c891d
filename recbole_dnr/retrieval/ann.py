"""Approximate top-k retrieval over the retriever's item vectors with FAISS (``retriever_search: ann``).

FAISS is an optional extra (``pip install ".[ann]"``, the ``faiss-cpu`` wheel). The index holds
items 1..n-1 (0 is RecBole's padding item) and searches by inner product, the retriever's score.
Items a request must not get (what its user rated before it) are removed after the search: each
request asks for ``k + margin`` neighbours, and the requests left with fewer than k allowed items
ask again with 4× the depth, until the depth covers the catalogue (then they take the exact top-k).
The candidates' scores x are computed exactly afterwards (``score_pairs``), so ANN changes which
items are candidates, never their scores.
"""

import math

import numpy as np
import torch

from recbole_dnr.errors import UserInputError, missing_extra
from recbole_dnr.options import OPTIONS
from recbole_dnr.retrieval.topk import range_rows

KINDS = OPTIONS["ann_index"].choices


def require_faiss():
    try:
        import faiss
    except ImportError:
        raise missing_extra("retriever_search: ann needs FAISS", "faiss-cpu", "ann",
                            otherwise="; or set retriever_search: exact") from None
    return faiss


def ann_settings(config):
    """The ``ann_*`` keys of ``config`` as a dict (validated)."""
    s = {k: config[k] for k in ("ann_index", "ann_nlist", "ann_nprobe", "ann_hnsw_m", "ann_ef_search",
                                "ann_ef_construction")}
    if s["ann_index"] not in KINDS:
        raise UserInputError(f"ann_index must be one of {KINDS}, got {s['ann_index']!r}")
    for k in ("ann_nprobe", "ann_hnsw_m", "ann_ef_search", "ann_ef_construction"):
        if not isinstance(s[k], int) or s[k] < 1:
            raise UserInputError(f"{k} must be an integer >= 1, got {s[k]!r}")
    if not isinstance(s["ann_nlist"], int) or s["ann_nlist"] < 0:
        raise UserInputError(f"ann_nlist must be an integer >= 0 (0: 4·sqrt(items)), got {s['ann_nlist']!r}")
    return s


class AnnIndex:
    """A FAISS inner-product index over ``item_emb [n_items, d]`` without the padding item 0.

    ``ivf``: IndexIVFFlat with ``ann_nlist`` k-means lists (0: 4·sqrt(items)), ``ann_nprobe``
    probed per query; memory ≈ 4·d bytes per item + the centroids. ``hnsw``: IndexHNSWFlat with
    ``ann_hnsw_m`` links per node, ``ann_ef_construction`` / ``ann_ef_search``; memory ≈
    (4·d + 8·M) bytes per item. The IVF build is deterministic; an HNSW build with several threads
    may link the graph differently from run to run (the list cache keeps a run's lists fixed).
    """

    def __init__(self, item_emb, settings, threads=None):
        faiss = require_faiss()
        if threads:
            faiss.omp_set_num_threads(int(threads))
        vectors = np.ascontiguousarray(torch.as_tensor(item_emb)[1:].float().numpy())
        self.n_items, d = len(vectors) + 1, vectors.shape[1]
        self.settings = settings
        if settings["ann_index"] == "hnsw":
            index = faiss.IndexHNSWFlat(d, settings["ann_hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = settings["ann_ef_construction"]
        else:
            nlist = settings["ann_nlist"] or max(1, round(4 * math.sqrt(len(vectors))))
            nlist = min(nlist, len(vectors))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = 1234  # k-means seed: the same index every build
            index.cp.min_points_per_centroid = 1  # small catalogues: no warning, fewer points per list is fine
            index.train(vectors)
            index.nprobe = min(settings["ann_nprobe"], nlist)
        index.add(vectors)
        self.index = index

    def search(self, queries, depth):
        """Item ids ``[R, depth]`` (int64, best first; 0 where the index returned nothing)."""
        depth = min(depth, self.n_items - 1)
        if self.settings["ann_index"] == "hnsw":
            self.index.hnsw.efSearch = max(self.settings["ann_ef_search"], depth)
        _, ids = self.index.search(np.ascontiguousarray(np.asarray(queries, dtype=np.float32)), depth)
        return np.where(ids >= 0, ids + 1, 0)


def topk_unseen(index, queries, excl_lo, excl_hi, log_items, k, exact):
    """Top-``k`` items per query of ``queries [R, d]`` (numpy or tensor) by the index, none of
    them in ``log_items[excl_lo[r]:excl_hi[r]]`` nor 0; ``exact(rows)`` gives the exact top-k of
    the requests ``rows`` that still lack k items at full depth. Returns ``[R, k]`` int64."""
    queries = torch.as_tensor(queries).float().numpy()
    R, n_items = len(queries), index.n_items
    out = np.zeros((R, k), dtype=np.int64)
    lens = np.asarray(excl_hi) - np.asarray(excl_lo)
    todo = np.arange(R)
    depth = k + int(np.percentile(lens, 90)) + 16 if R else k
    while len(todo):
        depth = min(depth, n_items - 1)
        ids = index.search(queries[todo], depth)
        banned = _banned(ids, todo, excl_lo, excl_hi, log_items, n_items)
        ok = (ids > 0) & ~banned
        enough = ok.sum(1) >= k
        rows = todo[enough]
        keep = ok[enough] & (np.cumsum(ok[enough], 1) <= k)
        out[rows] = ids[enough][keep].reshape(len(rows), k)
        todo = todo[~enough]
        if len(todo) and depth >= n_items - 1:
            out[todo] = exact(todo)
            break
        depth *= 4
    return out


def _banned(ids, rows, excl_lo, excl_hi, log_items, n_items):
    """``[len(rows), depth]`` bool: the id is among row's excluded log items."""
    owner, src = range_rows(np.asarray(excl_lo)[rows], np.asarray(excl_hi)[rows])
    codes = np.unique(owner * n_items + np.asarray(log_items)[src])
    return np.isin(np.arange(len(rows))[:, None] * n_items + ids, codes)
