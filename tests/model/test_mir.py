"""MIR: masking of the history and candidates, permutation equivariance (and the official
projection's lack of it), evaluation determinism, the time-decay direction by hand, a synthetic
problem only the history solves, smoke runs (MIR, DNR_MIR), --resume and TorchScript export."""

import json
import math

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr import options
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE
from recbole_dnr.quick_start import objective_function
from recbole_dnr.registry import get_model

from conftest import smoke_config
from .test_dnr import B, N, FakeDataset, make_batch, make_config
from .test_rerankers import MIR_KEYS, shuffled


def build(**over):
    torch.manual_seed(0)
    return get_model("MIR")(make_config(**{**MIR_KEYS, **over}), FakeDataset())


def left_padded_batch(seed=0, H=6):
    """Histories of 0..H real items, left-padded with 0 (newest last), as the list builder writes them."""
    batch = make_batch(seed)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([0, 2, 4, H])[:B]
    items = torch.randint(1, 30, (B, H), generator=g)
    real = torch.arange(H).unsqueeze(0) >= H - lengths.unsqueeze(1)
    out = dict(batch.interaction)
    out[HISTORY_ITEM] = items * real
    out[HISTORY_LABEL] = torch.randint(0, 2, (B, H), generator=g) * real
    return Interaction(out)


@pytest.mark.parametrize("fusion", ["none", "early", "late", "weight"])
def test_shapes_and_a_training_step(fusion):
    model = build(score_fusion=fusion)
    batch = left_padded_batch()
    assert model.encode(batch, batch[SCORE]).shape == (B, N, 16)
    loss = model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.forward_lstm.weight_ih_l0.grad.abs().sum() > 0  # the history reaches the loss
    assert model.eval().predict(batch).shape == (B, N)


@pytest.mark.parametrize("decay", ["decay", "official"])
def test_more_padding_or_what_it_holds_never_changes_a_score(decay):
    model = build(mir_time_decay=decay).eval()
    batch = left_padded_batch()
    real = batch[HISTORY_ITEM] > 0
    more = dict(batch.interaction)
    more[HISTORY_ITEM] = torch.cat([torch.zeros(B, 3, dtype=torch.long), batch[HISTORY_ITEM]], 1)
    # three more padded slots, and every padded slot's feedback flipped to "liked"
    more[HISTORY_LABEL] = torch.cat([torch.ones(B, 3, dtype=torch.long),
                                     torch.where(real, batch[HISTORY_LABEL], 1)], 1)
    with torch.no_grad():
        torch.testing.assert_close(model.predict(Interaction(more)), model.predict(batch), rtol=0, atol=1e-6)


def test_empty_history_gives_finite_scores_and_the_history_matters():
    model = build().eval()
    batch = left_padded_batch()
    assert (batch[HISTORY_ITEM][0] == 0).all()  # request 0 has no history
    empty = dict(batch.interaction)
    empty[HISTORY_ITEM] = torch.zeros_like(batch[HISTORY_ITEM])
    with torch.no_grad():
        full, none = model.predict(batch), model.predict(Interaction(empty))
    assert torch.isfinite(none).all()
    torch.testing.assert_close(none[0], full[0])  # request 0 was already empty
    assert not torch.allclose(none[1:], full[1:], atol=1e-4)


