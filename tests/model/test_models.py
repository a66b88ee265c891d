"""Backbone shapes and the shared parts (score feature, history encoder, L_direct)."""

import pytest
import torch
import torch.nn.functional as F

from recbole_dnr.fields import LABEL, SCORE
from recbole_dnr.registry import get_model

from .test_dnr import B, N, FakeDataset, make_batch, make_config


@pytest.mark.parametrize("name", ["PRM", "DLCM"])
@pytest.mark.parametrize("fusion", ["none", "early", "late"])
def test_backbone_shapes_and_loss(name, fusion):
    torch.manual_seed(0)
    model = get_model(name)(make_config(score_fusion=fusion), FakeDataset())
    batch = make_batch()
    h = model.encode(batch, batch[SCORE])
    assert h.shape == (B, N, 16)
    logits = model.predict(batch)
    assert logits.shape == (B, N)
    loss = model.calculate_loss(batch)
    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, batch[LABEL]).item(), rel=1e-5)
    loss.backward()
    assert model.item_embedding.weight.grad is not None


@pytest.mark.parametrize("name", ["PRM", "DLCM"])
def test_no_fusion_never_reads_x(name):
    """score_fusion: none (the paper's score-free backbone): scores unchanged when x is permuted or zeroed."""
    torch.manual_seed(0)
    model = get_model(name)(make_config(score_fusion="none"), FakeDataset()).eval()
    batch = make_batch()
    ref = model.predict(batch)
    for x in (batch[SCORE].flip(1), torch.zeros_like(batch[SCORE])):
        torch.testing.assert_close(model(batch, x), ref)
    assert model.score_feature.proj is None


def test_prm_uses_the_history():
    torch.manual_seed(0)
    model = get_model("PRM")(make_config(), FakeDataset()).eval()
    batch = make_batch()
    other = make_batch(seed=1)
    other.interaction["item_id"] = batch["item_id"]
    other.interaction[SCORE] = batch[SCORE]
    assert not torch.allclose(model.predict(batch), model.predict(other))  # only the history differs


def test_retriever_returns_x():
    model = get_model("Retriever")(make_config(), FakeDataset())
    batch = make_batch()
    assert torch.equal(model.predict(batch), batch[SCORE])
    assert not list(model.parameters())


def test_bad_fusion_is_a_clear_error():
    with pytest.raises(ValueError, match="score_fusion"):
        get_model("PRM")(make_config(score_fusion="middle"), FakeDataset())
