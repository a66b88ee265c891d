"""The tuning grid (issue 37): equal budgets, committed trials, resumable anywhere, a seeds grid."""

import json
import os
import re
import shutil

import pytest
import torch
import yaml

from conftest import smoke_config
from recbole_dnr.benchmark import tuning as G
from recbole_dnr.benchmark.__main__ import main as benchmark


@pytest.fixture()
def grid_file(tmp_path, slice_root, in_session_dir):
    fixed = {k: v for k, v in smoke_config(slice_root, epochs=2).items() if k not in ("dataset", "data_path")}
    (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(fixed))
    spec = {
        "out": str(tmp_path / "tuned"),
        "config_files": [str(tmp_path / "fixed.yaml")],
        "trials": 2,
        "seed": 3,
        "space": ["learning_rate loguniform -7,-5", "hidden_size choice [16,32]", "dropout_prob uniform 0,0.3"],
        "knobs": {"dnr": ["lambda_c uniform 0.1,1.0"]},
        "datasets": {"ml-100k-slice": {"data_path": slice_root}},
        "contenders": {"PRM-none": {"settings": {"model": "PRM", "score_fusion": "none"}},
                       "DNR-G": {"settings": {"model": "DNR_PRM"}, "knobs": ["dnr"]},
                       "Caser-none": {"settings": {"model": "Caser", "score_fusion": "none"},
                                      "rename": {"hidden_size": "embedding_size", "dropout_prob": None}}},
        "seeds": {"seeds": [1, 2], "out": str(tmp_path / "seeds"), "grid": str(tmp_path / "seeds.yaml")},
    }
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_contender_space_renames_and_adds_knobs(grid_file):
    grid = G.load_grid(grid_file)
    assert [p.name for p in G.contender_space(grid, "DNR-G")] == ["learning_rate", "hidden_size", "dropout_prob",
                                                                   "lambda_c"]
    assert [p.name for p in G.contender_space(grid, "Caser-none")] == ["learning_rate", "embedding_size"]


@pytest.mark.parametrize("only, says", [
    ("dataset=ml-1m", "has no dataset 'ml-1m'; its datasets: ml-100k-slice"),
    ("contender=PRM-nonee", "has no contender 'PRM-nonee'; its contenders: "),
    ("model=PRM", "unknown key 'model'"),
    ("PRM-none", "expected key=value"),
])
def test_only_that_selects_nothing_is_an_error_before_any_search(grid_file, tmp_path, only, says):
    with pytest.raises(SystemExit, match=re.escape(says)):
        benchmark(["--config", grid_file, "--only", only])
    assert not os.path.exists(tmp_path / "tuned")


def test_only_whose_dataset_and_contender_never_meet_is_an_error(grid_file):
    spec = yaml.safe_load(open(grid_file))
    spec["datasets"]["other"] = {}
    spec["contenders"]["Caser-none"]["datasets"] = ["ml-100k-slice"]
    open(grid_file, "w").write(yaml.safe_dump(spec))
    with pytest.raises(SystemExit, match="no search in .* has all of dataset=other; contender=Caser-none"):
        benchmark(["--config", grid_file, "--only", "dataset=other;contender=Caser-none"])


def test_a_grid_trials_bar_names_the_search_and_the_row_it_lands_as(grid_file, tmp_path, capsys):
    fixed = yaml.safe_load(open(tmp_path / "fixed.yaml"))
    del fixed["show_progress"]
    (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(fixed))
    spec = yaml.safe_load(open(grid_file))
    spec["trials"] = 1
    open(grid_file, "w").write(yaml.safe_dump(spec))
    benchmark(["--config", grid_file, "--only", "contender=PRM-none"])
    assert "ml-100k-slice PRM-none trial 0" in capsys.readouterr().err


