"""DiffuRec: the forward process's moments, the reverse chain, the loss on a toy next-item task,
deterministic evaluation, padding, option checks, resume, and smoke runs (DiffuRec, DNR_DiffuRec)."""

import math

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr import options
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE
from recbole_dnr.model.diffusion import GaussianDiffusion, trunc_lin_betas
from recbole_dnr.quick_start import objective_function
from recbole_dnr.registry import get_model

from conftest import smoke_config
from .test_dnr import B, H, N, FakeDataset, make_batch, make_config

KEYS = {"diffurec_steps": 8, "diffurec_schedule": "trunc_lin", "diffurec_lambda": 0.001, "diffurec_eval_steps": None,
        "diffurec_eval_chain": "mean", "diffurec_loss": "full_ce", "diffurec_loss_weight": 1.0}


def build(**over):
    torch.manual_seed(0)
    return get_model("DiffuRec")(make_config(**{**KEYS, **over}), FakeDataset())


def test_trunc_lin_schedule_by_hand():
    betas = trunc_lin_betas(32)
    assert betas[0].item() == pytest.approx(0.01 + 1e-4 * 1000 / 32)  # 0.013125
    assert betas[-1].item() == pytest.approx(0.01 + 0.02 * 1000 / 32)  # 0.635
    abar = GaussianDiffusion(betas).alphas_cumprod
    assert abar[0].item() == pytest.approx(1 - 0.013125, rel=1e-6)
    assert abar[-1].item() < 1e-5
    assert trunc_lin_betas(8).max().item() == pytest.approx(0.999)  # capped where 1000/T makes β > 1


@pytest.mark.parametrize("t", [0, 15, 31])
def test_q_sample_moments_match_the_schedule(t):
    diffusion = GaussianDiffusion(trunc_lin_betas(32))
    g = torch.Generator().manual_seed(t)
    x0 = torch.linspace(-2, 2, 8)
    draws = 20000
    xt = diffusion.q_sample(x0.expand(draws, -1), torch.full((draws,), t), torch.randn(draws, 8, generator=g))
    abar = diffusion.alphas_cumprod[t].item()
    var = 1 - abar
    # the mean's standard error is sqrt(var / draws); 5 of them, plus float noise
    torch.testing.assert_close(xt.mean(0), math.sqrt(abar) * x0, rtol=0, atol=5 * math.sqrt(var / draws) + 1e-6)
    assert (xt.var(0) / var - 1).abs().max().item() < 0.05


@pytest.mark.parametrize("steps", [32, 8, 1])
def test_reverse_chain_with_an_exact_denoiser_returns_x0(steps):
    diffusion = GaussianDiffusion(trunc_lin_betas(32)).respaced(steps)
    x0 = torch.randn(3, 5)
    seen = []

    def exact(x_t, t):
        seen.append(int(t[0]))
        return x0

    for noise in (None, lambda shape: torch.randn(shape)):
        seen.clear()
        out = diffusion.reverse(exact, torch.randn(3, 5), noise)
        torch.testing.assert_close(out, x0, rtol=0, atol=1e-3)
        assert seen[0] == 31 and seen[-1] == 0 and len(seen) == steps if steps > 1 else seen == [0]


def test_respacing_keeps_the_marginals_of_the_kept_steps():
    full = GaussianDiffusion(trunc_lin_betas(32))
    short = full.respaced(8)
    torch.testing.assert_close(short.alphas_cumprod, full.alphas_cumprod[short.timesteps], rtol=1e-5, atol=1e-9)
    assert short.timesteps.tolist() == [0, 4, 9, 13, 18, 22, 27, 31]


def toy_batch(g, n_items=12, batch=32, n=6, hist=4):
    """Histories a, a+1, ..., a+hist-1 (mod n_items, ids 1..n_items); the liked candidate is the next one."""
    start = torch.randint(0, n_items, (batch, 1), generator=g)
    history = (start + torch.arange(hist)) % n_items + 1
    nxt = (start[:, 0] + hist) % n_items + 1
    others = torch.stack([torch.randperm(n_items, generator=g) + 1 for _ in range(batch)])
    others = torch.stack([row[row != t][:n - 1] for row, t in zip(others, nxt)])
    slot = torch.randint(0, n, (batch,), generator=g)
    items = torch.cat([others, others[:, :1]], 1)
    items[torch.arange(batch), slot] = nxt
    items[torch.arange(batch), torch.where(slot == n - 1, 0, n - 1)] = others[:, -1]  # n distinct candidates
    label = torch.zeros(batch, n)
    label[torch.arange(batch), slot] = 1.0
    return Interaction({"user_id": torch.arange(batch), "item_id": items, SCORE: torch.full((batch, n), 0.5),
                        LABEL: label, HISTORY_ITEM: history, HISTORY_LABEL: torch.ones_like(history)}), slot


@pytest.mark.parametrize("loss", ["full_ce", "list_ce"])
def test_loss_falls_and_the_next_item_is_found_on_a_toy(loss):
    torch.manual_seed(0)
    cfg = make_config(**{**KEYS, "diffurec_loss": loss}, candidate_num=6, max_history=4, score_fusion="none")
    model = get_model("DiffuRec")(cfg, type("D", (), {"num": lambda self, f: 13})())
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(200):
        batch, _ = toy_batch(g)
        l_direct, l_diffu = model.calculate_loss(batch)
        opt.zero_grad()
        (l_direct + l_diffu).backward()
        opt.step()
        losses.append(l_diffu.item())
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20])
    batch, slot = toy_batch(torch.Generator().manual_seed(2), batch=200)
    with torch.no_grad():
        top1 = model.eval().predict(batch).argmax(1)
    assert (top1 == slot).float().mean().item() > 0.9


