"""DCDR: swap noise keeps permutations and mixes with t, the beam keeps permutations, early stop,
the loss falls and decoding beats the start on a toy, determinism, padding, option checks,
resume, export refusal and smoke runs (DCDR, DNR_DCDR)."""

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr import options
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE, SLATE_MASK
from recbole_dnr.model.diffusion import swap_betas, swap_noise
from recbole_dnr.quick_start import objective_function
from recbole_dnr.registry import get_model

from conftest import smoke_config
from .test_dnr import B, N, FakeDataset, make_batch, make_config

KEYS = {"slate_size": 3, "dcdr_layers": 1, "dcdr_steps": 10, "dcdr_beta_start": 0.05, "dcdr_beta_end": 0.5,
        "dcdr_start_step": 3, "dcdr_beam": 3, "dcdr_denoiser_weight": 1.0, "dcdr_evaluator_weight": 1.0}


def build(**over):
    torch.manual_seed(0)
    return get_model("DCDR")(make_config(**{**KEYS, **over}), FakeDataset())


def is_permutation(p):
    return torch.equal(p.sort(-1).values, torch.arange(p.shape[-1]).expand_as(p))


def kendall_distance(p):
    """Share of discordant pairs ``[B, n] -> [B]`` against the identity."""
    n = p.shape[1]
    inv = (p.unsqueeze(2) > p.unsqueeze(1)).triu(1).sum((1, 2)).float()
    return inv / (n * (n - 1) / 2)


def test_swap_noise_keeps_permutations_and_mixes_with_t():
    n, T, draws = 50, 10, 400
    betas = swap_betas(T)
    g = torch.Generator().manual_seed(0)
    x0 = torch.arange(n).expand(draws, n)
    assert torch.equal(swap_noise(x0, torch.zeros(draws, dtype=torch.long), betas, g), x0)
    means = []
    for t in range(1, T + 1):
        xt = swap_noise(x0, torch.full((draws,), t), betas, g)
        assert is_permutation(xt)
        means.append(kendall_distance(xt).mean().item())
    assert all(a < b for a, b in zip(means, means[1:]))
    assert abs(means[-1] - 0.5) < 0.05  # a uniformly random permutation's mean is 1/2 (±10%)
    mixed = swap_noise(x0[:4], torch.tensor([0, 3, 10, 0]), betas, g)  # per-row steps
    assert torch.equal(mixed[0], x0[0]) and torch.equal(mixed[3], x0[3])


def test_target_puts_the_shown_items_first_with_their_responses():
    model = build()
    batch = make_batch()
    slate = torch.zeros(B, N, dtype=torch.bool)
    slate[:, [1, 4, 6]] = True
    slate[3] = False  # no slate: the liked items are the shown ones
    x0, c = model.target(Interaction(dict(batch.interaction, **{SLATE_MASK: slate})))
    assert is_permutation(x0)
    z = batch[LABEL]
    for r in range(B):
        shown = slate[r] if r < 3 else z[r] > 0
        m = int(shown.sum())
        assert set(x0[r, :m].tolist()) == set(torch.nonzero(shown).squeeze(1).tolist())
        assert c[r, :m].tolist() == z[r, x0[r, :m]].long().tolist() and (c[r, m:] == 2).all()
        x = batch[SCORE][r]
        assert (x[x0[r, :m]].diff() <= 0).all() and (x[x0[r, m:]].diff() <= 0).all()  # retriever order within


def test_beams_are_permutations_and_output_is_k_distinct_valid_candidates():
    model = build().eval()
    batch = make_batch()
    items = batch["item_id"].clone()
    items[:, 0] = 0  # a padding candidate, ranked first by x
    x = batch[SCORE].clone()
    x[:, 0] = 1.0
    batch = Interaction(dict(batch.interaction, item_id=items, **{SCORE: x}))
    with torch.no_grad():
        beams, scores, steps = model.decode(batch, model.encode(batch, x))
        assert is_permutation(beams) and 1 <= steps <= 3 and torch.isfinite(scores[:, 0]).all()
        s, seq = model.choose(batch)
        assert (seq != 0).all() and all(len(set(r.tolist())) == 3 for r in seq)
        scores = model.predict(batch)
    assert (scores[:, 0] == float("-inf")).all()
    top = scores.topk(3, dim=1).indices
    assert torch.equal(top, seq)  # the chosen list first, in its order


def test_every_proposal_of_a_reverse_step_is_a_permutation():
    model = build(dcdr_beam=4)
    g = torch.Generator().manual_seed(5)
    perm = torch.stack([torch.randperm(N, generator=g) for _ in range(6)])
    valid = torch.ones(6, N, dtype=torch.bool)
    valid[:, -1] = False  # one padding candidate: never among the k shown slots of the greedy proposal
    logp = torch.log_softmax(torch.randn(6, N, N, generator=g), -1).masked_fill(
        (torch.arange(N) < 3)[None, :, None] & ~valid[:, None, :], float("-inf"))
    props = model.proposals(logp, perm, valid)
    assert props.shape == (6, 2 + 4, N) and is_permutation(props)
    assert torch.equal(props[:, 0], perm) and (props[:, 1, :3] != N - 1).all()
    assert ((props[:, 2:] != perm.unsqueeze(1)).sum(-1) == 2).all()  # single transpositions


