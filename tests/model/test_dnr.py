"""DNR: losses on hand-made tensors, θ/φ separation, x' range, L_x, the schedule and resume."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction

from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE
from recbole_dnr.model.dnr import LEARNED
from recbole_dnr.model.noise import LearnedNoise, base_noise, score_kl, soft_histogram, synthesize
from recbole_dnr.model.abstract_reranker import NeuralReranker
from recbole_dnr.registry import get_model, register_model

B, N, H = 4, 8, 5


class FakeDataset:
    def num(self, field):
        return 30


def make_config(**over):
    cfg = {
        "ITEM_ID_FIELD": "item_id", "USER_ID_FIELD": "user_id", "device": torch.device("cpu"),
        "hidden_size": 16, "candidate_num": N, "score_fusion": "late", "dropout_prob": 0.0,
        "n_layers": 1, "n_heads": 2, "inner_size": 16, "noise": "gaussian", "noise_squash": "clamp",
        "lambda_c": 0.4, "lambda_m": 0.5, "lambda_adv": 1.0, "lambda_x": 1.0, "kl_bins": 10,
        "generator_hidden_size": 8, "backbone": None, "fast_path": True, "attn_dropout_prob": 0.0,
        "list_loss": "bce", "predict_without_score": False, "generator_form": "residual",
        "score_train_noise": 0.0, "history_encoder": "mean", "history_feedback": True, "history_layers": 1,
        "user_interaction": "add", "token_norm": False, "embedding_init_std": None, "list_context": True,
        "position_embedding": None, "side_features": False, "max_history": H,
    }
    cfg.update(over)
    return cfg


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return Interaction({
        "user_id": torch.arange(1, B + 1),
        "item_id": torch.randint(1, 30, (B, N), generator=g),
        SCORE: torch.rand(B, N, generator=g),
        LABEL: (torch.rand(B, N, generator=g) > 0.7).float(),
        HISTORY_ITEM: torch.randint(0, 30, (B, H), generator=g),
        HISTORY_LABEL: torch.randint(0, 2, (B, H), generator=g),
    })


@register_model
class TinyBackbone(NeuralReranker):
    """Test-only backbone: a per-token MLP. DNR must wrap it without any DNR code change."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.mlp = torch.nn.Linear(self.hidden_size, self.hidden_size)

    def encode_list(self, tokens):
        return torch.relu(self.mlp(tokens))


def dnr(backbone="PRM", **over):
    torch.manual_seed(0)
    return get_model(f"DNR_{backbone}")(make_config(**over), FakeDataset())


def test_synthesize_by_hand_and_range():
    z = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    eps = torch.tensor([[0.5, 0.5, 3.0, -2.0]])
    x = synthesize(z, eps, 0.4)
    assert x[0].tolist() == pytest.approx([0.8, 0.2, 1.0, 0.0])
    mm = synthesize(z, eps, 0.4, "minmax")
    assert mm.min().item() == 0.0 and mm.max().item() == 1.0
    for kind in ("gaussian", "beta"):
        zz = (torch.rand(64, 50) > 0.5).float()
        for squash in ("clamp", "minmax"):
            xs = synthesize(zz, base_noise(kind, zz), 0.5, squash)
            assert xs.min() >= 0 and xs.max() <= 1


def test_beta_noise_follows_beta_half_half():
    from scipy import stats

    torch.manual_seed(0)
    u = base_noise("beta", torch.zeros(20000))
    assert u.min() >= 0 and u.max() <= 1
    assert stats.kstest(u.numpy(), stats.beta(0.5, 0.5).cdf).pvalue > 0.01
    assert stats.kstest(u.numpy(), stats.uniform().cdf).pvalue < 1e-6  # the test can tell them apart
    g = base_noise("gaussian", torch.zeros(20000))
    assert stats.kstest(g.numpy(), stats.norm().cdf).pvalue > 0.01