def test_evaluation_is_deterministic_batch_independent_and_label_free():
    model = build().eval()
    batch = make_batch()
    with torch.no_grad():
        a, b = model.predict(batch), model.predict(batch)
        assert torch.equal(a, b)
        head = Interaction({k: v[:2] for k, v in batch.interaction.items()})
        torch.testing.assert_close(model.predict(head), a[:2], rtol=0, atol=1e-6)
        flipped = dict(batch.interaction)
        flipped[LABEL] = 1 - batch[LABEL]
        assert torch.equal(model.predict(Interaction(flipped)), a)  # evaluation never reads z
    random = build(diffurec_eval_chain="random").eval()
    with torch.no_grad():
        assert not torch.equal(random.predict(batch), random.predict(batch))  # the public code's chain


def test_padding_never_outscores_a_real_candidate_and_history_padding_is_masked():
    model = build().eval()
    batch = make_batch()
    hist = torch.randint(1, 30, (B, H), generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([H, 3, 1, 0])  # left-padded, newest last, as protocol.history builds it
    batch = Interaction(dict(batch.interaction, **{HISTORY_ITEM: hist * (torch.arange(H) >= H - lengths[:, None])}))
    items = batch["item_id"].clone()
    items[:, -2:] = 0
    padded = dict(batch.interaction, item_id=items)
    longer = dict(padded)  # three more padding slots in front of the (left-padded) history
    longer[HISTORY_ITEM] = torch.cat([torch.zeros(B, 3, dtype=torch.long), batch[HISTORY_ITEM]], 1)
    longer[HISTORY_LABEL] = torch.cat([torch.ones(B, 3, dtype=torch.long), batch[HISTORY_LABEL]], 1)
    flipped = dict(padded)
    hole = batch[HISTORY_ITEM] == 0
    assert hole.any()
    flipped[HISTORY_LABEL] = torch.where(hole, 1 - batch[HISTORY_LABEL], batch[HISTORY_LABEL])
    with torch.no_grad():
        s = model.predict(Interaction(padded))
        assert (s[:, -2:] == float("-inf")).all() and torch.isfinite(s[:, :-2]).all()
        torch.testing.assert_close(model.predict(Interaction(longer)), s, rtol=0, atol=1e-5)
        torch.testing.assert_close(model.predict(Interaction(flipped)), s, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fusion", ["none", "late", "weight"])
def test_training_step_and_dnr_contract(fusion):
    model = build(score_fusion=fusion)
    batch = make_batch()
    h = model.encode(batch, batch[SCORE])
    assert h.shape == (B, N, 16) and model.h_dim == 16
    logits = model.head_logits(h, batch[SCORE])
    loss = model.list_loss(logits, batch[LABEL]) + model.aux_loss(batch, h)
    loss.backward()
    assert torch.isfinite(loss) and model.step_mlp[0].weight.grad is not None
    assert model.aux_loss(batch, h) is None  # the pass is consumed once
    with torch.no_grad():
        x2 = torch.rand(B, N)
        model.eval()
        h_eval = model.encode(batch, batch[SCORE])
        torch.testing.assert_close(model.encode(batch, x2), h_eval)  # h is x-free: DNR re-runs the head only


def test_option_checks():
    cls = get_model("DiffuRec")
    with pytest.raises(UserInputError, match="score_fusion: early"):
        cls.check_config({"score_fusion": "early"})
    with pytest.raises(UserInputError, match="diffurec_eval_steps=40 exceeds"):
        cls.check_config({"diffurec_steps": 32, "diffurec_eval_steps": 40})
    with pytest.raises(UserInputError, match="diffurec_steps"):
        options.check({"diffurec_steps": 1}, cls)
    with pytest.raises(UserInputError, match="diffurec_eval_chain"):
        options.check({"diffurec_eval_chain": "seeded"}, cls)
    with pytest.raises(UserInputError, match="diffurec_loss"):
        options.check({"diffurec_loss": "mse"}, cls)


def resumes_mid_training(cfg):
    """Train ``cfg`` one epoch, resume its checkpoint in a 2-epoch run: the weights come back exactly,
    the run goes on from epoch 1 and trains on. Returns the resumed trainer."""
    from recbole_dnr.quick_start import build as build_run

    _, _, (train, valid, _), model, trainer = build_run(config_dict=cfg)
    trainer.fit(train, valid, saved=True, show_progress=False)
    _, _, (train2, valid2, _), model2, trainer2 = build_run(config_dict={**cfg, "epochs": 2})
    trainer2.resume_checkpoint(trainer.saved_model_file)
    assert trainer2.start_epoch == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k]), k
    before = {k: v.clone() for k, v in model2.state_dict().items()}
    trainer2.fit(train2, valid2, saved=False, show_progress=False)
    assert any(not torch.equal(v, before[k]) for k, v in model2.state_dict().items())  # it trained on
    return trainer2


def test_resume_mid_training(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="DiffuRec", epochs=1, diffurec_eval_steps=4, stopping_step=100)
    assert len(resumes_mid_training(cfg).valid_curve) >= 1


@pytest.mark.parametrize("name", ["DiffuRec", "DNR_DiffuRec"])
def test_smoke(slice_root, in_session_dir, name):
    cfg = smoke_config(slice_root, model=name, epochs=1, diffurec_eval_steps=4, lambda_e=1)
    result = objective_function(cfg, saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0
