"""EGRerank: the generator's masking and permutations, PPO's ratio and advantages by hand, a bandit
it must learn, the two-phase trainer and its resume across the switch, serving and export, DNR's refusal."""

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import SCORE
from recbole_dnr.model.generative import pointer_decode, sequence_scores
from recbole_dnr.model.rerankers.egrerank import lstm_cell
from recbole_dnr.quick_start import objective_function
from recbole_dnr.quick_start.quick_start import build as build_run
from recbole_dnr.registry import get_model

from conftest import smoke_config
from .test_dnr import B, N, FakeDataset, make_batch, make_config
from serve.test_serve import test_rerank_and_its_onnx_export_give_the_evaluators_scores as serves_and_exports

K = 3
EGR_KEYS = {"slate_size": K, "egr_rep": 4, "egr_gamma": 0.01, "egr_clip": 0.1, "egr_entropy_weight": 1e-3,
            "egr_encoder_layers": [16, 8], "egr_decoder_hidden": 8, "egr_pointer_layers": [16, 8]}


def build(**over):
    torch.manual_seed(0)
    model = get_model("EGRerank")(make_config(**{**EGR_KEYS, **over}), FakeDataset())
    model.generator_on.fill_(True)
    return model


def padded_batch():
    batch = make_batch()
    items = batch["item_id"].clone()
    items[:, -3:] = 0  # the last 3 candidates of every list are padding
    return Interaction({**batch.interaction, "item_id": items})


def test_generated_lists_are_k_distinct_real_candidates_greedy_and_sampled():
    model = build().eval()
    batch = padded_batch()
    with torch.no_grad():
        s, seq = model.choose(batch)
        scores = model.predict(batch)
        assert torch.equal(model.choose(batch)[1], seq)  # evaluation is deterministic (greedy)
    assert seq.shape == (B, K) and s.shape == (B, N)
    assert all(len(set(row)) == K for row in seq.tolist()) and (seq < N - 3).all()
    assert torch.isinf(scores[:, -3:]).all() and (scores[:, -3:] < 0).all()
    assert torch.equal(scores.argsort(1, descending=True)[:, :K], seq)
    torch.testing.assert_close(scores, sequence_scores(s, seq, batch["item_id"] > 0))
    model.train()  # training samples: still K distinct real candidates
    for _ in range(5):
        _, drawn = model.choose(batch)
        assert all(len(set(row)) == K for row in drawn.tolist()) and (drawn < N - 3).all()


def test_lstm_cell_written_out_equals_torchs():
    cell = torch.nn.LSTMCell(5, 4)
    x, h, c = torch.randn(3, 5), torch.randn(3, 4), torch.randn(3, 4)
    for state in (None, (h, c)):
        for mine, theirs in zip(lstm_cell(cell, x, state), cell(x, state)):
            torch.testing.assert_close(mine, theirs)


def test_before_the_generator_trains_predict_is_the_evaluator():
    model = build().eval()
    model.generator_on.fill_(False)
    batch = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(model.predict(batch), model.forward(batch))


def test_ppo_ratio_is_one_before_the_update():
    """π_θ re-evaluated on the sampled trajectory equals π_old (LibRerank's teacher forcing on the
    initial order breaks this)."""
    model = build().train()
    batch = make_batch()
    valid = batch["item_id"] > 0
    with torch.no_grad(), model.evaluator_frozen():
        f = model.candidate_features(batch)[1]
        seq, old = pointer_decode(model.stepper(f), K, valid, sample=True, generator=torch.Generator().manual_seed(2))
        new, entropy = model.policy(f, valid, seq)
    torch.testing.assert_close(new, old, rtol=0, atol=1e-6)
    assert (entropy > 0).all() and (entropy <= torch.log(torch.tensor(float(N))) + 1e-6).all()


def test_advantages_by_hand():
    model = build(egr_gamma=0.5)
    rewards = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # one list, two copies, k = 2
    # returns: copy 0 -> [1 + 0.5·0, 0] = [1, 0]; copy 1 -> [0 + 0.5·1, 1] = [0.5, 1]
    # standardised over the copies: slot 0 (1, 0.5) -> (+1, -1); slot 1 (0, 1) -> (-1, +1)
    torch.testing.assert_close(model.advantages(rewards), torch.tensor([[[1.0, -1.0], [-1.0, 1.0]]]))
    same = model.advantages(torch.ones(1, 3, 2))
    assert torch.equal(same, torch.zeros(1, 3, 2))  # std 0: advantage 0, not NaN


def test_evaluator_rewards_read_each_copy_in_its_own_order():
    model = build().eval()
    batch = make_batch()
    seq = torch.stack([torch.arange(K), torch.arange(K).flip(0)])[None].expand(B, 2, K)
    with torch.no_grad():
        r = model.sequence_rewards(batch, seq).view(B, 2, K)
        sub = Interaction({**batch.interaction, "item_id": batch["item_id"][:, :K], SCORE: batch[SCORE][:, :K]})
        torch.testing.assert_close(r[:, 0], torch.sigmoid(model.forward(sub)))  # copy 0 = the list's first K
    assert not torch.allclose(r[:, 1].flip(1), r[:, 0])  # the GRU reads the order