def test_theta_loss_by_hand():
    model = dnr()
    model.eval()  # no dropout: the two logits are deterministic given x and x'
    batch = make_batch()
    torch.manual_seed(1)
    l_direct, l_z = model.calculate_loss(batch)
    torch.manual_seed(1)
    x_syn = model.synthetic_scores(batch)
    real = model.backbone(batch)
    syn = model.backbone(batch, x_syn)
    assert l_direct.item() == pytest.approx(F.binary_cross_entropy_with_logits(real, batch[LABEL]).item(), rel=1e-5)
    assert l_z.item() == pytest.approx(0.5 * F.binary_cross_entropy_with_logits(syn, batch[LABEL]).item(), rel=1e-5)


def test_generator_loss_by_hand():
    model = dnr()
    model.eval()
    model.phase = LEARNED
    batch = make_batch()
    torch.manual_seed(3)
    loss = model.generator_loss(batch)
    torch.manual_seed(3)
    x_syn = model.synthetic_scores(batch)
    expected = -F.binary_cross_entropy_with_logits(model.backbone(batch, x_syn), batch[LABEL]) + score_kl(
        x_syn, batch[SCORE], 10)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _trainer_like(model, lr=0.01):
    theta_opt = torch.optim.Adam(model.theta_parameters(), lr=lr)
    phi_opt = torch.optim.Adam(model.phi_parameters(), lr=lr)
    return theta_opt, phi_opt


def test_adv_step_moves_phi_only():
    from recbole_dnr.trainer.dnr_trainer import DNRSchedule

    model = dnr()
    model.phase = LEARNED
    batch = make_batch()
    theta_opt, phi_opt = _trainer_like(model)
    # one θ step so the θ optimizer has state that must not move
    theta_opt.zero_grad()
    sum(model.calculate_loss(batch)).backward()
    theta_opt.step()
    theta_before = copy.deepcopy(model.backbone.state_dict())
    theta_opt_before = copy.deepcopy(theta_opt.state_dict())
    phi_before = copy.deepcopy(model.generator.state_dict())
    grads_before = [None if p.grad is None else p.grad.clone() for p in model.theta_parameters()]

    schedule = DNRSchedule.__new__(DNRSchedule)  # the trainer's schedule, with our φ optimizer
    schedule.dnr, schedule.optimizer, schedule.phi = model, phi_opt, list(model.phi_parameters())
    schedule.sync = None
    for _ in range(3):
        schedule.generator_step(batch)

    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, theta_before[k]), k  # bit-identical
    assert str(theta_opt.state_dict()) == str(theta_opt_before)
    for p, g in zip(model.theta_parameters(), grads_before):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)  # no gradient leaked into θ
    moved = [not torch.equal(v, phi_before[k]) for k, v in model.generator.state_dict().items()]
    assert any(moved)


def test_theta_step_leaves_phi_unchanged():
    model = dnr()
    model.phase = LEARNED
    batch = make_batch()
    theta_opt, _ = _trainer_like(model)
    phi_before = copy.deepcopy(model.generator.state_dict())
    theta_before = copy.deepcopy(model.backbone.state_dict())
    theta_opt.zero_grad()
    sum(model.calculate_loss(batch)).backward()
    theta_opt.step()
    for k, v in model.generator.state_dict().items():
        assert torch.equal(v, phi_before[k])
    assert all(p.grad is None for p in model.phi_parameters())  # x' was detached
    assert any(not torch.equal(v, theta_before[k]) for k, v in model.backbone.state_dict().items())


def test_minimising_lx_moves_synthetic_scores_toward_real_distribution():
    torch.manual_seed(0)
    x_real = torch.distributions.Beta(5.0, 2.0).sample((64, 20))  # mass near 0.7-0.9
    z = (torch.rand(64, 20) > 0.8).float()
    gen = LearnedNoise(16)
    opt = torch.optim.Adam(gen.parameters(), lr=0.02)

    def kl():
        u = torch.rand(64, 20)
        return score_kl(synthesize(z, gen(u, z, x_real), 0.9), x_real, 20)

    with torch.no_grad():
        start = sum(kl().item() for _ in range(5)) / 5
    for _ in range(150):
        opt.zero_grad()
        kl().backward()
        opt.step()
    with torch.no_grad():
        end = sum(kl().item() for _ in range(5)) / 5
        x_syn = synthesize(z, gen(torch.rand(64, 20), z, x_real), 0.9)
    assert end < 0.5 * start
    assert abs(x_syn.mean().item() - x_real.mean().item()) < 0.1


