"""End-to-end smoke runs on a small ml-100k slice (lists cached across tests by config hash)."""

import csv
import os

import pytest
import torch

from recbole_dnr import compat
from recbole_dnr.config import Config
from recbole_dnr.data import create_dataset
from recbole_dnr.data.builder import ListBuilder
from recbole_dnr.fields import LABEL, SCORE
from recbole_dnr.quick_start import build, objective_function
from recbole_dnr.errors import ModelType
from recbole_dnr.registry import get_model, register_model
from recbole_dnr.model import ListRecommender

from conftest import smoke_config


@register_model
class PositionOnly(ListRecommender):
    """Test-only: sees nothing but the candidate's position in the presented list."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.bias = torch.nn.Parameter(torch.zeros(config["candidate_num"]))

    def calculate_loss(self, interaction):
        logits = self.bias.expand_as(interaction[LABEL])
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, interaction[LABEL])

    def predict(self, interaction):
        return self.bias.expand_as(interaction[LABEL])


def run(slice_root, model, **kw):
    return objective_function(smoke_config(slice_root, model=model, **kw), saved=True)


def test_retriever_floor_and_list_stats(slice_root, in_session_dir):
    res = run(slice_root, "Retriever")
    stats = res["list_stats"]
    assert stats["test_lists"] > 50 and stats["train_lists"] > stats["test_lists"]
    assert 0.5 < stats["test_retriever_auc"] <= 1.0
    assert set(res["test_result"]) == {"h@6", "ndcg@6", "map@6", "f1@6", "auc"}
    # the Retriever's list AUC is x's AUC, reported by the dataset too
    assert res["test_result"]["auc"] == pytest.approx(stats["test_retriever_auc"], abs=1e-3)


def test_prm_beats_retriever_on_training_lists(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="PRM", epochs=15, stopping_step=100, learning_rate=0.01)
    config, ds, (train, valid, test), model, trainer = build(config_dict=cfg)
    trainer.fit(train, valid, saved=False, show_progress=False)
    prm = trainer.evaluate(train, load_best_model=False)
    floor_cfg = smoke_config(slice_root, model="Retriever")
    _, _, (ftrain, _, _), fmodel, ftrainer = build(config_dict=floor_cfg)
    floor = ftrainer.evaluate(ftrain, load_best_model=False)
    assert prm["ndcg@6"] > floor["ndcg@6"] + 0.01, (prm, floor)


def test_position_only_model_cannot_beat_retriever(slice_root, in_session_dir, monkeypatch):
    """Candidates are shown in the retriever's order, so positions carry no label information
    beyond x's order: a position-only model is at best the Retriever (up to noise in its
    learned per-position biases). With slate-first lists the same model would read the labels."""
    pos = run(slice_root, "PositionOnly", epochs=10, learning_rate=0.05)["test_result"]
    floor = run(slice_root, "Retriever")["test_result"]
    for k in ("ndcg@6", "h@6", "map@6"):
        assert pos[k] <= floor[k] + 0.01, (k, pos, floor)
    # the leak this protocol avoids: present slate items first and positions give labels away
    from recbole_dnr import protocol

    monkeypatch.setattr(protocol, "order_by_score", lambda items, x, labels, slate: (items, x, labels, slate))
    leaky = run(slice_root, "PositionOnly", epochs=10, learning_rate=0.05, list_cache=False)["test_result"]
    assert leaky["ndcg@6"] > floor["ndcg@6"] + 0.2, (leaky, floor)


@pytest.mark.parametrize("model", ["PRM", "DLCM", "DNR_PRM", "DNR_DLCM"])
def test_smoke_every_model(slice_root, in_session_dir, model):
    res = run(slice_root, model, epochs=2, lambda_e=1)
    for split in ("best_valid_result", "test_result"):
        assert all(0.0 <= v <= 1.0 for v in res[split].values()), res[split]


@pytest.mark.reliability("Determinism", "the same seed and config, run twice (CPU)",
                         "identical metrics")
def test_same_seed_same_metrics(slice_root, in_session_dir):
    a = run(slice_root, "DNR_PRM", epochs=2, lambda_e=1)["test_result"]
    b = run(slice_root, "DNR_PRM", epochs=2, lambda_e=1)["test_result"]
    assert a == b


def test_save_predictions(slice_root, in_session_dir):
    res = run(slice_root, "PRM", epochs=1, save_predictions=True)
    with open(res["predictions_file"]) as f:
        rows = list(csv.DictReader(f))
    n_lists = res["list_stats"]["test_lists"]
    assert len(rows) == 50 * n_lists
    first = [r for r in rows if r["request_id"] == rows[0]["request_id"]]
    assert sorted(int(r["rerank_rank"]) for r in first) == list(range(1, 51))
    assert sum(int(r["in_topk"]) for r in first) == 6
    assert {"ndcg@6", "auc", "x", "z", "score", "user", "item"} <= set(rows[0])


def test_cache_key_changes_with_config_and_cache_is_reused(slice_root, in_session_dir, monkeypatch):
    base = smoke_config(slice_root, model="Retriever")
    keys = {}
    for name, over in {"base": {}, "seed": {"seed": 8}, "thr": {"label_threshold": 5},
                       "retr": {"retriever_epochs": 11}, "mode": {"list_mode": "retrieve"},
                       "fill": {"filler_sampling": "popularity"}, "norm": {"normalize_all": True}}.items():
        keys[name] = ListBuilder(create_dataset(Config(config_dict={**base, **over}))).cache_key()
    assert len(set(keys.values())) == len(keys)
    fixed = [ListBuilder(create_dataset(Config(config_dict={**base, "list_seed": 3, "seed": s}))).cache_key()
             for s in (1, 2)]
    assert fixed[0] == fixed[1]  # list_seed fixes the lists; seed then varies only the reranker
    lists = ListBuilder(create_dataset(Config(config_dict=base)))
    first = lists.build()
    assert os.path.isfile(lists.cache_path())
    from recbole_dnr.retrieval import recbole_retriever as retriever

    def no_training(*a, **k):
        raise AssertionError("the cached lists should have been read")

    monkeypatch.setattr(retriever, "train_retriever", no_training)
    again = ListBuilder(create_dataset(Config(config_dict=base))).build()
    assert all(torch.equal(a.inter[SCORE], b.inter[SCORE]) for a, b in zip(first, again))


def test_retrieve_mode_and_crossfit(slice_root, in_session_dir):
    res = run(slice_root, "Retriever", list_mode="retrieve", label_window=10, retriever_fit="crossfit",
              crossfit_folds=2)
    stats = res["list_stats"]
    assert stats["test_lists"] > 0
    assert 0.0 < stats["test_retriever_recall"] <= 1.0


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError) as err:
        get_model("NoSuchModel")
    assert "PRM" in str(err.value) and "DNR_PRM" in str(err.value) and "BPR" in str(err.value)


@pytest.mark.reliability("Bad data", "a dataset whose files are missing",
                         "clear error naming the expected file and --data_path; nothing is downloaded")
@pytest.mark.parametrize("dataset, extra", [("ml-1m", {"download": False}), ("my-own-data", {})])
def test_missing_dataset_says_which_files_where(tmp_path, monkeypatch, dataset, extra):
    """Not downloaded (download: False, or a name RecBole's url.yaml lacks): the message says where."""
    monkeypatch.chdir(tmp_path)
    cfg = {"data_path": str(tmp_path), "state": "ERROR", **extra}
    with pytest.raises(FileNotFoundError) as err:
        create_dataset(Config(model="PRM", dataset=dataset, config_dict=cfg))
    msg = str(err.value)
    assert f"{dataset}.inter" in msg and str(tmp_path) in msg and "--data_path" in msg
    with pytest.raises(FileNotFoundError, match=f"{dataset}.inter"):  # the run's entry point: before any logging
        build(model="PRM", dataset=dataset, config_dict=cfg)
    assert not (tmp_path / "log").exists()


def test_recbole_models_still_resolve():
    assert get_model("BPR").__name__ == "BPR"
    assert get_model("SASRec").__name__ == "SASRec"
    assert get_model("PRM").type == ModelType.RERANK


@pytest.mark.reliability("Faults and interruption", "DNR checkpoint saved in one phase, resumed into the next",
                         "the generator optimizer and the phase are restored")
def test_dnr_phase_switch_survives_save_and_resume(slice_root, in_session_dir):
    import copy

    from recbole_dnr.model.dnr import HEURISTIC, LEARNED
    from recbole_dnr import compat

    cfg = smoke_config(slice_root, model="DNR_PRM", epochs=1, lambda_e=1, stopping_step=100)
    _, _, (train, valid, _), model, trainer = build(config_dict=cfg)
    trainer.fit(train, valid, saved=True, show_progress=False)
    assert model.phase == HEURISTIC and trainer.phase_for(0) == HEURISTIC and trainer.phase_for(1) == LEARNED
    ckpt = trainer.saved_model_file
    assert compat.load_checkpoint(ckpt)["phase"] == HEURISTIC

    _, _, (train2, valid2, _), model2, trainer2 = build(config_dict={**cfg, "epochs": 2})
    trainer2.resume_checkpoint(ckpt)
    assert trainer2.start_epoch == 1 and model2.phase == LEARNED
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k]), k
    phi_before = copy.deepcopy(model2.generator.state_dict())
    trainer2.fit(train2, valid2, saved=False, show_progress=False)
    assert model2.phase == LEARNED
    assert any(not torch.equal(v, phi_before[k]) for k, v in model2.generator.state_dict().items())
    assert trainer2.schedule.optimizer.state_dict()["state"]  # the φ optimizer has stepped


