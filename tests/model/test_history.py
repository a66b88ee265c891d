"""The backbone options of NeuralReranker: history readers, token forms, list context, init."""

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, SCORE
from recbole_dnr.model.history import HISTORY_ENCODERS
from recbole_dnr.registry import get_model
from .test_dnr import B, H, N, FakeDataset, make_batch, make_config

READERS = sorted(HISTORY_ENCODERS)


def build(name="PRM", **over):
    torch.manual_seed(0)
    return get_model(name)(make_config(**over), FakeDataset()).eval()


def left_padded(seed=0):
    """A batch whose histories are left-padded as the lists are (row 0 has none, row 1 one item)."""
    batch = dict(make_batch(seed).interaction)
    items = torch.randint(1, 30, (B, H), generator=torch.Generator().manual_seed(seed))
    for row, length in enumerate([0, 1, H - 2, H]):
        items[row, :H - length] = 0
    batch[HISTORY_ITEM] = items
    return Interaction(batch)


@pytest.mark.parametrize("reader", READERS)
def test_reader_shape_empty_history_and_padding(reader):
    model = build(history_encoder=reader)
    batch = left_padded()
    with torch.no_grad():
        u = model.user_state(batch)
        assert u.shape == (B, 16) and torch.isfinite(u).all()
        # no history: the mean reader's learned state ReLU(b), 0 for the order-aware readers
        empty = model.history_encoder.out(torch.zeros(16)) if reader == "mean" else torch.zeros(16)
        torch.testing.assert_close(u[0], empty)
        other = dict(batch.interaction)
        pad = batch[HISTORY_ITEM] == 0
        other[HISTORY_LABEL] = torch.where(pad, 1 - batch[HISTORY_LABEL], batch[HISTORY_LABEL])
        torch.testing.assert_close(model.user_state(Interaction(other)), u)
        assert torch.isfinite(model.predict(batch)).all()


@pytest.mark.parametrize("reader,reads_order", [("mean", False), ("gru", True), ("transformer", True)])
def test_order_aware_readers_read_the_order(reader, reads_order):
    model = build(history_encoder=reader)
    batch = left_padded()
    other = dict(batch.interaction)
    other[HISTORY_ITEM] = batch[HISTORY_ITEM].clone()
    other[HISTORY_ITEM][3] = batch[HISTORY_ITEM][3].flip(0)  # row 3: a full history, reversed
    other[HISTORY_LABEL] = batch[HISTORY_LABEL].clone()
    other[HISTORY_LABEL][3] = batch[HISTORY_LABEL][3].flip(0)
    with torch.no_grad():
        u, v = model.user_state(batch)[3], model.user_state(Interaction(other))[3]
    assert torch.allclose(u, v, atol=1e-5) != reads_order


def test_history_feedback_off_ignores_labels():
    model = build(history_encoder="transformer", history_feedback=False)
    batch = left_padded()
    other = dict(batch.interaction)
    other[HISTORY_LABEL] = 1 - batch[HISTORY_LABEL]
    with torch.no_grad():
        torch.testing.assert_close(model.user_state(Interaction(other)), model.user_state(batch))
    assert build(history_feedback=True).history_encoder.label_embedding is not None


def test_product_token_without_list_context_is_sasrecs_dot_plus_head():
    """list_context False, no position, product: logit_i = MLP(e_i ⊙ u) + u·e_i, hand-computed."""
    model = build(score_fusion="none", user_interaction="product", list_context=False, position_embedding=False)
    batch = left_padded()
    with torch.no_grad():
        e = model.item_embedding(batch["item_id"])
        u = model.user_state(batch).unsqueeze(1)
        expected = model.head(e * u).squeeze(-1) + (e * u).sum(-1)
        torch.testing.assert_close(model.predict(batch), expected)


def test_without_list_context_a_score_ignores_the_other_candidates():
    model = build(list_context=False, position_embedding=False)
    batch = left_padded()
    other = dict(batch.interaction)
    other["item_id"] = batch["item_id"].clone()
    other["item_id"][:, 1:] = (batch["item_id"][:, 1:] % 29) + 1  # every candidate but the first changes
    with torch.no_grad():
        torch.testing.assert_close(model.predict(Interaction(other))[:, 0], model.predict(batch)[:, 0])
        with_ctx = build(list_context=True, position_embedding=False)
        assert not torch.allclose(with_ctx.predict(Interaction(other))[:, 0], with_ctx.predict(batch)[:, 0])


def test_token_norm_and_position_switch():
    assert build(token_norm=True).token_norm is not None and build().token_norm is None
    assert build(position_embedding=False).position_embedding is None
    assert build("SetRank").position_embedding is None  # the backbone's own choice by default
    assert build("SetRank", position_embedding=True).position_embedding is not None


def test_embedding_init_std():
    model = build(embedding_init_std=0.02)
    w = model.item_embedding.weight
    assert torch.equal(w[0], torch.zeros(16))
    assert 0.015 < w[1:].std().item() < 0.025
    assert build().item_embedding.weight[1:].std().item() > 0.5  # torch's N(0, 1) by default


def test_defaults_build_the_same_parameters_as_before():
    """The options at their defaults add no parameter (same state dict keys as PRM had)."""
    keys = set(build().state_dict())
    assert "history_encoder.label_embedding.weight" in keys and "history_encoder.out.0.weight" in keys
    assert not any(k.startswith("token_norm") or "position." in k for k in keys)


@pytest.mark.parametrize("reader", READERS)
def test_each_reader_trains(reader):
    model = build(history_encoder=reader, token_norm=True, user_interaction="product").train()
    batch = left_padded()
    loss = model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("history_encoder.") and "item" not in n]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert model.predict(batch).shape == (B, N) and batch[SCORE].shape == (B, N)
