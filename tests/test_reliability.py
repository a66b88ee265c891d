"""Issue 11: bad data, faults and interruption. Each test is one row of docs/reliability.md
(``python -m pytest -m reliability --reliability-report=docs/reliability.md``)."""

import errno
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import hold_claim, smoke_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recbole_dnr import storage
from recbole_dnr.config import Config
from recbole_dnr.data import AtomicFileError, create_dataset
from recbole_dnr.data.builder import ListBuilder
from recbole_dnr.fields import HISTORY_ITEM, LABEL, SLATE_MASK
from recbole_dnr.quick_start.quick_start import build
from recbole_dnr.errors import UserInputError

WORKER = os.path.join(os.path.dirname(__file__), "_reliability_worker.py")
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
faults = "Faults and interruption"
bad_data = "Bad data"


def write_log(root, name, rows):
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name + ".inter"), "w") as f:
        f.write(HEADER + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return str(root)


def random_log(rng, n_users, n_items, per_user):
    rows = []
    for u in range(1, n_users + 1):
        for t, i in enumerate(rng.choice(np.arange(1, n_items + 1), per_user, replace=False)):
            rows.append((u, int(i), int(rng.integers(1, 6)), 1000 * u + t))
    return rows


def small_config(root, name, **overrides):
    cfg = smoke_config(root, dataset=name, model="PRM", candidate_num=12, slate_size=3, filler_pool=40,
                       item_inter_num_interval="[0,inf)", user_inter_num_interval="[0,inf)", retriever_epochs=2,
                       retriever_fit="holdout", list_cache=False, topk=[3])
    cfg.update(overrides)
    return cfg


def child(mode, cfg, out, *extra, env=None):
    settings_file = out + ".settings.json"
    with open(settings_file, "w") as f:
        json.dump(cfg, f)
    return subprocess.Popen([sys.executable, WORKER, mode, settings_file, out, *map(str, extra)],
                            cwd=os.path.dirname(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc):
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err.decode()[-3000:]


# ------------------------------------------------------------------ interruption
@pytest.mark.reliability(faults, "training killed with SIGKILL at two random steps (before and after DNR's phase "
                                 "switch), then run again with `--resume`",
                         "the same best-valid and test metrics as an uninterrupted run with the same seed; the "
                         "callback (a search's pruner) sees its whole valid curve")
def test_killed_run_resumes_to_the_same_metrics(slice_root, tmp_path):
    cfg = smoke_config(slice_root, model="DNR_PRM", epochs=5, lambda_e=2, stopping_step=10, resume=True,
                       checkpoint_dir=str(tmp_path / "saved"))
    code, err = finish(child("train", {**cfg, "resume": False}, str(tmp_path / "plain.json")))
    assert code == 0, err
    plain = json.loads((tmp_path / "plain.json").read_text())
    steps = {int(e): n for e, n in plain["steps"].items()}  # θ steps; θ + φ steps once learned (epoch >= 2)
    rng = random.Random(11)
    kills = []
    for epochs in ([0, 1], [2, 3, 4]):  # one kill in each DNR phase, at a random step inside the epoch
        e = rng.choice(epochs)
        kills.append(f"{e}:{rng.randrange(1, steps[e])}")
    resume_dir = tmp_path / "saved" / "resume"
    for i, at in enumerate(kills):
        code, _ = finish(child("train", cfg, str(tmp_path / f"killed{i}.json"), at))
        assert code == -9 and not (tmp_path / f"killed{i}.json").exists()  # it really died mid-run
    left = sorted(os.listdir(resume_dir))  # the state the next run continues from, and its (unheld) lock file
    assert len(left) == 2 and left[1] == left[0] + ".lock"
    code, err = finish(child("train", cfg, str(tmp_path / "resumed.json")))
    assert code == 0, err
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed["test"] == plain["test"] and resumed["valid"] == plain["valid"]
    assert resumed["curve"] == plain["curve"]  # the callback (a search's pruner) sees the whole valid curve
    assert resumed["seconds"] > resumed["fit_seconds_before"] > 0  # its cost counts the killed processes' training
    # ... once: this process's time is not counted twice (nor a whole run's)
    assert resumed["seconds"] <= resumed["fit_seconds_before"] + resumed["wall"]
    assert plain["seconds"] <= plain["wall"]
    assert sum(resumed["steps"].values()) < sum(steps.values())  # it did continue: fewer steps than a whole run
    assert os.listdir(resume_dir) == []  # a completed run leaves nothing to resume


@pytest.mark.reliability(faults, "`--resume` with no saved state, and with a damaged one",
                         "a log line, then training from epoch 0 (a damaged state is never loaded)")
def test_resume_without_or_with_a_damaged_state_starts_afresh(slice_root, in_session_dir, tmp_path, caplog):
    cfg = smoke_config(slice_root, model="PRM", epochs=2, resume=True, checkpoint_dir=str(tmp_path))
    config, _, (train, valid, _), _, trainer = build(config_dict=cfg)
    caplog.set_level("INFO")
    trainer.fit(train, valid)
    assert any("no saved state for this run" in r.getMessage() for r in caplog.records)
    assert os.path.isfile(trainer.resume.path)  # kept until the run completes (run_recbole_dnr removes it)
    again = build(config_dict=cfg)[-1]
    again.fit(train, valid)  # resumes the finished run: its training time is the first process's, not ~0
    assert len(trainer.epoch_seconds) == 2 and again.epoch_seconds == trainer.epoch_seconds
    assert again.fit_seconds() > sum(trainer.epoch_seconds) > 0  # without the saved time: only the restore's
    _flip_a_byte(trainer.resume.path)
    caplog.clear()
    trainer = build(config_dict=cfg)[-1]
    trainer.fit(train, valid)
    assert any("Damaged resume state ignored" in r.getMessage() for r in caplog.records)
    assert trainer.resumed_after is None and len(trainer.valid_curve) == 2


@pytest.mark.reliability(faults, "the same run (config and seed) started twice at once, e.g. by two benchmark "
                                 "grids", "the second stops with an error naming the lock before training "
                                          "(a benchmark cell waits, then copies the first's result)")
def test_a_run_in_progress_is_not_trained_twice(slice_root, in_session_dir, tmp_path):
    from recbole_dnr import storage

    cfg = smoke_config(slice_root, model="PRM", epochs=1, resume=True, checkpoint_dir=str(tmp_path))
    _, _, (train, valid, _), _, trainer = build(config_dict=cfg)
    holder = hold_claim(trainer.resume.path, 60)
    try:
        with pytest.raises(UserInputError, match="another process is training this very run"):
            trainer.fit(train, valid)
        assert not os.path.exists(trainer.resume.path)  # refused before anything was read or written
    finally:
        holder.kill()
        holder.wait()
    trainer.fit(train, valid)  # the lock died with its holder (no stale lock after a crash)
    assert os.path.isfile(trainer.resume.path)
    trainer.resume.discard()
    waited = []
    holder = hold_claim(trainer.resume.path)  # lets go once our blocking claim waits for it
    assert storage.claim(trainer.resume.path, wait=False) is False
    assert storage.claim(trainer.resume.path, wait=True, on_wait=lambda: waited.append(1)) is True
    assert waited == [1] and holder.wait() == 0
    storage.release(trainer.resume.path)


@pytest.mark.reliability(faults, "`--resume` on a RecBole model (its own pipeline), or with `resume_state: False`",
                         "clear error before any work")
def test_resume_is_refused_for_recbole_pipeline(slice_root):
    with pytest.raises(UserInputError, match="RecBole's own pipeline has no resume state"):
        Config(config_dict=smoke_config(slice_root, model="BPR", resume=True))
    with pytest.raises(UserInputError, match="resume_state: False turns off"):
        Config(config_dict=smoke_config(slice_root, model="PRM", resume=True, resume_state=False))


@pytest.mark.reliability(faults, "the resume file's name across ranks and runs",
                         "the same for every rank of a run (logging differs by rank), different for another config")
def test_resume_key_ignores_logging_and_devices_only(slice_root):
    from recbole_dnr.trainer.resume import run_key

    base = smoke_config(slice_root, model="DNR_PRM")
    key = run_key(Config(config_dict=base))
    quiet = run_key(Config(config_dict={**base, "state": "error", "show_progress": True, "verbose": False,
                                        "resume": True, "checkpoint_dir": "elsewhere"}))
    assert quiet == key
    assert run_key(Config(config_dict={**base, "lambda_c": 0.3})) != key
    assert run_key(Config(config_dict={**base, "seed": 8})) != key


@pytest.mark.reliability(faults, "ml-100k (read from RecBole's wheel) run from another checkout or virtualenv",
                         "the same run key, so a parked run resumes and identical cells are reused there")
def test_resume_key_of_bundled_ml100k_does_not_depend_on_the_install_path(monkeypatch, tmp_path):
    import recbole
    from recbole_dnr.trainer.resume import portable_data_path, run_key

    config = Config(config_dict={"model": "PRM", "dataset": "ml-100k"})
    key = run_key(config)
    root = os.path.dirname(os.path.abspath(recbole.__file__))
    assert os.path.normpath(config["data_path"]).startswith(root)  # RecBole's own folder, whatever data_path says
    assert portable_data_path(config["data_path"]) == "<recbole>/dataset_example/ml-100k"
    assert portable_data_path("../shared/data") == "../shared/data"  # any other folder: as given
    moved = tmp_path / "other-venv" / "recbole"
    monkeypatch.setattr(recbole, "__file__", str(moved / "__init__.py"))
    config.final_config_dict["data_path"] = str(moved / "config" / ".." / "dataset_example" / "ml-100k")
    assert run_key(config) == key
    config.final_config_dict["data_path"] = str(tmp_path / "dataset_example" / "ml-100k")  # a copy elsewhere
    assert run_key(config) != key


# ------------------------------------------------------------------ damaged files
def _flip_a_byte(path, at=0.5):
    data = bytearray(open(path, "rb").read())
    data[int(len(data) * at)] ^= 0xFF
    open(path, "wb").write(bytes(data))


@pytest.mark.reliability(faults, "a saved file truncated, or with one flipped bit", "`CorruptFileError` before "
                                 "anything is unpickled; a file from before checksums still loads")
def test_checksum_catches_truncation_and_bit_flips(tmp_path):
    path = str(tmp_path / "f.pth")
    obj = {"w": torch.arange(10000, dtype=torch.float32)}
    storage.save(obj, path)
    assert storage.verify(path) and torch.equal(storage.load(path)["w"], obj["w"])
    assert torch.equal(torch.load(path, weights_only=False)["w"], obj["w"])  # plain torch.load still reads it
    whole = open(path, "rb").read()
    _flip_a_byte(path)  # torch.load alone would return wrong weights here
    with pytest.raises(storage.CorruptFileError, match="does not match its checksum"):
        storage.load(path)
    open(path, "wb").write(whole[: len(whole) // 2])
    with pytest.raises(storage.CorruptFileError):
        storage.load(path)
    torch.save(obj, path)  # a trailer-less file of an earlier version
    assert not storage.verify(path) and torch.equal(storage.load(path)["w"], obj["w"])


@pytest.mark.reliability(faults, "the best checkpoint altered on disk before the test evaluation",
                         "`CorruptFileError` naming the file; the damaged weights are never used")
def test_damaged_checkpoint_is_refused(slice_root, in_session_dir, tmp_path):
    _, _, (train, valid, test), _, trainer = build(
        config_dict=smoke_config(slice_root, model="PRM", epochs=1, checkpoint_dir=str(tmp_path)))
    trainer.fit(train, valid)
    _flip_a_byte(trainer.saved_model_file, 0.7)
    with pytest.raises(storage.CorruptFileError, match=os.path.basename(trainer.saved_model_file)):
        trainer.evaluate(test, load_best_model=True)


@pytest.mark.reliability(faults, "the process killed in the middle of writing a checkpoint or cache",
                         "the previous file survives whole; no temp file is left")
def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pth"
    storage.save({"v": 1}, path)
    real_save = torch.save

    def crashing_save(obj, f, **kw):
        f.write(b"partial bytes")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        storage.save({"v": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert storage.load(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["model.pth"]


# ------------------------------------------------------------------ output folders
@pytest.mark.reliability(faults, "checkpoint_dir that cannot be created or written",
                         "clear error naming the folder and `checkpoint_dir`, before the data is read")
def test_unwritable_checkpoint_dir_fails_first(slice_root, in_session_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserInputError, match=r"checkpoint_dir .*a_file/saved is not writable.*set checkpoint_dir"):
        build(config_dict=smoke_config(slice_root, model="PRM", checkpoint_dir=str(blocker / "saved")))


@pytest.mark.reliability(faults, "disk full: too little free space at start; ENOSPC while writing a checkpoint",
                         "clear error before training; mid-run, an error saying the disk is full and the previous "
                         "file is intact")
def test_full_disk_is_a_clear_error(slice_root, in_session_dir, tmp_path, monkeypatch):
    real = storage.shutil.disk_usage
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    with pytest.raises(UserInputError, match=r"has 1.0 MiB free; this run needs about"):
        build(config_dict=smoke_config(slice_root, model="PRM", checkpoint_dir=str(tmp_path)))
    monkeypatch.setattr(storage.shutil, "disk_usage", real)
    path = tmp_path / "ckpt.pth"
    storage.save({"v": 1}, path)

    def full(obj, f, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserInputError, match="disk full while writing .*ckpt.pth.*previous file under that name is intact"):
        storage.save({"v": 2}, path)
    monkeypatch.undo()
    assert storage.load(path) == {"v": 1}


@pytest.mark.reliability(faults, "two runs building the same list cache at the same time",
                         "one builds and writes it (under a lock), the other waits and reads it; identical lists")
def test_two_processes_build_one_cache(slice_root, tmp_path):
    cfg = smoke_config(slice_root, model="Retriever", epochs=0, seed=31, retriever_epochs=3,
                       checkpoint_dir=str(tmp_path / "shared"))
    procs = [child("lists", cfg, str(tmp_path / f"p{i}.json")) for i in range(2)]
    for p in procs:
        code, err = finish(p)
        assert code == 0, err
    outs = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2)]
    assert sorted(o["wrote_lists"] for o in outs) == [False, True]
    assert outs[0]["digest"] == outs[1]["digest"]
    cache = [f for f in os.listdir(tmp_path / "shared" / "lists") if f.endswith(".pth")]
    assert all(storage.verify(tmp_path / "shared" / "lists" / f) for f in cache)


# ------------------------------------------------------------------ bad data
@pytest.mark.reliability(bad_data, "the same (user, item) on two rows (a duplicate or a re-rating)",
                         "`AtomicFileError` naming file, both lines and the fix")
def test_repeated_user_item_rows_name_both_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = random_log(np.random.default_rng(0), 5, 40, 20)
    rows.insert(30, (rows[3][0], rows[3][1], 2, 99999))
    root = write_log(tmp_path, "dups", rows)
    with pytest.raises(AtomicFileError, match=r"dups.inter:32: user_id 1 rated item_id \d+ already on line 5"):
        create_dataset(Config(config_dict=small_config(root, "dups")))


@pytest.mark.reliability(bad_data, "a rating or timestamp that is nan, inf or empty",
                         "`AtomicFileError` naming file, line and column")
@pytest.mark.parametrize("value", ["nan", "inf", ""])
def test_non_finite_fields(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    rows = random_log(np.random.default_rng(0), 5, 40, 20)
    rows[6] = (rows[6][0], rows[6][1], rows[6][2], value)
    root = write_log(tmp_path, "nonfinite", rows)
    with pytest.raises(AtomicFileError, match=r"nonfinite.inter:8: column 4 \(timestamp:float\)"):
        create_dataset(Config(config_dict=small_config(root, "nonfinite")))


@pytest.mark.reliability(bad_data, "filters (e.g. the 20-core filter) that leave no interaction",
                         "clear error naming the filter settings")
def test_filter_that_empties_the_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_log(tmp_path, "tiny", random_log(np.random.default_rng(0), 10, 40, 10))
    with pytest.raises(UserInputError, match=r"the filters left no interactions in tiny \(user_inter_num_interval "
                                             r"\[20,inf\)"):
        create_dataset(Config(config_dict=small_config(root, "tiny", user_inter_num_interval="[20,inf)")))


@pytest.mark.reliability(bad_data, "a catalogue smaller than candidate_num",
                         "clear error with the item count, before the retriever trains")
def test_catalogue_smaller_than_candidate_num(tmp_path, in_session_dir):
    root = write_log(tmp_path, "smallcat", random_log(np.random.default_rng(0), 10, 30, 20))
    ds = create_dataset(Config(config_dict=small_config(root, "smallcat", candidate_num=40, topk=[6])))
    with pytest.raises(UserInputError, match="smallcat has 30 items after filtering.*candidate_num is 40"):
        ListBuilder(ds).build()


@pytest.mark.reliability(bad_data, "users too short for a slate or for the holdout; lists without a positive",
                         "kept as documented (docs/protocol.md) and counted in the list statistics")
def test_short_users_and_lists_without_positives_are_counted(tmp_path, in_session_dir):
    rng = np.random.default_rng(1)
    rows = random_log(rng, 12, 60, 24)
    rows += [(50, i, 5, 90000 + i) for i in range(1, 3)]  # 2 rows: no slate of 3
    rows += [(51, i, 1, 91000 + i) for i in range(1, 7)]  # 2 slates: no test slate, every label 0
    root = write_log(tmp_path, "short", rows)
    lists = ListBuilder(create_dataset(Config(config_dict=small_config(root, "short"))))
    lists.build()
    s = lists.stats
    assert s["users_without_lists"] == 1 and s["users_without_test"] == 1
    assert s["users_short_holdout"] >= 1
    assert s["train_lists_no_positive"] >= 2  # user 51's two slates, all rated 1


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10 ** 6), n_users=st.integers(8, 16), tie_span=st.sampled_from([1, 3, 1000]))
@pytest.mark.reliability(bad_data, "random logs (hypothesis: sizes, ratings, timestamps with ties)",
                         "every list: history strictly earlier in the log, no repeated candidate, labels as in "
                         "the log, fillers never rated by the user")
def test_list_builder_invariants(tmp_path_factory, seed, n_users, tie_span):
    tmp = tmp_path_factory.mktemp("prop")
    os.chdir(tmp)
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        n = int(rng.integers(4, 30))
        for i in rng.choice(np.arange(1, 61), n, replace=False):
            rows.append((u, int(i), int(rng.integers(1, 6)), int(rng.integers(0, tie_span))))  # ties when span is small
    rng.shuffle(rows)
    root = write_log(tmp, "prop", rows)
    cfg = small_config(root, "prop", seed=seed % 1000)
    ds = create_dataset(Config(config_dict=cfg))
    line = {(str(u), str(i)): (t, n) for n, (u, i, r, t) in enumerate(rows)}  # (time, file order) of each row
    rating = {(str(u), str(i)): r for u, i, r, t in rows}
    threshold = ds.config["label_threshold"]
    for split in ListBuilder(ds).build():
        inter = split.inter
        users = ds.id2token(ds.uid_field, inter[ds.uid_field].numpy())
        for r in range(len(split)):
            u = users[r]
            items = list(ds.id2token(ds.iid_field, inter[ds.iid_field][r].numpy()))
            assert len(set(items)) == len(items) == cfg["candidate_num"]
            slate = inter[SLATE_MASK][r].numpy()
            for item, s, z in zip(items, slate, inter[LABEL][r].numpy()):
                if s:
                    assert z == float(rating[(u, item)] >= threshold)
                else:
                    assert (u, item) not in rating and z == 0  # a filler: never rated by this user
            first = min(line[(u, item)] for item, s in zip(items, slate) if s)
            for h in ds.id2token(ds.iid_field, inter[HISTORY_ITEM][r].numpy()):
                if h != "[PAD]":
                    assert line[(u, h)] < first  # earlier in time, or same time and earlier in the file


@pytest.mark.reliability(faults, "`resume_state: False` (a huge catalogue: no per-epoch state write)",
                         "training writes no resume state")
def test_resume_state_off_writes_nothing(slice_root, in_session_dir, tmp_path):
    _, _, (train, valid, _), _, trainer = build(config_dict=smoke_config(
        slice_root, model="PRM", epochs=1, resume_state=False, checkpoint_dir=str(tmp_path)))
    trainer.fit(train, valid)
    assert os.path.isfile(trainer.saved_model_file) and not os.path.exists(trainer.resume.path)
