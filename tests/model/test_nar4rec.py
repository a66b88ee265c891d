"""NAR4Rec (our reading): the position × candidate matrix, contrastive decoding, the (un)likelihood
steps, a sequence it must learn, the batched evaluator's pick, DNR over it, serving and export."""

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import LABEL, SCORE, SLATE_MASK
from recbole_dnr.model.generative import sequence_scores
from recbole_dnr.quick_start import objective_function
from recbole_dnr.registry import get_model

from conftest import smoke_config
from .test_dnr import B, N, FakeDataset, make_batch, make_config
from serve.test_serve import test_rerank_and_its_onnx_export_give_the_evaluators_scores as serves_and_exports

K = 3
NAR_KEYS = {"slate_size": K, "nar_decoder_layers": 1, "nar_alphas": [0.0, 0.3, 0.9], "nar_utility_threshold": 1.0,
            "nar_cl_margin": 0.5, "nar_cl_weight": 0.1, "nar_evaluator_weight": 1.0}


def build(name="NAR4Rec", **over):
    torch.manual_seed(0)
    return get_model(name)(make_config(**{**NAR_KEYS, **over}), FakeDataset())


def padded_batch():
    batch = make_batch()
    items = batch["item_id"].clone()
    items[:, -3:] = 0
    return Interaction({**batch.interaction, "item_id": items})


def test_matrix_rows_sum_to_one_and_padding_gets_nothing():
    model = build().eval()
    batch = padded_batch()
    with torch.no_grad():
        log_p, _ = model.position_matrix(batch, model.encode(batch, batch[SCORE]))
    assert log_p.shape == (B, K, N)
    p = log_p.exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(B, K))
    assert (p[:, :, -3:] == 0).all()


def test_decoding_gives_distinct_valid_candidates_and_alpha_zero_is_argmax_with_exclusion():
    model = build().eval()
    batch = padded_batch()
    valid = batch["item_id"] > 0
    with torch.no_grad():
        h = model.encode(batch, batch[SCORE])
        log_p, _ = model.position_matrix(batch, h)
        seq = model.decode(log_p, h, valid)
    assert seq.shape == (B, 3, K)
    assert all(len(set(row)) == K for row in seq.flatten(0, 1).tolist()) and (seq < N - 3).all()
    for b in range(B):  # α = 0: slot by slot, the most probable candidate not yet chosen
        taken, expect = set(), []
        for j in range(K):
            order = log_p[b, j].argsort(descending=True).tolist()
            pick = next(i for i in order if i not in taken)
            taken.add(pick)
            expect.append(pick)
        assert seq[b, 0].tolist() == expect


def test_a_larger_alpha_picks_less_similar_items():
    model = build(nar_alphas=[0.0, 0.95]).eval()
    sims = []
    for seed in range(5):
        batch = make_batch(seed)
        with torch.no_grad():
            h = model.encode(batch, batch[SCORE])
            seq = model.decode(model.position_matrix(batch, h)[0], h, batch["item_id"] > 0)
        u = torch.nn.functional.normalize(h, dim=-1)
        for a in range(2):
            chosen = u.gather(1, seq[:, a, :, None].expand(-1, -1, u.shape[-1]))
            cos = chosen @ chosen.transpose(1, 2)
            sims.append((a, ((cos.sum((1, 2)) - K) / (K * (K - 1))).mean().item()))
    mean = [sum(v for a, v in sims if a == i) / 5 for i in range(2)]
    assert mean[1] < mean[0], mean


@pytest.mark.parametrize("positive", [True, False])
def test_one_likelihood_step_raises_and_one_unlikelihood_step_lowers_the_sequence(positive):
    model = build().train()
    model.dropout.p = 0.0
    batch = make_batch()
    y = torch.arange(K).expand(B, K)
    flags = torch.full((B,), positive)

    def mass():
        log_p, _ = model.position_matrix(batch, model.encode(batch, batch[SCORE]))
        return log_p.exp().gather(2, y.unsqueeze(2)).sum()

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = mass()
    log_p, _ = model.position_matrix(batch, model.encode(batch, batch[SCORE]))
    model.generation_loss(log_p, y, flags).backward()
    opt.step()
    with torch.no_grad():
        after = mass()
    assert (after > before) if positive else (after < before)


def test_target_is_the_slate_liked_first_and_its_utility_decides():
    model = build()
    batch = make_batch()
    z = torch.zeros(B, N)
    slate = torch.zeros(B, N, dtype=torch.bool)
    slate[:, [1, 4, 6]] = True
    z[0, 6] = 1.0  # list 0: one liked slate item -> positive, it comes first
    z[1, 2] = 1.0  # list 1: a liked filler does not count -> negative
    b = Interaction({**batch.interaction, LABEL: z, SLATE_MASK: slate})
    y, positive = model.target(b)
    assert y[0, 0].item() == 6 and set(y[0].tolist()) == {1, 4, 6} and set(y[1].tolist()) == {1, 4, 6}
    assert positive.tolist() == [True, False, False, False]


