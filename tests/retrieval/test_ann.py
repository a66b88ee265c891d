"""retriever_search: ann (FAISS) against the exact blocked top-k."""

import sys

import numpy as np
import pytest
import torch
from conftest import smoke_config
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_dnr.retrieval import topk as TK
from recbole_dnr.quick_start import build
from recbole_dnr.retrieval import ann
from recbole_dnr.errors import UserInputError

EXHAUSTIVE = {"ann_index": "ivf", "ann_nlist": 4, "ann_nprobe": 4, "ann_hnsw_m": 16, "ann_ef_search": 64,
              "ann_ef_construction": 64}


def toy(seed, n_items=120, d=8, R=30):
    g = torch.Generator().manual_seed(seed)
    item_emb, query = torch.randn(n_items, d, generator=g), torch.randn(R, d, generator=g)
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, n_items - 20, R)
    lens[0] = n_items - 13  # a user who rated nearly everything: 12 allowed items, found only by deeper searches
    log_items = np.concatenate([rng.permutation(np.arange(1, n_items))[:n] for n in lens])
    hi = np.cumsum(lens)
    return item_emb, query, hi - lens, hi, log_items


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["ivf", "hnsw"]))
def test_exhaustive_ann_equals_exact_top_k(seed, kind):
    """Probing every IVF list (or an HNSW graph searched wider than the catalogue) is exact: the same
    items as the blocked exact top-k, never 0 nor an excluded item."""
    item_emb, query, lo, hi, log_items = toy(seed)
    k = 10
    rows = np.arange(len(query))
    exact = TK.topk_unseen(query, item_emb, rows, lo, hi, log_items, k)
    index = ann.AnnIndex(item_emb, dict(EXHAUSTIVE, ann_index=kind, ann_ef_search=256))
    got = ann.topk_unseen(index, query, lo, hi, log_items, k,
                          exact=lambda r: TK.topk_unseen(query, item_emb, r, lo[r], hi[r], log_items, k))
    for r in rows:
        banned = set(log_items[lo[r]:hi[r]].tolist()) | {0}
        assert not banned & set(got[r].tolist())
        assert len(set(got[r].tolist())) == k
    # equal as sets; ties between equal float scores may order differently
    s_exact = (query[:, None, :] * item_emb[torch.as_tensor(exact)]).sum(-1)
    s_got = (query[:, None, :] * item_emb[torch.as_tensor(got)]).sum(-1)
    assert torch.allclose(s_exact.sort(1).values, s_got.sort(1).values, atol=1e-5)


def test_approximate_ann_recall_and_settings_are_checked():
    item_emb, query, lo, hi, log_items = toy(3, n_items=2000, d=16, R=50)
    rows = np.arange(len(query))
    exact = TK.topk_unseen(query, item_emb, rows, lo, hi, log_items, 20)
    index = ann.AnnIndex(item_emb, dict(EXHAUSTIVE, ann_nlist=64, ann_nprobe=8))
    got = ann.topk_unseen(index, query, lo, hi, log_items, 20,
                          exact=lambda r: TK.topk_unseen(query, item_emb, r, lo[r], hi[r], log_items, 20))
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact.tolist(), got.tolist())])
    assert 0.5 < recall <= 1.0  # approximate (8 of 64 lists probed), but mostly right
    with pytest.raises(UserInputError, match="ann_index"):
        ann.ann_settings(dict(EXHAUSTIVE, ann_index="lsh"))
    with pytest.raises(UserInputError, match="ann_nprobe"):
        ann.ann_settings(dict(EXHAUSTIVE, ann_nprobe=0))


def test_missing_faiss_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(UserInputError, match=r'ann needs FAISS: pip install faiss-cpu \(from a checkout: pip install "\.\[ann\]"\); or set'):
        ann.require_faiss()


def test_retrieve_mode_lists_through_ann(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="PRM", list_mode="retrieve", retriever_epochs=2)
    _, _, (_, _, exact_test), _, _ = build(config_dict=cfg)
    _, _, (_, _, ann_test), _, _ = build(config_dict=dict(cfg, retriever_search="ann", ann_nprobe=4))
    assert ann_test.requests.lists.cache_path() != exact_test.requests.lists.cache_path()
    a, e = ann_test.requests.inter["item_id"], exact_test.requests.inter["item_id"]
    overlap = np.mean([len(set(x) & set(y)) / a.shape[1] for x, y in zip(a.tolist(), e.tolist())])
    assert overlap > 0.7
    assert torch.all(ann_test._dataset.inter["item_id"] > 0)
