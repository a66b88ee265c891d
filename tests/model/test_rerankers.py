"""The paper's rerankers: shapes, SetRank's permutation equivariance, PRM/DLCM order sensitivity,
MiDNN's global feature extension, PIER's permutations, SetRank's attention rank loss by hand,
and a two-epoch DNR_<each> smoke run on the ml-100k slice."""

import math

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE
from recbole_dnr.model.abstract_reranker import attention_rank_loss
from recbole_dnr.quick_start import objective_function
from recbole_dnr.registry import get_model

from conftest import smoke_config
from .test_dnr import B, N, FakeDataset, make_batch, make_config

PIER_KEYS = {"slate_size": 3, "pier_permutations": 6, "pier_top": 5, "pier_selected": 3, "pier_hash_bits": 16,
             "pier_hinge_margin": 0.5, "pier_hinge_weight": 0.1, "pier_evaluator_weight": 1.0}
MIR_KEYS = {"mir_lstm_hidden": 8, "mir_mlp": [16], "mir_decay_hidden": 4, "mir_time_decay": "decay",
            "mir_slot_projection": "shared", "mir_feature_level": True}
EXTRA = {"MiDNN": {"midnn_layers": [16]}, "PIER": PIER_KEYS, "MIR": MIR_KEYS}
BACKBONES = ["PRM", "DLCM", "MiDNN", "SetRank", "PIER", "MIR"]


def build(name, **over):
    torch.manual_seed(0)
    return get_model(name)(make_config(**EXTRA.get(name, {}), **over), FakeDataset())


def shuffled(batch, perm):
    out = dict(batch.interaction)
    for key in ("item_id", SCORE, LABEL):
        out[key] = batch[key][:, perm]
    return Interaction(out)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("fusion", ["none", "late", "early"])
def test_shapes_and_training_step(name, fusion):
    model = build(name, score_fusion=fusion)
    batch = make_batch()
    assert model.encode(batch, batch[SCORE]).shape == (B, N, 16)
    loss = model.calculate_loss(batch)
    total = sum(loss) if isinstance(loss, tuple) else loss
    assert torch.isfinite(total)
    total.backward()
    assert model.item_embedding.weight.grad is not None
    assert model.eval().predict(batch).shape == (B, N)


@pytest.mark.parametrize("name", BACKBONES)
def test_history_padding_is_masked(name):
    """What sits in a padded history slot (item 0) — its feedback label — never changes a score."""
    model = build(name).eval()
    batch = make_batch()
    padded = batch[HISTORY_ITEM] == 0
    assert padded.any()
    other = dict(batch.interaction)
    other[HISTORY_LABEL] = torch.where(padded, 1 - batch[HISTORY_LABEL], batch[HISTORY_LABEL])
    with torch.no_grad():
        torch.testing.assert_close(model.predict(Interaction(other)), model.predict(batch))


def test_setrank_is_permutation_equivariant():
    model = build("SetRank").eval()
    batch = make_batch()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model.predict(shuffled(batch, perm)), model.predict(batch)[:, perm])


@pytest.mark.parametrize("name", ["PRM", "DLCM"])
def test_prm_dlcm_read_the_order(name):
    model = build(name).eval()
    batch = make_batch()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert not torch.allclose(model.predict(shuffled(batch, perm)), model.predict(batch)[:, perm], atol=1e-4)


def test_midnn_global_extension_is_list_relative():
    """Adding a constant to every token of a list changes f_i but not f'_i (the min-max part)."""
    model = build("MiDNN").eval()
    t = torch.randn(2, N, 16)
    lo, hi = t.min(1, keepdim=True).values, t.max(1, keepdim=True).values
    ext = (t - lo) / (hi - lo)
    assert ext.min() == 0 and ext.max() == 1
    first = model.mlp[0]
    with torch.no_grad():
        a = model.encode_list(t)
        first.weight[:, :16] = 0  # keep only the extended half of the input
        b, c = model.encode_list(t), model.encode_list(t + 5.0)
    torch.testing.assert_close(b, c)
    assert not torch.allclose(a, b)


def test_pier_returns_k_distinct_candidates_first_in_its_order():
    model = build("PIER").eval()
    batch = make_batch()
    k = PIER_KEYS["slate_size"]
    with torch.no_grad():
        s, perm = model.choose(batch)
        scores = model.predict(batch)
    assert perm.shape == (B, k)
    assert all(len(set(row.tolist())) == k for row in perm)
    top = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    assert torch.equal(top, perm)
    rest = torch.ones_like(s, dtype=torch.bool).scatter(1, perm, False)
    torch.testing.assert_close(scores[rest], s[rest])  # the others keep the evaluator's s_i
    with torch.no_grad():
        assert torch.equal(model.choose(batch)[1], perm)  # evaluation is deterministic


def test_pier_simhash_keeps_greedy_and_agreeing_permutations():
    model = build("PIER").eval()
    u = torch.randn(2, 16)
    e = torch.stack([u, -u, u * 2, -u * 3, u + 0.01, -u], 1)  # [2, 6, 16]
    keep = model.simhash_keep(u, e)
    assert keep[:, 0].tolist() == [0, 0]
    assert sorted(keep[0, 1:].tolist()) == [2, 4]  # same direction as u: all bits agree


def test_attention_rank_loss_by_hand():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.3, 0.2, 0.1]])
    z = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(logits[0], 0)
    expected = -(0.5 * math.log(p[0]) + 0.5 * math.log(p[2])) / 2  # second list has no positive: adds 0
    assert attention_rank_loss(logits, z).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["MiDNN", "SetRank", "PIER", "DLCM"])
def test_smoke_dnr_each(slice_root, in_session_dir, name):
    cfg = smoke_config(slice_root, model=f"DNR_{name}", epochs=2, lambda_e=1)
    result = objective_function(cfg, saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0