def test_predict_is_the_evaluators_pick_first_deterministic():
    model = build().eval()
    batch = padded_batch()
    with torch.no_grad():
        s, seq = model.choose(batch)
        scores = model.predict(batch)
        assert torch.equal(model.choose(batch)[1], seq)
        h = model.encode(batch, batch[SCORE])
        log_p, g = model.position_matrix(batch, h)
        all_seq = model.decode(log_p, h, batch["item_id"] > 0)
        q = model.evaluate_sequences(g, all_seq)
        # the batched [B·G, k] pass equals scoring each sequence on its own
        one = model.evaluate_sequences(g, all_seq[:, 1:2])
    torch.testing.assert_close(q[:, 1:2], one, rtol=0, atol=1e-5)
    value = (torch.sigmoid(q) * model.slot_discount).sum(-1)
    assert torch.equal(seq, all_seq[torch.arange(B), value.argmax(1)])
    torch.testing.assert_close(scores, sequence_scores(s, seq, batch["item_id"] > 0))


def test_learns_an_ordered_sequence_that_popularity_and_x_order_cannot_give():
    """Target: the K candidates whose x is closest to 0.5, closest first; items are random ids and
    the target's x sit in the middle of the list's range, so neither popularity nor x's order gives it."""
    model = build(nar_alphas=[0.0], nar_cl_weight=0.0, nar_evaluator_weight=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)

    def lists(n):
        side = torch.where(torch.rand(n, N, generator=g) > 0.5, 1.0, -1.0)
        offset = torch.cat([0.03 + 0.08 * torch.arange(K).float().expand(n, K), 0.35 + 0.15 * torch.rand(n, N - K, generator=g)], 1)
        x = 0.5 + side * (offset + 0.01 * torch.rand(n, N, generator=g))
        perm = torch.rand(n, N, generator=g).argsort(1)
        x = x.gather(1, perm)
        y = (x - 0.5).abs().argsort(1)[:, :K]
        slate = torch.zeros(n, N, dtype=torch.bool).scatter(1, y, True)
        batch = Interaction({"user_id": torch.arange(1, n + 1), "item_id": torch.randint(1, 30, (n, N), generator=g),
                             SCORE: x, LABEL: slate.float(), SLATE_MASK: slate,
                             "history_item": torch.randint(1, 30, (n, 5), generator=g),
                             "history_label": torch.ones(n, 5, dtype=torch.long)})
        return batch, y

    for _ in range(300):
        batch, y = lists(32)
        opt.zero_grad()
        log_p, _ = model.position_matrix(batch, model.encode(batch, batch[SCORE]))
        model.generation_loss(log_p, y, torch.ones(32, dtype=torch.bool)).backward()
        opt.step()
    batch, y = lists(200)
    with torch.no_grad():
        _, seq = model.eval().choose(batch)
    exact = (seq == y).all(1).float().mean().item()
    by_x = (batch[SCORE].topk(K, dim=1).indices == y).all(1).float().mean().item()
    assert by_x < 0.1 and exact > 0.9, (exact, by_x)


def test_dnr_nar4rec_trains_the_per_candidate_scorer():
    model = build("DNR_NAR4Rec")
    loss = model.calculate_loss(make_batch())
    total = sum(loss) if isinstance(loss, tuple) else loss
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.slot_embedding.weight.grad is not None  # the generator's losses reach it as aux_loss


@pytest.mark.parametrize("key, value", [("nar_alphas", [1.5]), ("nar_alphas", []), ("nar_decoder_layers", 0),
                                        ("nar_cl_margin", -0.1)])
def test_bad_options_are_refused(slice_root, key, value):
    from recbole_dnr.config import Config

    with pytest.raises(UserInputError, match=key):
        Config(config_dict=smoke_config(slice_root, model="NAR4Rec", **{key: value}))


def test_smoke_ml100k_slice(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="NAR4Rec", epochs=1, retriever_epochs=2)
    result = objective_function(cfg, saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0


def test_serves_and_exports_as_evaluated(slice_root, in_session_dir, tmp_path):
    serves_and_exports(slice_root, in_session_dir, {"model": "NAR4Rec"}, tmp_path)


def test_smoke_dnr_nar4rec_slice(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="DNR_NAR4Rec", epochs=2, lambda_e=1)
    result = objective_function(cfg, saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0