def test_grid_searches_commits_trials_and_resumes_from_them(grid_file, tmp_path, capsys):
    benchmark(["--config", grid_file, "--only", "contender=PRM-none,DNR-G"])
    grid = G.load_grid(grid_file)
    for name in ("PRM-none", "DNR-G"):
        rows = G.read_trials(os.path.join(G.folder(grid, "ml-100k-slice", name), "trials.jsonl"))
        assert [r.number for r in rows] == [0, 1] and all(r.state == "complete" for r in rows)
        assert all(len(r.curve) == r.epochs for r in rows)
        assert all(r.machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability() for r in rows)
        best = yaml.safe_load(open(os.path.join(G.folder(grid, "ml-100k-slice", name), "best.yaml")))
        assert best["model"] == ("PRM" if name == "PRM-none" else "DNR_PRM")
        assert best["learning_rate"] == max(rows, key=lambda r: r.best_valid).params["learning_rate"]
    before = G.read_trials(os.path.join(G.folder(grid, "ml-100k-slice", "PRM-none"), "trials.jsonl"))
    # another machine: the Optuna storage is gone, the committed trials are not; the budget grows by one
    shutil.rmtree("saved/tuning")
    spec = yaml.safe_load(open(grid_file))
    spec["trials"] = 3
    open(grid_file, "w").write(yaml.safe_dump(spec))
    capsys.readouterr()
    benchmark(["--config", grid_file, "--only", "contender=PRM-none"])
    after = G.read_trials(os.path.join(G.folder(grid, "ml-100k-slice", "PRM-none"), "trials.jsonl"))
    assert len(after) == 3 and [r.record() for r in after[:2]] == [r.record() for r in before]
    assert after[2].params not in [r.params for r in before]
    landed = [line for line in capsys.readouterr().out.splitlines() if " trial " in line]
    assert landed == [f"ml-100k-slice PRM-none trial 2: complete, valid {after[2].best_valid:.4f}, test "
                      f"{after[2].test:.4f}, {after[2].epochs} epochs, {after[2].seconds:.0f} s (3 of 3)"]
    benchmark(["--config", grid_file, "--dry_run"])
    out = capsys.readouterr().out
    assert "PRM-none                     3/3" in out and "DNR-G                        2/3" in out
    assert "3 searches, 1 done, 2 to run" in out and "seeds stage: waits for 2 search(es)" in out