def band_batch(g, n_lists):
    """Lists whose K good candidates have x in (0.4, 0.6), K others x > 0.75, the rest x < 0.25, items
    random: neither the item ids (popularity) nor the order of x tells the good ones apart."""
    x = torch.cat([0.4 + 0.2 * torch.rand(n_lists, K, generator=g), 0.75 + 0.25 * torch.rand(n_lists, K, generator=g),
                   0.25 * torch.rand(n_lists, N - 2 * K, generator=g)], 1)
    x = x.gather(1, torch.rand(n_lists, N, generator=g).argsort(1))
    batch = Interaction({"user_id": torch.arange(1, n_lists + 1), "item_id": torch.randint(1, 30, (n_lists, N), generator=g),
                         SCORE: x, "label": torch.zeros(n_lists, N),
                         "history_item": torch.randint(0, 30, (n_lists, 5), generator=g),
                         "history_label": torch.randint(0, 2, (n_lists, 5), generator=g)})
    return batch, ((x > 0.4) & (x < 0.6)).float()


def test_ppo_learns_a_bandit_no_popularity_or_x_order_solves():
    """A frozen fake evaluator pays 1 per good candidate placed; greedy decoding must learn to place them."""
    model = build(egr_rep=4, egr_entropy_weight=0.0)
    torch.nn.init.zeros_(model.item_embedding.weight)  # random item vectors would only hide x from the generator
    good = {}
    model.sequence_rewards = lambda batch, seq: good["z"].repeat_interleave(seq.shape[1], 0).gather(1, seq.flatten(0, 1))
    opt = torch.optim.Adam(model.generator.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(0)
    test, z = band_batch(torch.Generator().manual_seed(9), 200)
    hits = []
    for _ in range(2):
        model.train()
        for _ in range(50):
            batch, good["z"] = band_batch(g, 32)
            opt.zero_grad()
            model.generator_loss(batch).backward()
            opt.step()
        with torch.no_grad():
            hits.append(z.gather(1, model.eval().choose(test)[1]).mean().item())
    x_order = z.gather(1, test[SCORE].topk(K, dim=1).indices).mean().item()
    assert x_order == 0.0 and hits[-1] > 0.9 and hits[-1] >= hits[0], (hits, x_order)


def test_dnr_egrerank_is_refused_naming_why():
    with pytest.raises(UserInputError, match="phases of its own.*generator would stay untrained"):
        get_model("DNR_EGRerank")


@pytest.mark.parametrize("key, value", [("egr_rep", 1), ("egr_clip", 0.0), ("egr_clip", 1.0), ("egr_gamma", 1.5),
                                        ("egr_evaluator_epochs", 0), ("egr_pointer_layers", [0])])
def test_bad_options_are_refused(slice_root, key, value):
    from recbole_dnr.config import Config

    with pytest.raises(UserInputError, match=key):
        Config(config_dict=smoke_config(slice_root, model="EGRerank", **{key: value}))


class Stop(Exception):
    pass


def fit_and_test(cfg, stop_at=None):
    config, _, (train, valid, test), _, trainer = build_run(config_dict=cfg)
    if stop_at is not None:
        inner = trainer._train_epoch

        def stopping(train_data, epoch_idx, *a, **kw):
            if epoch_idx == stop_at:
                raise Stop()
            return inner(train_data, epoch_idx, *a, **kw)

        trainer._train_epoch = stopping
    trainer.fit(train, valid, saved=True)
    return trainer, trainer.evaluate(test, load_best_model=True)


def test_two_phases_and_resume_across_the_switch(slice_root, in_session_dir, tmp_path):
    # one epoch per phase and two trajectories per list: the switch is what is tested, not the training
    cfg = smoke_config(slice_root, model="EGRerank", epochs=1, egr_evaluator_epochs=1, egr_rep=2, stopping_step=10,
                       resume=True, checkpoint_dir=str(tmp_path / "a"))
    plain, plain_test = fit_and_test(cfg)
    assert plain.epochs == 2 and len(plain.valid_curve) == 2
    assert bool(plain.model.generator_on)  # the kept checkpoint is a trained generator's
    cfg["checkpoint_dir"] = str(tmp_path / "b")
    with pytest.raises(Stop):  # killed in the first generator epoch: the saved state is the evaluator's last
        fit_and_test(cfg, stop_at=1)
    resumed, resumed_test = fit_and_test(cfg)
    assert resumed.resumed_after == 0
    assert resumed.valid_curve == plain.valid_curve and resumed_test == plain_test


def test_smoke_ml100k_slice(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="EGRerank", epochs=1, retriever_epochs=2, egr_evaluator_epochs=1)
    result = objective_function(cfg, saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0


def test_serves_and_exports_as_evaluated(slice_root, in_session_dir, tmp_path):
    serves_and_exports(slice_root, in_session_dir, {"model": "EGRerank", "egr_evaluator_epochs": 1}, tmp_path)