def test_padded_candidates_do_not_change_the_others():
    model = build().eval()
    batch = left_padded_batch()
    other = dict(batch.interaction)
    other["item_id"] = batch["item_id"].clone()
    other["item_id"][:, -1] = 0
    changed = dict(other)
    changed[SCORE] = batch[SCORE].clone()
    changed[SCORE][:, -1] = 0.99  # what a padded candidate carries is not read by the others
    with torch.no_grad():
        torch.testing.assert_close(model.predict(Interaction(changed))[:, :-1],
                                   model.predict(Interaction(other))[:, :-1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("fusion", ["none", "early"])
def test_shared_projection_is_permutation_equivariant_and_official_is_not(fusion):
    batch = left_padded_batch()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    shared, official = build(score_fusion=fusion).eval(), build(score_fusion=fusion,
                                                                 mir_slot_projection="official").eval()
    with torch.no_grad():
        torch.testing.assert_close(shared.predict(shuffled(batch, perm)), shared.predict(batch)[:, perm],
                                   rtol=0, atol=1e-5)
        assert not torch.allclose(official.predict(shuffled(batch, perm)), official.predict(batch)[:, perm],
                                  atol=1e-4)


def test_evaluation_is_deterministic_and_training_is_not():
    model = build(dropout_prob=0.3)
    batch = left_padded_batch()
    with torch.no_grad():
        a, b = model.train().predict(batch), model.predict(batch)
        assert not torch.equal(a, b)  # dropout is on in training
        model.eval()
        torch.testing.assert_close(model.predict(batch), model.predict(batch), rtol=0, atol=0)


@pytest.mark.parametrize("decay, newest_counts_more", [("decay", True), ("official", False)])
def test_time_decay_by_hand(decay, newest_counts_more):
    """θ = 0.5, C = 0.3 everywhere, history [pad, a, b, c] (T = -, 2, 1, 0): C' = tanh(0.3·e^(∓0.5T) + 0.3)."""
    model = build(mir_time_decay=decay)
    last = model.decay[2]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.log(math.exp(0.5) - 1))  # softplus(bias) = 0.5
    real = torch.tensor([[False, True, True, True]])
    C = torch.full((1, 4, 3), 0.3)
    got = model.time_decay(C, torch.randn(1, 4, 2 * 8 + 16), real)  # Q [B, H, 2h + D]: θ no longer reads it
    sign = -1 if decay == "decay" else 1
    want = [0.0] + [math.tanh(0.3 * math.exp(sign * 0.5 * t) + 0.3) for t in (2, 1, 0)]
    torch.testing.assert_close(got[0, :, 0], torch.tensor(want), rtol=0, atol=1e-6)
    assert (got[0, 3, 0] > got[0, 1, 0]) == newest_counts_more


def _synthetic(g, n_lists, H=5, clusters=4):
    """Positives = the candidates in the cluster (id % clusters) of the newest history item; older
    history items are random. Every item is a positive as often as any other, so popularity is blind."""
    items = torch.randint(1, 29, (n_lists, N), generator=g)
    hist = torch.randint(1, 29, (n_lists, H), generator=g)
    z = (items % clusters == hist[:, -1:] % clusters).float()
    return Interaction({"user_id": torch.arange(n_lists), "item_id": items, SCORE: torch.rand(n_lists, N, generator=g),
                        LABEL: z, HISTORY_ITEM: hist, HISTORY_LABEL: torch.ones_like(hist)})


def _auc(scores, z):
    """Mean per-list AUC over the lists that hold both classes."""
    pos, neg = z.unsqueeze(2) > 0, z.unsqueeze(1) == 0
    pairs = pos & neg
    right = ((scores.unsqueeze(2) > scores.unsqueeze(1)) & pairs).sum((1, 2)).float()
    n = pairs.sum((1, 2))
    keep = n > 0
    return (right[keep] / n[keep]).mean().item()


def test_learns_what_only_the_newest_history_item_tells():
    torch.manual_seed(0)
    model = build(score_fusion="none", hidden_size=32, mir_mlp=[64, 32])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    train = _synthetic(g, 4096)
    popularity = torch.zeros(30).index_add_(0, train["item_id"].flatten(), train[LABEL].flatten()) / \
        torch.zeros(30).index_add_(0, train["item_id"].flatten(), torch.ones(train["item_id"].numel())).clamp(min=1)
    for step in range(300):
        rows = torch.randint(0, 4096, (64,), generator=g)
        loss = model.calculate_loss(Interaction({k: v[rows] for k, v in train.interaction.items()}))
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = _synthetic(torch.Generator().manual_seed(2), 512)
    with torch.no_grad():
        auc = _auc(model.eval().predict(test), test[LABEL])
    assert _auc(popularity[test["item_id"]], test[LABEL]) < 0.6
    assert auc > 0.9, auc


@pytest.mark.parametrize("key, value, match", [
    ("mir_time_decay", "grow", "mir_time_decay='grow': expected one of decay, official"),
    ("mir_slot_projection", "slots", "expected one of shared, official"),
    ("mir_mlp", [64, 0], "mir_mlp=\\[64, 0\\]: expected a list of integers >= 1"),
    ("mir_lstm_hidden", 0, "expected an integer >= 1"),
    ("mir_feature_level", "yes", "expected True or False"),
])
def test_bad_options_are_named(key, value, match):
    with pytest.raises(UserInputError, match=match):
        options.check({key: value}, get_model("MIR"))


def test_smoke_mir_and_dnr_mir(slice_root, in_session_dir):
    result = objective_function(smoke_config(slice_root, model="MIR", epochs=1, retriever_epochs=2), saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0
    result = objective_function(smoke_config(slice_root, model="DNR_MIR", epochs=2, lambda_e=1, retriever_epochs=2),
                                saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0


def test_killed_run_resumes_to_the_same_metrics(slice_root, tmp_path):
    from test_reliability import child, finish

    cfg = smoke_config(slice_root, model="MIR", epochs=3, stopping_step=10, resume=True, retriever_epochs=2,
                       checkpoint_dir=str(tmp_path / "saved"))
    code, err = finish(child("train", {**cfg, "resume": False}, str(tmp_path / "plain.json")))
    assert code == 0, err
    plain = json.loads((tmp_path / "plain.json").read_text())
    code, _ = finish(child("train", cfg, str(tmp_path / "killed.json"), "1:2"))
    assert code == -9 and not (tmp_path / "killed.json").exists()
    code, err = finish(child("train", cfg, str(tmp_path / "resumed.json")))
    assert code == 0, err
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed["test"] == plain["test"] and resumed["valid"] == plain["valid"]
    assert sum(resumed["steps"].values()) < sum(plain["steps"].values())


def test_torchscript_export_equals_eager(slice_root, in_session_dir, tmp_path):
    from recbole_dnr import Recommender
    from recbole_dnr.serve import export
    from serve.test_serve import train

    trainer, ds, _, _ = train(slice_root, model="MIR", retriever_epochs=2)
    rec = Recommender.load(trainer.saved_model_file)
    batch = rec.batch_tensors([str(t) for t in ds.id2token(ds.uid_field, range(1, 30))])
    with torch.no_grad():
        eager = rec.model.predict(batch)
    module = torch.jit.load(export.export_torchscript(rec, str(tmp_path / "mir.pt")))
    torch.testing.assert_close(module(*[batch[k] for k in export.INPUTS]), eager, rtol=0, atol=1e-5)