def test_early_stop_when_the_denoiser_keeps_the_start(monkeypatch):
    model = build(dcdr_start_step=5).eval()
    batch = make_batch()
    calls = []

    def keep(h, perm, t, c, valid):  # x₀ = x_t with certainty: nothing to improve
        calls.append(int(t[0]))
        return torch.where(torch.nn.functional.one_hot(perm, perm.shape[1]).bool(), 0.0, -30.0)

    monkeypatch.setattr(model, "pointer_logprobs", keep)
    with torch.no_grad():
        beams, _, steps = model.decode(batch, model.encode(batch, batch[SCORE]))
    assert steps == 1 and calls == [5]
    assert torch.equal(beams[:, 0], model.start(batch))


def test_evaluation_is_deterministic_and_batch_independent():
    model = build().eval()
    batch = make_batch()
    with torch.no_grad():
        a = model.predict(batch)
        assert torch.equal(model.predict(batch), a)
        head = Interaction({k: v[:2] for k, v in batch.interaction.items()})
        torch.testing.assert_close(model.predict(head), a[:2], rtol=0, atol=1e-5)


def toy_batch(g, batch=32, n=8, n_items=40):
    """Liked iff the item id is odd; x is noise, so the retriever's order is uninformative."""
    items = torch.stack([torch.randperm(n_items, generator=g)[:n] + 1 for _ in range(batch)])
    z = (items % 2 == 1).float()
    return Interaction({"user_id": torch.arange(batch), "item_id": items, SCORE: torch.rand(batch, n, generator=g),
                        LABEL: z, SLATE_MASK: torch.zeros(batch, n, dtype=torch.bool),
                        HISTORY_ITEM: torch.zeros(batch, 5, dtype=torch.long),
                        HISTORY_LABEL: torch.zeros(batch, 5, dtype=torch.long)})


def ndcg_at(seq, z, k=3):
    disc = 1.0 / torch.log2(torch.arange(k, dtype=torch.float) + 2)
    gains = (z.gather(1, seq[:, :k]) * disc).sum(1)
    ideal = (z.sort(1, descending=True).values[:, :k] * disc).sum(1)
    return (gains / ideal.clamp(min=1e-9)).mean().item()


def test_loss_falls_and_decoding_beats_the_start_on_a_toy():
    torch.manual_seed(0)
    model = get_model("DCDR")(make_config(**KEYS, score_fusion="none"), type("D", (), {"num": lambda s, f: 41})())
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(150):
        batch = toy_batch(g)
        l_direct, l_aux = model.calculate_loss(batch)
        opt.zero_grad()
        (l_direct + l_aux).backward()
        opt.step()
        losses.append(l_aux.item())
    assert sum(losses[-15:]) < 0.8 * sum(losses[:15])
    batch = toy_batch(torch.Generator().manual_seed(2), batch=200)
    model.eval()
    with torch.no_grad():
        _, seq = model.choose(batch)
    assert ndcg_at(seq, batch[LABEL]) > ndcg_at(model.start(batch), batch[LABEL]) + 0.2


def test_option_checks_and_export_refusal():
    with pytest.raises(UserInputError, match="dcdr_start_step <= dcdr_steps"):
        build(dcdr_start_step=11)
    with pytest.raises(UserInputError, match="dcdr_beta_start"):
        get_model("DCDR").check_config({"dcdr_beta_start": 0.6, "dcdr_beta_end": 0.5})
    with pytest.raises(UserInputError, match="dcdr_beam"):
        options.check({"dcdr_beam": 0}, get_model("DCDR"))
    with pytest.raises(UserInputError, match="dcdr_beta_end"):
        options.check({"dcdr_beta_end": 1.5}, get_model("DCDR"))
    from recbole_dnr.serve.export import check_exportable

    with pytest.raises(UserInputError, match="DCDR cannot be exported.*beam decoding stops early"):
        check_exportable(build())
    wrapper = type("W", (), {"backbone": build()})()
    with pytest.raises(UserInputError, match="DCDR cannot be exported"):
        check_exportable(wrapper)


def test_resume_mid_training(slice_root, in_session_dir):
    from .test_diffurec import resumes_mid_training

    resumes_mid_training(smoke_config(slice_root, model="DCDR", epochs=1, stopping_step=100))


@pytest.mark.parametrize("name", ["DCDR", "DNR_DCDR"])
def test_smoke(slice_root, in_session_dir, name):
    cfg = smoke_config(slice_root, model=name, epochs=1, lambda_e=1)
    result = objective_function(cfg, saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0