def test_soft_histogram_is_a_distribution():
    h = soft_histogram(torch.rand(1000), bins=10)
    assert h.sum().item() == pytest.approx(1.0) and h.shape == (10,)
    assert score_kl(torch.rand(1000), torch.rand(1000)).item() == pytest.approx(0.0, abs=0.02)


def test_predict_is_backbone_forward_on_real_x():
    model = dnr()
    model.eval()
    batch = make_batch()
    assert torch.equal(model.predict(batch), model.backbone.predict(batch))


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_second_backbone_wraps_without_dnr_code(fusion):
    model = dnr("TinyBackbone", score_fusion=fusion)
    batch = make_batch()
    l_direct, l_z = model.calculate_loss(batch)
    assert l_direct.ndim == 0 and l_z.ndim == 0 and math.isfinite(l_z.item())
    assert model.predict(batch).shape == (B, N)
    assert "DNR_TinyBackbone" in __import__("recbole_dnr.utils", fromlist=["x"]).reranker_names()


def test_score_fusion_decides_where_x_enters():
    batch = make_batch()
    for fusion in ("early", "late"):
        model = dnr(score_fusion=fusion).backbone
        model.eval()
        x2 = torch.rand(B, N)
        h1, h2 = model.encode(batch, batch[SCORE]), model.encode(batch, x2)
        assert torch.equal(h1, h2) == (fusion == "late")  # late: the encoder never sees x
        assert not torch.equal(model(batch), model(batch, x2))


def test_dnr_is_not_a_backbone():
    with pytest.raises(ValueError, match="not a reranker backbone"):
        get_model("DNR_Retriever")


def test_phi_step_reuses_the_encoder_output_under_late_fusion():
    model = dnr()  # dropout 0, late fusion
    model.phase = LEARNED
    model.train()
    batch = make_batch()
    model.calculate_loss(batch)
    assert model._encoded is not None and model._encoded[0] is batch
    torch.manual_seed(5)
    cached = model.generator_loss(batch)
    model._encoded = None
    torch.manual_seed(5)
    recomputed = model.generator_loss(batch)
    assert cached.item() == pytest.approx(recomputed.item(), rel=1e-5)
    early = dnr(score_fusion="early")
    early.train()
    early.calculate_loss(batch)
    assert early._encoded is None  # early fusion: x' changes the encoder input, nothing to reuse


@pytest.mark.parametrize("form", ["residual", "direct", "conditioned"])
def test_generator_forms(form):
    """direct outputs x' in [0, 1] itself; residual and conditioned start equal to the heuristic
    noise; conditioned reads the backbone's candidate states; every form trains φ only."""
    model = dnr(generator_form=form)
    model.phase = LEARNED
    batch = make_batch()
    h = model.backbone.encode(batch, batch[SCORE]).detach()
    torch.manual_seed(5)
    x_syn = model.synthetic_scores(batch, h)
    assert x_syn.shape == (B, N) and x_syn.min() >= 0 and x_syn.max() <= 1
    torch.manual_seed(5)
    model.phase = "heuristic"
    heuristic = model.synthetic_scores(batch, h)
    model.phase = LEARNED
    if form == "direct":
        assert not torch.allclose(x_syn, heuristic)
    else:
        torch.testing.assert_close(x_syn, heuristic)
    if form == "conditioned":
        with torch.no_grad():
            model.generator.mlp[-1].weight.fill_(0.1)
        u = torch.randn(B, N)
        assert not torch.allclose(model.synthetic_scores(batch, h, u), model.synthetic_scores(batch, h * 2, u))
    loss = model.generator_loss(batch)
    loss.backward(inputs=list(model.phi_parameters()))
    assert all(p.grad is None for p in model.theta_parameters())


def test_unknown_generator_form_is_a_clear_error():
    with pytest.raises(ValueError, match="generator_form"):
        dnr(generator_form="magic")