@pytest.mark.reliability("Bad data", "the ml-100k slice's lists against its raw log",
                         "labels = rating >= 4, fillers never rated, history earlier, x in retriever order")
def test_lists_match_the_raw_log(slice_root, in_session_dir):
    """Labels are the log's ratings >= 4; fillers were never rated by the user; history is earlier."""
    from conftest import SLICE

    raw = {}
    with open(os.path.join(slice_root, SLICE, SLICE + ".inter")) as f:
        next(f)
        for line in f:
            u, i, r, t = line.split("\t")
            raw[(u, i)] = (float(r), float(t))
    ds = create_dataset(Config(config_dict=smoke_config(slice_root, model="Retriever")))
    splits = ListBuilder(ds).build()
    for rs in splits:
        inter = rs.inter
        users = ds.id2token(ds.uid_field, inter[ds.uid_field].numpy())
        for r in range(0, len(rs), max(1, len(rs) // 40)):
            u = users[r]
            items = ds.id2token(ds.iid_field, inter[ds.iid_field][r].numpy())
            slate = inter["slate_mask"][r].numpy()
            z = inter[LABEL][r].numpy()
            assert slate.sum() == 6 and len(set(items)) == 50
            slate_times = []
            for item, s, label in zip(items, slate, z):
                if s:
                    rating, t = raw[(u, item)]
                    assert label == float(rating >= 4)
                    slate_times.append(t)
                else:
                    assert (u, item) not in raw and label == 0
            hist = [h for h in ds.id2token(ds.iid_field, inter["history_item"][r].numpy()) if h != "[PAD]"]
            assert all(raw[(u, h)][1] <= min(slate_times) for h in hist)
            x = inter[SCORE][r].numpy()
            assert (x[:-1] >= x[1:]).all() and x.min() >= 0 and x.max() <= 1  # retriever order, in [0, 1]


@pytest.mark.reliability("Bad data", "a non-numeric rating, a short row, a header without rating/timestamp",
                         "`AtomicFileError` naming file, line and column")
def test_malformed_atomic_file_names_file_line_column(tmp_path, monkeypatch):
    from recbole_dnr.data import AtomicFileError

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "bad"
    folder.mkdir()
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float", "1\t10\t4\t100", "1\t11\tfour\t101"]
    (folder / "bad.inter").write_text("\n".join(rows) + "\n")
    cfg = {"model": "PRM", "dataset": "bad", "data_path": str(tmp_path), "state": "ERROR"}
    with pytest.raises(AtomicFileError, match=r"bad.inter:3: column 3 \(rating:float\) is not a number: 'four'"):
        create_dataset(Config(config_dict=cfg))
    (folder / "bad.inter").write_text("\n".join(rows[:2] + ["1\t11\t5"]) + "\n")
    with pytest.raises(AtomicFileError, match=r"bad.inter:3: expected 4 columns"):
        create_dataset(Config(config_dict=cfg))
    (folder / "bad.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(AtomicFileError, match=r"header lacks field\(s\) \['rating', 'timestamp'\]"):
        create_dataset(Config(config_dict=cfg))


@pytest.mark.reliability("Faults and interruption", "two runs started in the same second",
                         "distinct checkpoint files")
def test_runs_started_together_do_not_share_a_checkpoint(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="PRM")
    a = build(config_dict=cfg)[-1]
    b = build(config_dict=cfg)[-1]
    assert a.saved_model_file != b.saved_model_file


def test_recbole_models_train_and_reload_their_best_checkpoint(slice_root, in_session_dir):
    """RecBole's own trainer reloads the best model with torch.load, which fails on torch >= 2.6
    without our fix; BPR through our entry point must run to the test evaluation."""
    cfg = {"model": "BPR", "dataset": "ml-100k-slice", "data_path": slice_root, "epochs": 1, "gpu_id": "",
           "embedding_size": 16, "state": "ERROR", "show_progress": False, "checkpoint_dir": "saved"}
    res = objective_function(cfg, saved=True)
    assert "recall@10" in res["test_result"]


def test_model_dnr_with_backbone_key():
    config = Config(config_dict={"model": "DNR", "backbone": "DLCM", "dataset": "ml-100k", "state": "ERROR"})
    assert config["model"] == "DNR_DLCM" and config["lambda_c"] == 0.4


def _cut_in_half(path):
    with open(path, "r+b") as f:  # a copy cut half-way
        f.truncate(os.path.getsize(path) // 2)


@pytest.mark.reliability("Faults and interruption", "list and retriever caches cut in half",
                         "detected, rebuilt (the same lists), never loaded")
def test_truncated_caches_are_rebuilt_not_loaded(slice_root, in_session_dir, tmp_path, caplog):
    cfg = smoke_config(slice_root, model="Retriever", list_mode="retrieve", retriever_epochs=2,
                       checkpoint_dir=str(tmp_path))
    def lists_of_a_run():  # the builder of a run's lists (built, or loaded from the cache)
        return build(config_dict=cfg)[2][0].requests.lists

    lists = lists_of_a_run()
    before = {k: v.inter["item_id"].clone() for k, v in zip(("train", "valid", "test"), lists.build())}
    user_vectors = lists.retriever_embeddings()[0].clone()  # cached beside the lists
    caplog.set_level("WARNING")

    _cut_in_half(lists.cache_path())
    again = lists_of_a_run()
    after = dict(zip(("train", "valid", "test"), again.build()))
    for name, items in before.items():
        assert torch.equal(after[name].inter["item_id"], items), name  # rebuilt: the same lists
    _cut_in_half(again.retriever_path())
    fresh = lists_of_a_run()  # (``again`` holds the vectors it built in memory)
    assert torch.equal(fresh.retriever_embeddings()[0], user_vectors)  # retrained, same seed
    assert sum("Damaged cache rebuilt" in r.getMessage() for r in caplog.records) == 2
    caplog.clear()
    lists_of_a_run().build()  # the rebuilt caches load whole
    assert not any("Damaged" in r.getMessage() for r in caplog.records)


@pytest.mark.reliability("Faults and interruption", "a NaN/Inf training loss",
                         "`NonFiniteLossError` naming epoch, batch and request ids, before the step; the last good checkpoint kept")
def test_nan_loss_stops_at_the_batch_and_keeps_the_last_good_checkpoint(slice_root, in_session_dir):
    from recbole_dnr.trainer.list_trainer import NonFiniteLossError

    config, _, (train, valid, _), model, trainer = build(config_dict=smoke_config(slice_root, model="PRM", epochs=3))
    trainer.fit(train, valid, saved=True)  # a good run: its best checkpoint exists
    good = compat.load_checkpoint(trainer.saved_model_file)
    calls = {"n": 0}
    own_loss = model.calculate_loss

    def poisoned(interaction):
        calls["n"] += 1
        loss = own_loss(interaction)
        return loss * float("nan") if calls["n"] == 2 else loss

    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 0, batch 1 \(request ids \[\d+"):
        trainer._train_epoch(train, 0, loss_func=poisoned)
    kept = compat.load_checkpoint(trainer.saved_model_file)
    assert all(torch.equal(kept["state_dict"][k], good["state_dict"][k]) for k in good["state_dict"])
    # only the first (finite) batch was stepped: the nan never reached the weights
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_cache_key_follows_data_content_not_mtime(slice_root, tmp_path):
    """A re-copied data folder (same bytes, new mtimes) keeps its lists; changed bytes do not."""
    import shutil
    from conftest import SLICE
    src, dst = os.path.join(slice_root, SLICE), tmp_path / SLICE
    shutil.copytree(src, dst)
    cfg = {**smoke_config(slice_root, model="Retriever"), "data_path": str(tmp_path)}
    key = ListBuilder(create_dataset(Config(config_dict=cfg))).cache_key()
    inter = dst / f"{SLICE}.inter"
    os.utime(inter, (1e9, 1e9))
    assert ListBuilder(create_dataset(Config(config_dict=cfg))).cache_key() == key
    lines = inter.read_text().splitlines(keepends=True)
    inter.write_text("".join(lines[:-1]))
    assert ListBuilder(create_dataset(Config(config_dict=cfg))).cache_key() != key


def test_results_table_aligns_long_metric_names():
    from recbole_dnr.quick_start.quick_start import results_table

    lines = results_table({"ndcg@6": 0.41, "retriever_recall@50": 0.0672},
                          {"ndcg@6": 0.34, "retriever_recall@50": 0.0687}).splitlines()
    assert lines[1] == f"{'ndcg@6':<21}{0.41:>10.4f}{0.34:>10.4f}"
    assert len({len(line) for line in lines}) == 1  # every column ends where the header's does
    assert results_table({"auc": 0.5}, {"auc": 0.6}).splitlines()[0] == f"{'metric':<16}{'valid':>10}{'test':>10}"