def test_the_old_hyper_grid_command_names_the_new_one_and_runs_nothing(grid_file, capsys, tmp_path):
    from recbole_dnr.hyper import grid as moved

    before = sorted(os.listdir(tmp_path))
    assert moved.main(["--config", grid_file, "--dry_run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"python -m recbole_dnr.hyper.grid has moved: run python -m recbole_dnr.benchmark "
                                 f"--config {grid_file} --dry_run\n")
    assert sorted(os.listdir(tmp_path)) == before  # no results folder, no search started


def test_seeds_grid_is_a_benchmark_grid(grid_file, tmp_path):
    """Each finished contender is a variant at its best config on the dataset, beside its untuned twin."""
    from recbole_dnr.benchmark.spec import load_spec

    spec = yaml.safe_load(open(grid_file))
    spec["trials"] = 1
    spec["seeds"].update(defaults=True, pairs=[["DNR-G", "PRM-none"]], report={"tag": "tuned"})
    open(grid_file, "w").write(yaml.safe_dump(spec))
    benchmark(["--config", grid_file, "--only", "contender=PRM-none"])
    benchmark(["--config", grid_file, "--seeds"])
    seeds = load_spec(str(tmp_path / "seeds.yaml"))
    assert sorted((c.variant, c.seed) for c in seeds.cells) == [("PRM-none", 1), ("PRM-none", 2),
                                                                ("PRM-none@default", 1), ("PRM-none@default", 2)]
    best = G.read_trials(os.path.join(G.folder(G.load_grid(grid_file), "ml-100k-slice", "PRM-none"), "trials.jsonl"))[0]
    cell = next(c for c in seeds.cells if c.variant == "PRM-none")
    default = next(c for c in seeds.cells if c.variant == "PRM-none@default")
    assert seeds.settings(cell)["learning_rate"] == best.params["learning_rate"]
    assert seeds.settings(cell)["score_fusion"] == "none" == seeds.settings(default)["score_fusion"]
    assert "learning_rate" not in seeds.settings(default)  # the config files' value
    # DNR-G has no finished search: its pair waits for it; tuned − default is there
    assert seeds.report["pairs"] == [["PRM-none", "PRM-none@default"]]


def test_seed_cell_at_the_search_seed_evaluates_the_kept_best_trial(grid_file, tmp_path):
    """The search keeps its best trial's checkpoint and finished state: the seeds grid's cell at the
    trials' training seed (smoke config: 7) evaluates it, with the trial's own figures, and trains nothing."""
    from recbole_dnr.benchmark import cell as C
    from recbole_dnr.benchmark.spec import load_spec

    spec = yaml.safe_load(open(grid_file))
    spec["seeds"].update(seeds=[7, 8])
    open(grid_file, "w").write(yaml.safe_dump(spec))
    benchmark(["--config", grid_file, "--only", "contender=PRM-none"])
    benchmark(["--config", grid_file, "--seeds"])
    trials = G.read_trials(os.path.join(G.folder(G.load_grid(grid_file), "ml-100k-slice", "PRM-none"), "trials.jsonl"))
    best = max(trials, key=lambda r: r.best_valid)
    seeds = load_spec(str(tmp_path / "seeds.yaml"))
    records = {}
    for seed in (7, 8):
        cell = next(c for c in seeds.cells if c.variant == "PRM-none" and c.seed == seed)
        out = seeds.cell_path(cell)
        C.main(["--settings", json.dumps(seeds.settings(cell)), "--out", out, "--config_files", *seeds.config_files])
        records[seed] = json.load(open(out))
    kept = records[7]
    assert kept["resumed_after_epoch"] == best.epochs - 1 and kept["epochs_run"] == best.epochs
    assert kept["valid_curve"] == best.curve and kept["test"]["ndcg@6"] == pytest.approx(best.test, abs=0)
    assert records[8]["resumed_after_epoch"] is None  # another seed: trained
    assert not any(os.path.exists(r["resume_file"]) for r in records.values())  # both cells complete


def test_warm_start_tries_the_other_datasets_best_first(grid_file, slice_root):
    from recbole_dnr.hyper.search import run_optuna

    spec = yaml.safe_load(open(grid_file))
    spec["trials"] = 1
    spec["datasets"]["ml-1m-u1to2999"] = {"data_path": "../shared/data", "warm_start": "ml-100k-slice"}
    open(grid_file, "w").write(yaml.safe_dump(spec))
    grid = G.load_grid(grid_file)
    assert G.warm_start(grid, "ml-1m-u1to2999", "PRM-none") == []  # nothing finished on the source yet
    benchmark(["--config", grid_file, "--only", "dataset=ml-100k-slice;contender=PRM-none"])
    [(params, note)] = G.warm_start(grid, "ml-1m-u1to2999", "PRM-none")
    [row] = G.read_trials(os.path.join(G.folder(grid, "ml-100k-slice", "PRM-none"), "trials.jsonl"))
    assert params == row.params and note == "best of ml-100k-slice (trial 0)"
    assert "warm_start" not in G.fixed_settings(grid, "ml-1m-u1to2999", "PRM-none")
    # the search's first trial is the given config (on the slice here, to stay small)
    start = {"learning_rate": 0.0042, "hidden_size": 32, "dropout_prob": 0.25}
    rows = run_optuna(G.contender_space(grid, "PRM-none"), grid["config_files"],
                      G.fixed_settings(grid, "ml-100k-slice", "PRM-none"), 1, seed=5, start=[(start, "moved")])
    assert rows[0].params == start and rows[0].note == "moved"


def test_grid_errors_name_the_key(grid_file):
    spec = yaml.safe_load(open(grid_file))
    bad = [("datasets", {"ml-100k-slice": {"warm_start": "ml-100k-slice"}}, "warm_start must name another dataset"),
           ("seeds", {"pairs": [["DNR-G", "SASRec"]]}, "two contenders of the grid"),
           ("seeds", {"seed": [1]}, "seeds has unknown key"),
           ("contenders", {"X": {"settings": {"model": "PRM"}, "datasets": ["ml-1m"]}}, "names dataset(s) ['ml-1m']")]
    for key, value, message in bad:
        broken = {**spec, key: value}
        open(grid_file, "w").write(yaml.safe_dump(broken))
        with pytest.raises(G.UserInputError, match=re.escape(message)):
            G.load_grid(grid_file)


def test_a_search_another_process_runs_is_skipped(grid_file, capsys):
    """Two runners on one search would both rewrite its trials.jsonl: the second skips it."""
    import hashlib
    import subprocess
    import sys

    grid = G.load_grid(grid_file)
    tag = hashlib.sha1(os.path.abspath(grid["out"]).encode()).hexdigest()[:8]
    stem = os.path.abspath(os.path.join("saved/tuning", f"ml-100k-slice--PRM-none--{tag}"))
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from recbole_dnr import storage; "
                               f"assert storage.claim({stem!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert G.run_search(grid, "ml-100k-slice", "PRM-none") == []
        assert "another process is searching it" in capsys.readouterr().out
        assert not os.path.exists(os.path.join(G.folder(grid, "ml-100k-slice", "PRM-none"), "trials.jsonl"))
    finally:
        holder.kill()
        holder.wait()
