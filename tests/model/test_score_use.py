"""How a backbone may use the retriever score x: list_order shuffled, score_fusion weight,
predict_without_score (issue 8's options, shared by every backbone)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from recbole.data.interaction import Interaction

from recbole_dnr.data.candidates import shuffle_candidates
from recbole_dnr.fields import HISTORY_ITEM, LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.model.abstract_reranker import ScoreFeature
from recbole_dnr.registry import get_model

from .test_dnr import B, N, FakeDataset, make_batch, make_config
from .test_rerankers import BACKBONES, build


def split(n_req=6, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"item_id": torch.randint(1, 99, (n_req, n), generator=g), SCORE: torch.rand(n_req, n, generator=g),
            LABEL: (torch.rand(n_req, n, generator=g) > 0.6).float(), SLATE_MASK: torch.rand(n_req, n) > 0.5,
            HISTORY_ITEM: torch.randint(0, 99, (n_req, n), generator=g),  # same width as the lists on purpose
            REQUEST_ID: torch.tensor([4, 0, 9, 2, 7, 5]), "user_id": torch.arange(n_req)}


def test_shuffled_lists_keep_each_candidate_with_its_x_and_z():
    s = split()
    out = shuffle_candidates(s, list_seed=3)
    assert torch.equal(out[HISTORY_ITEM], s[HISTORY_ITEM]) and torch.equal(out[REQUEST_ID], s[REQUEST_ID])
    for r in range(6):
        before = sorted(zip(s["item_id"][r].tolist(), s[SCORE][r].tolist(), s[LABEL][r].tolist(),
                            s[SLATE_MASK][r].tolist()))
        after = sorted(zip(out["item_id"][r].tolist(), out[SCORE][r].tolist(), out[LABEL][r].tolist(),
                           out[SLATE_MASK][r].tolist()))
        assert before == after
    assert not torch.equal(out["item_id"], s["item_id"])
    again = shuffle_candidates(s, list_seed=3)
    assert torch.equal(again["item_id"], out["item_id"])  # fixed across epochs and runs
    # the order depends on the request id only: the same request in another split, same permutation
    sub = {k: v[2:4] for k, v in s.items()}
    assert torch.equal(shuffle_candidates(sub, 3)["item_id"], out["item_id"][2:4])
    assert not torch.equal(shuffle_candidates(s, list_seed=4)["item_id"], out["item_id"])


@settings(max_examples=30, deadline=None)
@given(h=st.floats(-5, 5), x1=st.floats(0, 1), x2=st.floats(0, 1))
def test_weight_fusion_is_monotone_in_x(h, x1, x2):
    sf = ScoreFeature(4, "weight")
    with torch.no_grad():
        sf.weight_raw.fill_(0.3)
        lo, hi = sorted([x1, x2])
        logits = torch.full((1, 2), h)
        out = sf.weigh(logits, torch.tensor([[lo, hi]]))
    assert out[0, 0] <= out[0, 1]
    assert sf.weigh(torch.tensor([[h]]), torch.tensor([[0.5]])).item() == pytest.approx(h, abs=1e-5)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("fusion", ["early", "late", "weight"])
def test_predict_without_score_ignores_x(name, fusion):
    model = build(name, score_fusion=fusion, predict_without_score=True).eval()
    batch = make_batch()
    other = Interaction({**batch.interaction, SCORE: torch.rand(B, N)})
    with torch.no_grad():
        torch.testing.assert_close(model.predict(other), model.predict(batch))
        assert not torch.allclose(model(other), model(batch))  # training still reads x
    assert model.score_feature._ignore_x is False


def test_weight_fusion_backbones_train():
    for name in ("PRM", "DLCM"):
        model = get_model(name)(make_config(score_fusion="weight"), FakeDataset())
        loss = model.calculate_loss(make_batch())
        loss.backward()
        assert model.score_feature.weight_raw.grad is not None


def test_corruption_probe_noise_and_stored_lists_untouched():
    from recbole_dnr.benchmark.probe import with_scores
    from recbole_dnr.model.noise import perturb_scores as corrupt_scores  # the probe's corruption
    from recbole_dnr.data.dataset import RequestSet

    x = torch.rand(4, 6)
    assert torch.equal(corrupt_scores(x, 0, torch.Generator().manual_seed(0)), x)
    y = corrupt_scores(x, 0.4, torch.Generator().manual_seed(0))
    assert y.min() >= 0 and y.max() <= 1 and not torch.allclose(y, x)
    assert torch.equal(y, corrupt_scores(x, 0.4, torch.Generator().manual_seed(0)))  # same lists for every model
    stored = Interaction({SCORE: x.clone(), "item_id": torch.arange(24).view(4, 6)})
    split = RequestSet(type("P", (), {"uid_field": "user_id", "iid_field": "item_id"})(), stored, "test")
    probed = with_scores(split, y)
    assert torch.equal(probed.inter[SCORE], y) and torch.equal(split.inter[SCORE], x)
    assert torch.equal(probed.inter["item_id"], split.inter["item_id"])


def test_weak_retriever_probe_settings_are_checked_before_any_work():
    from recbole_dnr.config import Config
    from recbole_dnr.errors import UserInputError

    with pytest.raises(UserInputError, match="probe_weak_retriever"):
        Config(model="PRM", dataset="ml-100k", config_dict={"gpu_id": "", "probe_weak_retriever": {"depth": 2}})
    ok = Config(model="PRM", dataset="ml-100k", config_dict={"gpu_id": "",
                                                             "probe_weak_retriever": {"retriever_epochs": 2}})
    assert ok["probe_weak_retriever"] == {"retriever_epochs": 2}


@pytest.mark.parametrize("name", BACKBONES)
def test_score_train_noise_perturbs_training_x_only(name):
    model = build(name, score_train_noise=0.3)
    seen = []
    encode = model.encode
    model.encode = lambda interaction, x: seen.append(x) or encode(interaction, x)
    batch = make_batch()
    torch.manual_seed(1)
    model.train()
    model.calculate_loss(batch)
    x = seen[-1]
    assert not torch.allclose(x, batch[SCORE])  # trained on x + σ·N(0,1) ...
    torch.testing.assert_close(x.min(1).values, torch.zeros(B))  # ... re-normalised per list into [0, 1]
    torch.testing.assert_close(x.max(1).values, torch.ones(B))
    model.eval()
    with torch.no_grad():
        model.predict(batch)
    assert torch.equal(seen[-1], batch[SCORE])  # evaluation reads the real x
    off = build(name)
    off.encode = lambda interaction, x: seen.append(x) or encode(interaction, x)
    off.train()
    off.calculate_loss(batch)
    assert torch.equal(seen[-1], batch[SCORE])  # σ = 0: x untouched


def test_score_train_noise_is_refused_for_dnr_and_keeps_old_run_keys(slice_root):
    from conftest import smoke_config

    from recbole_dnr.config import Config
    from recbole_dnr.trainer.resume import run_key
    from recbole_dnr.errors import UserInputError

    with pytest.raises(UserInputError, match="score_train_noise=0.2: it is a baseline for DNR"):
        Config(config_dict=smoke_config(slice_root, model="DNR_PRM", score_train_noise=0.2))
    launcher = smoke_config(slice_root, model="DNR_PRM", score_train_noise=0.2)
    launcher.pop("model")  # run_recbole_dnr.py --model=DNR_PRM: the model is an argument, not a key
    with pytest.raises(UserInputError, match="score_train_noise=0.2: it is a baseline for DNR"):
        Config(model="DNR_PRM", config_dict=launcher)
    base = Config(config_dict=smoke_config(slice_root, model="PRM"))
    assert base["score_train_noise"] == 0.0
    payload_key = run_key(base)
    base.final_config_dict.pop("score_train_noise")  # a run keyed before the option existed
    assert run_key(base) == payload_key
    assert run_key(Config(config_dict=smoke_config(slice_root, model="PRM", score_train_noise=0.2))) != payload_key
