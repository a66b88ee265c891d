"""The CPU fast paths (docs/performance.md) against torch's reference implementations."""

import copy

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_dnr.data.dataloader import ListDataLoader
from recbole_dnr.retrieval.recbole_retriever import PairDataLoader
from recbole_dnr.model.layers import TransformerLayer, dropout, keep_mask
from recbole_dnr.quick_start import build
from recbole_dnr.registry import get_model

from conftest import smoke_config
from .test_dnr import FakeDataset, make_batch, make_config


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_mask_rate_per_lane(p):
    """Each of the four 16-bit lanes of a 64-bit draw keeps with probability 1 - p (a lane with a
    constant sign bit, e.g. from random_() without bounds, would keep ~always or ~never)."""
    torch.manual_seed(0)
    n = 400_000
    mask = keep_mask((n,), p).float().view(-1, 4)
    sd = (p * (1 - p) / (n / 4)) ** 0.5
    assert torch.allclose(mask.mean(0), torch.full((4,), 1 - p), atol=5 * sd), mask.mean(0)
    # neighbours are independent: P(both kept) = (1 - p)^2
    both = (mask[:, 0] * mask[:, 1]).mean().item()
    assert both == pytest.approx((1 - p) ** 2, abs=5 * sd)


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.05, 0.9), shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), seed=st.integers(0, 99))
def test_dropout_scales_kept_values_and_masks_the_gradient(p, shape, seed):
    torch.manual_seed(seed)
    x = (torch.rand(shape) + 0.5).requires_grad_()
    y = dropout(x, p)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(y.detach()[kept], x.detach()[kept] / (1 - p))
    assert torch.allclose(x.grad, kept.float() / (1 - p))
    assert dropout(x, p, training=False) is x and dropout(x, 0.0) is x


def test_dropout_follows_the_seed():
    x = torch.ones(1000)
    torch.manual_seed(3)
    a = dropout(x, 0.3)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(x, 0.3))


def _layers(attn_p=0.0, p=0.0):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(16, 2, 24, p, batch_first=True)
    fast = TransformerLayer(16, 2, 24, p, attn_p)
    fast.load_state_dict(ref.state_dict())  # same parameters, same names
    return ref, fast


def test_transformer_layer_equals_torch_without_dropout():
    """Training path (no dropout: fused attention) and evaluation path: same outputs and input
    gradients as nn.TransformerEncoderLayer."""
    ref, fast = _layers()
    x = torch.randn(3, 7, 16)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_f, out_r = fast(xf), ref(xr)
    assert torch.allclose(out_f, out_r, atol=1e-5)
    out_f.square().sum().backward()
    out_r.square().sum().backward()
    assert torch.allclose(xf.grad, xr.grad, atol=1e-4)
    ref.eval(), fast.eval()
    with torch.no_grad():
        assert torch.allclose(fast(x), ref(x), atol=1e-5)


def test_explicit_attention_branch_is_attention(monkeypatch):
    """With attention dropout on and its mask forced to keep everything, the weights are scaled by
    1/(1-p); torch's layer with out_proj scaled by the same factor gives the same output."""
    p = 0.2
    ref, fast = _layers(attn_p=p)
    monkeypatch.setattr("recbole_dnr.model.layers.keep_mask",
                        lambda shape, p, device="cpu": torch.ones(shape, dtype=torch.bool))
    with torch.no_grad():
        ref.self_attn.out_proj.weight /= 1 - p
    x = torch.randn(3, 7, 16)
    assert torch.allclose(fast(x), ref(x), atol=1e-5)


def test_prm_fast_and_reference_paths_share_weights_and_predictions():
    torch.manual_seed(0)
    fast = get_model("PRM")(make_config(dropout_prob=0.1, attn_dropout_prob=0.1), FakeDataset()).eval()
    ref = get_model("PRM")(make_config(dropout_prob=0.1, attn_dropout_prob=0.1, fast_path=False), FakeDataset()).eval()
    ref.load_state_dict(fast.state_dict())
    batch = make_batch()
    with torch.no_grad():
        assert torch.allclose(fast.predict(batch), ref.predict(batch), atol=1e-5)


