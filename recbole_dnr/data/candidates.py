"""Candidate generation: per request, the ``candidate_num`` items a retriever's vectors put on
the list, their scores x and labels z (protocol: docs/protocol.md).

``list_mode: slate`` keeps the shown slate and fills the list with sampled items (uniform, by
popularity, or from the retriever's top unseen items); ``list_mode: retrieve`` takes the
retriever's top unseen items and labels them from the request's label window. Every function
reads the (user, time)-sorted log (:class:`~recbole_dnr.protocol.SortedLog`), never a dataset.
"""

import numpy as np
import torch

from recbole_dnr import protocol
from recbole_dnr.evaluator.retrieval import retrieval_recall
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, REQUEST_ID, SCORE
from recbole_dnr.retrieval import recbole_retriever, topk


def candidate_lists(config, log, item_num, list_seed, vectors, req, starts, train_rows, seed, with_n_pos=False):
    """Candidates ``items [R, n]``, x ``[R, n]``, z ``label``, ``slate`` mask and ``recall [R]`` for
    the requests ``req`` (ids into ``starts``) scored by a retriever's ``vectors``, in retriever
    order; with ``with_n_pos`` (retrieve mode) also ``n_pos [R]``, the distinct liked items of
    each label window. ``seed`` picks the filler stream (one per retriever of a cross-fit)."""
    n, size = config["candidate_num"], config["slate_size"]
    rng = np.random.default_rng([list_seed, seed])
    users, items = log.users, log.items
    z_log = (log.ratings >= config["label_threshold"]).astype(np.int64)
    first = protocol.user_bounds(users)
    r_users = users[starts[req]]
    query, item_emb = recbole_retriever.queries(vectors, req, r_users)  # [R, d]: one query per request
    if config["list_mode"] == "slate":
        slate_rows = starts[req][:, None] + np.arange(size)
        slate_items, slate_z = items[slate_rows], z_log[slate_rows]
        codes = protocol.rated_codes(users, items, item_num)
        mode = config["filler_sampling"]
        if mode == "uniform":
            fill = protocol.sample_fillers(rng, r_users, slate_items, n - size, item_num, codes)
        elif mode == "popularity":
            pop = np.bincount(items[train_rows], minlength=item_num)
            fill = protocol.sample_fillers(rng, r_users, slate_items, n - size, item_num, codes, weights=pop)
        else:  # "retriever" (values were checked with the config)
            ends = protocol.user_end(users)
            pools = topk_unseen(config, query, item_emb, first[r_users], ends[r_users], items,
                                max(config["filler_pool"], n))
            fill = protocol.sample_fillers(rng, r_users, slate_items, n - size, item_num, codes, pools=pools)
        cand = np.concatenate([slate_items, fill], 1)
        label = np.concatenate([slate_z, np.zeros_like(fill)], 1)
        slate = np.concatenate([np.ones_like(slate_z), np.zeros_like(fill)], 1)
        recall = np.ones(len(req))  # every slate item is a candidate by construction
    else:  # "retrieve"
        cand = topk_unseen(config, query, item_emb, first[r_users], starts[req], items, n)
        w_items, w_pos = protocol.label_window(log, starts[req], config["label_window"], config["label_threshold"])
        match = cand[:, :, None] == w_items[:, None, :]
        label = (match & w_pos[:, None, :]).any(2).astype(np.int64)
        slate = match.any(2).astype(np.int64)
        n_pos = protocol.distinct_nonzero(np.where(w_pos, w_items, 0))
        recall = retrieval_recall(label, n_pos)
    x = topk.normalise(topk.score_pairs(query, item_emb, np.arange(len(req)), cand), config["score_norm"])
    cand, x, label, slate = protocol.order_by_score(cand, x, label, slate)
    out = {"items": cand, "x": x, "label": label, "slate": slate, "recall": recall}
    if config["list_mode"] == "retrieve" and with_n_pos:
        out["n_pos"] = n_pos
    return out


def topk_unseen(config, query, item_emb, excl_lo, excl_hi, items, k, index=None):
    """Top-``k`` items per query ``[R, d]`` not among ``items[excl_lo[r]:excl_hi[r]]``: exact
    (blocked scoring + topk) or, with ``retriever_search: ann``, through a FAISS index (``index``:
    one built before, see :func:`ann_index`; else built here)."""
    rows = np.arange(len(query))
    if config["retriever_search"] != "ann":
        return topk.topk_unseen(query, item_emb, rows, excl_lo, excl_hi, items, k)
    from recbole_dnr.retrieval import ann  # faiss is an optional extra

    index = index or ann_index(config, item_emb)
    return ann.topk_unseen(index, query, excl_lo, excl_hi, items, k,
                           exact=lambda r: topk.topk_unseen(query, item_emb, r, excl_lo[r], excl_hi[r], items, k))


def ann_index(config, item_emb):
    """The FAISS index of ``retriever_search: ann`` over ``item_emb`` (``ann_*`` settings)."""
    from recbole_dnr.retrieval import ann

    return ann.AnnIndex(item_emb, ann.ann_settings(config), threads=torch.get_num_threads())


def shuffle_candidates(split, list_seed):
    """``list_order: shuffled``: each request's candidates (items, x, z, slate mask) in a random
    order drawn from (``list_seed``, request id), so it is the same in every split, epoch and run,
    and independent of the retriever's order. The stored lists are untouched."""
    ids = split[REQUEST_ID].numpy()
    n = split[SCORE].shape[1]
    # row r of one stream's [max_id + 1, n] table, whatever the table's length: same in every split
    table = np.random.default_rng([list_seed, 104729]).random((int(ids.max()) + 1 if len(ids) else 0, n))
    keys = table[ids]
    perm = torch.as_tensor(np.argsort(keys, axis=1, kind="stable"))
    out = dict(split)
    for key, value in split.items():
        if value.dim() == 2 and value.shape[1] == n and key not in (HISTORY_ITEM, HISTORY_LABEL):
            out[key] = value.gather(1, perm)
    return out