def test_reference_path_refuses_a_separate_attention_dropout():
    with pytest.raises(ValueError, match="attn_dropout_prob"):
        get_model("PRM")(make_config(dropout_prob=0.1, attn_dropout_prob=0.0, fast_path=False), FakeDataset())


def test_list_loader_fast_batches_equal_recbole_dataloader(slice_root, in_session_dir):
    config, ds, (train, valid, test), model, trainer = build(config_dict=smoke_config(slice_root, model="PRM"))
    for split, shuffle in ((train._dataset, True), (valid._dataset, False)):
        fast = ListDataLoader(config, split, 37, shuffle=shuffle)
        ref = ListDataLoader(config, split, 37, shuffle=shuffle)
        ref._fast = False
        assert fast._fast
        for _ in range(3):  # the generator advances identically epoch after epoch
            got, want = list(fast), list(ref)
            assert len(got) == len(want) == len(fast)
            for a, b in zip(got, want):
                assert a.interaction.keys() == b.interaction.keys()
                assert all(torch.equal(a[k], b[k]) for k in a.interaction)


def test_pair_loader_covers_rows_once_with_unrated_negatives(slice_root, in_session_dir):
    config, ds, *_ = build(config_dict=smoke_config(slice_root, model="Retriever"))
    users = torch.tensor([1, 1, 1, 2, 2, 3] * 5)
    items = torch.tensor([1, 2, 3, 1, 4, 5] * 5)
    rconf = copy.copy(config)
    rconf.final_config_dict = dict(config.final_config_dict, train_batch_size=4)
    loader = PairDataLoader(rconf, ds, users, items)
    rated = {(u, i) for u, i in zip(users.tolist(), items.tolist())}
    seen = []
    for batch in loader:
        u, i, neg = batch["user_id"], batch["item_id"], batch["neg_item_id"]
        assert all((a, b) not in rated for a, b in zip(u.tolist(), neg.tolist()))
        assert bool(((neg >= 1) & (neg < ds.item_num)).all())
        seen += list(zip(u.tolist(), i.tolist()))
    assert sorted(seen) == sorted(zip(users.tolist(), items.tolist()))
    # negatives of user 1 spread over the whole unrated catalogue
    draws = loader.negatives(torch.ones(20_000, dtype=torch.long))
    counts = torch.bincount(draws, minlength=ds.item_num)
    assert counts[[0, 1, 2, 3]].sum() == 0
    assert (counts[4:] > 0).float().mean() > 0.99
    # a user who rated every item has no negative: a clear error, not an endless redraw
    every = torch.arange(1, ds.item_num)
    with pytest.raises(ValueError, match="rated every item"):
        PairDataLoader(rconf, ds, torch.full_like(every, 5), every)


def test_fast_path_training_is_deterministic(slice_root, in_session_dir):
    """Same seed and config, dropout on: the same metrics, twice."""
    from recbole_dnr.quick_start import objective_function

    cfg = smoke_config(slice_root, model="PRM", epochs=2, dropout_prob=0.2, attn_dropout_prob=0.2)
    first, second = objective_function(dict(cfg), saved=False), objective_function(dict(cfg), saved=False)
    assert first["test_result"] == second["test_result"]
    assert first["best_valid_result"] == second["best_valid_result"]


def test_fast_retriever_loader_builds_lists_of_the_same_quality(slice_root, in_session_dir):
    """Both loaders draw BPR negatives from the same distribution, so x is as good either way
    (not the same: the random streams differ); the cache keys differ, the lists are not mixed."""
    stats, keys = {}, {}
    for loader in ("fast", "recbole"):
        train = build(config_dict=smoke_config(slice_root, model="Retriever", retriever_loader=loader))[2][0]
        lists = train.requests.lists
        stats[loader], keys[loader] = lists.stats, lists.cache_key()
    assert keys["fast"] != keys["recbole"]
    for split in ("valid", "test"):
        assert stats["fast"][f"{split}_lists"] == stats["recbole"][f"{split}_lists"]
        assert abs(stats["fast"][f"{split}_retriever_auc"] - stats["recbole"][f"{split}_retriever_auc"]) < 0.03, stats
