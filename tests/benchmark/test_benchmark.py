"""The one-command benchmark on a tiny grid: cells run in their own processes, a failing cell is
reported without losing the others, finished cells are not recomputed, results.csv and the
markdown block are written; bad grid files are clear errors before any work."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import yaml

from recbole_dnr.benchmark.__main__ import main
from recbole_dnr.benchmark.spec import load_spec
from recbole_dnr.errors import UserInputError

from conftest import SLICE, hold_claim, smoke_config


def grid_file(tmp_path, slice_root, models, **extra):
    settings = smoke_config(slice_root, epochs=1)
    settings.pop("dataset")
    settings["checkpoint_dir"] = os.path.abspath("saved")  # the smoke runs' list cache
    settings["probe_sigmas"] = [0, 0.4]
    settings["probe_weak_retriever"] = {"retriever_embedding_size": 4, "retriever_epochs": 1}
    spec = {"out": str(tmp_path / "out"), "datasets": {SLICE: settings},
            "variants": {"Broken": {"model": "PRM", "n_heads": 5}},  # 32-d cannot split into 5 heads
            "grids": [{"datasets": [SLICE], "models": models, "seeds": [1]}],
            "report": {"markdown": str(tmp_path / "bench.md"), "tag": "t"}}
    spec.update(extra)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.mark.reliability("Faults and interruption", "a benchmark grid stopped between cells, then run again",
                         "finished cells are skipped, the rest run (inside a cell, training resumes from its last epoch)")
def test_grid_runs_resumes_and_reports(tmp_path, slice_root, in_session_dir, capfd):
    path = grid_file(tmp_path, slice_root, ["Retriever", "Broken", "PRM"])
    with pytest.raises(SystemExit, match="1 cell.*Broken"):
        main(["--config", path])
    spec = load_spec(path)
    assert [os.path.isfile(spec.cell_path(c)) for c in spec.cells] == [True, False, True]
    assert os.path.isfile(spec.cell_path(spec.cells[1], "error.txt"))
    with open(os.path.join(spec.out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert {(r["variant"], r["split"]) for r in rows} >= {("Retriever", "test"), ("PRM", "valid"), ("PRM", "test")}
    prm = next(r for r in rows if r["variant"] == "PRM" and r["split"] == "test")
    assert 0 < float(prm["ndcg@6"]) <= 1 and prm["epochs_run"] == "1" and float(prm["peak_rss_mb"]) > 0
    assert 0 < float(prm["train_peak_rss_mb"]) <= float(prm["peak_rss_mb"])  # training alone, lists built before
    with open(spec.cell_path(spec.cells[2])) as f:
        rec = json.load(f)
    probe = rec["score_corruption"]
    assert probe["0"]["ndcg@6"] == rec["test"]["ndcg@6"]  # σ = 0: the stored x, the same metrics
    assert probe["0.4"]["ndcg@6"] != rec["test"]["ndcg@6"]
    assert 0 < probe["weak_retriever"]["ndcg@6"] <= 1 and probe["weak_retriever"] != rec["test"]
    assert any(f.endswith(".pth") and "-weak-" in f for f in os.listdir(os.path.join("saved", "lists")))
    md = (tmp_path / "bench.md").read_text()
    assert "<!-- BEGIN t" in md and "| PRM | 1 |" in md
    head = next(line for line in md.splitlines() if line.startswith("| variant |")).split(" | ")
    row = next(line for line in md.splitlines() if line.startswith("| PRM | 1 |")).split(" | ")
    assert row[head.index("valid NDCG@6")].strip("*") == f"{rec['valid']['ndcg@6']:.4f}"
    assert row[head.index("NDCG@6")].strip("*") == f"{rec['test']['ndcg@6']:.4f}"
    capfd.readouterr()
    mtime = os.path.getmtime(spec.cell_path(spec.cells[2]))
    md_mtime = os.path.getmtime(tmp_path / "bench.md")
    main(["--config", path, "--only", "variant=PRM"])  # finished: nothing recomputed, nothing re-rendered
    out = capfd.readouterr().out
    assert "0 to run" in out and "report left as it is" in out and "wrote" not in out
    assert os.path.getmtime(spec.cell_path(spec.cells[2])) == mtime
    assert os.path.getmtime(tmp_path / "bench.md") == md_mtime
    main(["--config", path, "--report"])  # --report always renders
    assert "wrote" in capfd.readouterr().out

    # another grid naming the same training under another name copies the cell instead of training it
    other = yaml.safe_load(open(path))
    other.update(out=str(tmp_path / "other"), reuse=[spec.out], report={},
                 variants={"PRM-late": {"model": "PRM", "score_fusion": "late"}},
                 grids=[{"datasets": [SLICE], "models": ["PRM-late"], "seeds": [1]}])
    other_path = tmp_path / "other.yaml"
    other_path.write_text(yaml.safe_dump(other))
    assert not any(rec["run_key"] in f for f in os.listdir(os.path.join("saved", "resume")))  # no state, no lock
    main(["--config", str(other_path), "--dry_run"])  # the dry run says it is a copy, not a training
    assert f"would copy {SLICE}/PRM-late/seed1 from {spec.cell_path(spec.cells[2])}" in capfd.readouterr().out
    holder = hold_claim(rec["resume_file"])  # as if a third grid were training this run, until the cell waits for it
    main(["--config", str(other_path)])
    out = capfd.readouterr().out
    assert "another process is training run key" in out and "reused" in out and holder.wait() == 0
    copy_spec = load_spec(str(other_path))
    with open(copy_spec.cell_path(copy_spec.cells[0])) as f:
        copy = json.load(f)
    assert copy["reused_from"] == spec.cell_path(spec.cells[2]) and copy["variant"] == "PRM-late"
    assert copy["test"] == rec["test"] and copy["run_key"] == rec["run_key"]
    assert np.array_equal(np.load(copy_spec.cell_path(copy_spec.cells[0], "npz"))["ndcg@6"],
                          np.load(spec.cell_path(spec.cells[2], "npz"))["ndcg@6"], equal_nan=True)

    # a second runner of this grid that listed PRM before the first finished it (it waited on the claim
    # meanwhile) keeps the finished cell instead of training it again
    holder = hold_claim(rec["resume_file"])
    again = subprocess.run([sys.executable, "-m", "recbole_dnr.benchmark.cell", "--settings",
                            json.dumps(spec.settings(spec.cells[2])), "--out", spec.cell_path(spec.cells[2]),
                            "--label", "[again]", "--config_files", *spec.config_files],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and holder.wait() == 0, again.stderr[-2000:]
    assert "waiting for it" in again.stdout and "finished by another process meanwhile" in again.stdout
    assert os.path.getmtime(spec.cell_path(spec.cells[2])) == mtime


def test_reuse_matches_only_the_same_training(tmp_path):
    from recbole_dnr.benchmark.cell import find_reusable
    folder = tmp_path / "grid"
    for variant, record in {"A": {"run_key": "aaaa"},  # cells before run_key was recorded: the resume file name
                            "B": {"resume_file": "saved/resume/PRM-ml-100k-seed1-bbbb.pth"}}.items():
        cell = folder / "cells" / "ml-100k" / variant
        cell.mkdir(parents=True)
        (cell / "seed1.json").write_text(json.dumps({"dataset": "ml-100k", "seed": 1, **record}))
        np.savez(cell / "seed1.npz", x=np.zeros(1))
    assert find_reusable("aaaa", "ml-100k", 1, [str(folder)])[0].endswith("A/seed1.json")
    assert find_reusable("bbbb", "ml-100k", 1, [str(folder)])[0].endswith("B/seed1.json")
    assert find_reusable("aaaa", "ml-100k", 2, [str(folder)]) is None  # another seed
    assert find_reusable("cccc", "ml-100k", 1, [str(folder), str(tmp_path / "missing")]) is None
    os.remove(folder / "cells" / "ml-100k" / "A" / "seed1.npz")  # a cell without its per-request file is incomplete
    assert find_reusable("aaaa", "ml-100k", 1, [str(folder)]) is None


def test_bad_grids_are_clear_errors(tmp_path, slice_root):
    with pytest.raises(UserInputError, match="not found"):
        load_spec(str(tmp_path / "missing.yaml"))
    with pytest.raises(UserInputError, match="Unknown model 'NoSuch'"):
        load_spec(grid_file(tmp_path, slice_root, ["NoSuch"]))
    with pytest.raises(UserInputError, match="unknown keys"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], colour="red"))
    spec = load_spec(grid_file(tmp_path, slice_root, ["SASRec", "DNR_GRU4Rec"]))
    assert spec.settings(spec.cells[0])["seed"] == 1  # the cell's seed, not the dataset settings' seed 7
    assert spec.variants["SASRec"] == {"model": "RecBoleReranker", "recbole_model": "SASRec"}
    two = [{"datasets": [SLICE], "models": ["PRM"], "seeds": [1]},
           {"datasets": [SLICE], "models": ["PRM"], "seeds": [1], "set": {"retriever_fit": "holdout"}}]
    with pytest.raises(UserInputError, match="no suffix"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], grids=two))
    two[1]["suffix"] = "@holdout"
    spec = load_spec(grid_file(tmp_path, slice_root, ["PRM"], grids=two))
    assert [c.variant for c in spec.cells] == ["PRM", "PRM@holdout"]
    assert spec.variants["PRM@holdout"] == {"model": "PRM", "retriever_fit": "holdout"}
    # a variant's settings on one dataset only: dataset < variant < the variant on that dataset < seed
    own = smoke_config(slice_root, epochs=1)
    own.pop("dataset")
    own.update(stopping_step=10, variants={"Alt": {"stopping_step": 12}})
    alt = {"Alt": {"model": "PRM", "stopping_step": 6}}
    spec = load_spec(grid_file(tmp_path, slice_root, ["PRM", "Alt"], datasets={SLICE: own}, variants=alt))
    assert [spec.settings(c)["stopping_step"] for c in spec.cells] == [10, 12]
    assert "variants" not in spec.settings(spec.cells[0])  # not a config key: it never reaches a cell
    with pytest.raises(UserInputError, match="names 'Nope', which no grid runs"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], datasets={SLICE: {**own, "variants": {"Nope": {}}}}))
    with pytest.raises(UserInputError, match="variant 'Alt' on .*stopping_step"):
        load_spec(grid_file(tmp_path, slice_root, ["Alt"], variants=alt,
                            datasets={SLICE: {**own, "variants": {"Alt": {"stopping_step": -1}}}}))
    with pytest.raises(UserInputError, match="must map variant names to settings"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], datasets={SLICE: {**own, "variants": ["Alt"]}}))
    bad = {"markdown": "x.md", "table2": [["row", "NoSuchVariant", 1.0]]}
    with pytest.raises(UserInputError, match="table2 row"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], report=bad))
    with pytest.raises(UserInputError, match="report.strata pairs entry"):
        load_spec(grid_file(tmp_path, slice_root, ["Retriever", "PRM"], report={"strata": {"pairs": [["PRM", "X"]]}}))
    with pytest.raises(UserInputError, match="report.strata pairs entry .*panel title"):
        load_spec(grid_file(tmp_path, slice_root, ["Retriever", "PRM"],
                            report={"strata": {"pairs": [["PRM", "Retriever", 3]]}}))
    with pytest.raises(UserInputError, match=r"report.pairs entry .* must be \[A, B\],"):  # a title only in strata
        load_spec(grid_file(tmp_path, slice_root, ["Retriever", "PRM"], report={"pairs": [["PRM", "Retriever", "t"]]}))
    load_spec(grid_file(tmp_path, slice_root, ["Retriever", "PRM"],
                        report={"strata": {"pairs": [["PRM", "Retriever", "reading x"]]}}))
    with pytest.raises(UserInputError, match="report.strata floor"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], report={"strata": {"pairs": [["PRM", "PRM"]]}}))
    with pytest.raises(UserInputError, match="report has unknown keys"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], report={"colour": 1}))
    with pytest.raises(UserInputError, match="report.curves must be a list of the grid's variants"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], report={"curves": ["PRM", "PMR"]}))
    with pytest.raises(UserInputError, match="report.select must be the suffix of the grid's default-config twins"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], report={"select": "@default"}))  # no PRM@default
    load_spec(grid_file(tmp_path, slice_root, ["PRM"], grids=two, report={"select": "@holdout"}))
    with pytest.raises(UserInputError, match="reuse: must be a list"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], reuse="experiments/results/zoo"))
    with pytest.raises(UserInputError, match="variant 'PRM-lat' .*score_fusion='lat': expected one of"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM-lat"], variants={"PRM-lat": {"model": "PRM",
                                                                                    "score_fusion": "lat"}}))
    path = grid_file(tmp_path, slice_root, ["PRM"])
    with pytest.raises(SystemExit, match="no cell with variant 'PRMX'; its variants: PRM"):
        main(["--config", path, "--only", "variant=PRMX", "--dry-run"])
    with pytest.raises(SystemExit, match="key one of dataset, variant, seed"):
        main(["--config", path, "--only", "model=PRM", "--dry-run"])
    with pytest.raises(SystemExit, match="no cell with variant 'PRMX'"):
        main(["--config", path, "--only", "variant=PRM,PRMX", "--dry-run"])
    with pytest.raises(UserInputError, match="own results folder"):
        load_spec(grid_file(tmp_path, slice_root, ["PRM"], reuse=[str(tmp_path / "out")]))


def test_selected_epoch_by_hand():
    from recbole_dnr.trainer.list_trainer import selected_epoch

    assert selected_epoch([0.1, 0.3, 0.2, 0.3, 0.25]) == 4  # a tie: RecBole kept epoch 4's checkpoint
    assert selected_epoch([0.1, 0.3, 0.2]) == 2
    assert selected_epoch([]) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_selected_epoch_is_the_checkpoint_recboles_early_stopping_keeps(steps):
    from recbole.utils import early_stopping
    from recbole_dnr.trainer.list_trainer import selected_epoch

    curve = [0.5 + s / 1e4 for s in steps]  # 4-decimal scores, as valid results are rounded: ties happen
    best, cur, saved = -np.inf, 0, 0
    for epoch, value in enumerate(curve, 1):
        best, cur, stop, update = early_stopping(value, best, cur, max_step=len(curve), bigger=True)
        saved = epoch if update else saved
    assert selected_epoch(curve) == saved


def test_only_matches_every_condition_and_any_listed_value():
    from types import SimpleNamespace

    from recbole_dnr.benchmark.__main__ import matches

    cell = SimpleNamespace(dataset="ml-100k", variant="DLCM", seed=2021)
    assert matches(cell, ["variant=PRM,DLCM", "seed=2021"])
    assert not matches(cell, ["variant=PRM,DLCM", "seed=2020"])
    assert not matches(cell, ["variant=PRM"])
    assert matches(cell, None)


def _probe_rec(variant, seed, test, probe):
    return {"variant": variant, "seed": seed, "test": {"ndcg@6": test},
            "score_corruption": {k: {"ndcg@6": v} for k, v in probe.items()}}


def test_probe_and_table2_markdown_by_hand():
    from types import SimpleNamespace

    from recbole_dnr.benchmark.results import fit_cost, peak_cell
    from recbole_dnr.benchmark.tables import fmt, probe_markdown, table2_markdown

    runs = [_probe_rec("PRM", 1, 0.40, {"0": 0.40, "0.4": 0.30, "weak_retriever": 0.35}),
            _probe_rec("PRM", 2, 0.42, {"0": 0.42, "0.4": 0.34, "weak_retriever": 0.39}),
            _probe_rec("DNR_PRM", 1, 0.41, {"0": 0.41, "0.4": 0.38})]
    lines = probe_markdown(runs)
    prm = next(line for line in lines if line.startswith("| PRM |"))
    # σ=0 mean 0.41 ± std(0.40, 0.42) = 0.0141; drop at σ=0.4: -0.10, -0.08 → -0.09 ± 0.0141
    assert prm == "| PRM | 2 | 0.4100 ± 0.0141 | 0.3200 ± 0.0283 | -0.0900 ± 0.0141 | 0.3700 ± 0.0283 | " \
                  "-0.0400 ± 0.0141 |"  # weak: -0.05, -0.03
    dnr = next(line for line in lines if line.startswith("| DNR_PRM |"))
    assert dnr == "| DNR_PRM | 1 | 0.4100 | 0.3800 | -0.0300 |  |  |"
    assert probe_markdown([{"variant": "X", "seed": 1, "test": {}, "score_corruption": {}}]) == []
    spec = SimpleNamespace(report={"table2": [["no score", "PRM", 72.85], ["DNR-G", "DNR_PRM", 77.67],
                                              ["missing", "DNR-B", None]]})
    table = table2_markdown(spec, {"ml-100k": runs})
    assert "| no score | PRM | 0.4100 ± 0.0141 (2) | 72.85 |" in table
    assert "| DNR-G | DNR_PRM | 0.4100 (1) | 77.67 |" in table
    assert "| missing | DNR-B | — |  |" in table
    # cells written before the training peak was recorded have none: the process peak alone
    assert peak_cell([{"peak_rss_mb": 2677.4, "train_peak_rss_mb": 900.2}, {"peak_rss_mb": 10.0}]) == "2677 (900)"
    assert peak_cell([{"peak_rss_mb": 10.0, "train_peak_rss_mb": None}]) == "10"
    # a cell resumed after epoch 52 of 57 that timed only its last 4 epochs (260 s): 260 × 57/4
    assert fit_cost({"fit_sec": 260.0, "epochs_run": 57, "epoch_times": [60.0] * 4, "resumed_after_epoch": 52}) \
        == pytest.approx(3705.0)
    assert fit_cost({"fit_sec": 260.0, "epochs_run": 4, "epoch_times": [60.0] * 4, "resumed_after_epoch": 52}) == 260
    # a metric only some seeds' cells recorded: the mean over those, and how many
    assert fmt([0.5, np.nan, 0.7]) == "0.6000 ± 0.1414 (2 of 3 seeds)"
    assert fmt([np.nan, 0.25], bold=True) == "**0.2500 (1 of 2 seeds)**"
    assert fmt([np.nan]) == "—" and fmt([0.3, 0.5]) == "0.4000 ± 0.1414"


def test_a_dataset_is_plotted_once_a_trained_cell_lands(tmp_path):
    from types import SimpleNamespace

    from recbole_dnr.benchmark.plots import render_plots

    floor = {"variant": "Retriever", "model": "Retriever", "seed": 1, "test": {"ndcg@6": 0.3}, "valid_curve": [],
             "fit_sec": 0.0}
    spec = SimpleNamespace(report={"markdown": str(tmp_path / "b.md"), "img_dir": str(tmp_path / "img"), "prefix": "p"})
    assert render_plots(spec, {"d": [floor]}) == []
    prm = dict(floor, variant="PRM", model="PRM", test={"ndcg@6": 0.35}, valid_curve=[0.30, 0.33], fit_sec=9.0)
    assert render_plots(spec, {"d": [floor, prm]}) == [str(tmp_path / "img" / "p_d.png")]


def test_retrieve_mode_cell_records_the_retrievers_own_quality(slice_root, in_session_dir):
    from recbole_dnr.benchmark.cell import run_cell

    settings = smoke_config(slice_root, model="Retriever", list_mode="retrieve", drop_no_positive_eval=False,
                            eval_positives="window")
    record, arrays = run_cell(settings)
    test = record["test"]
    assert 0 < test["retriever_recall@50"] <= 1 and 0 < test["retriever_ndcg@50"] <= 1
    assert test["retriever_recall@50"] == pytest.approx(record["list_stats"]["test_retriever_recall"], abs=1e-4)
    assert test["retriever_auc"] == pytest.approx(record["list_stats"]["test_retriever_auc"], abs=1e-4)
    # window positives: every request with a liked item in its window is scored, retrieved or not
    assert np.isfinite(arrays["ndcg@6"]).sum() >= (arrays["ndcg@6"] > 0).sum() > 0


def test_valid_curve_panel_draws_the_grids_own_protocol_and_clips_slow_starts():
    from recbole_dnr.benchmark.plots import curve_variants, curve_ylim

    runs = {"Retriever": [{"valid_curve": []}], "PRM": [{"valid_curve": [0.4]}],
            "PRM@holdout": [{"valid_curve": [0.3]}], "DNR-G": [{"valid_curve": [0.41]}]}
    assert curve_variants(list(runs), runs) == ["PRM", "DNR-G"]
    only_at = {"PRM@a": [{"valid_curve": [0.4]}], "PRM@b": [{"valid_curve": [0.3]}]}
    assert curve_variants(list(only_at), only_at) == ["PRM@a", "PRM@b"]
    # report: curves chooses (a grid of 18 rows draws the pairs it discusses); a variant without a curve stays out
    assert curve_variants(list(runs), runs, wanted=["DNR-G", "PRM@holdout", "Retriever"]) == ["PRM@holdout", "DNR-G"]
    # 19 points at 0.40 and one warm-up epoch at 0.10: the 5th percentile is 0.385, the top 0.40
    lo, hi = curve_ylim([0.10] + [0.40] * 19, margin=0.0)
    assert lo == pytest.approx(0.385) and hi == pytest.approx(0.40)
    assert curve_ylim([]) == (0.0, 1.0)


def test_scatter_labels_move_left_or_down_until_they_do_not_overlap():
    from recbole_dnr.benchmark.plots import spread_labels

    size = [(40, 10)] * 3
    # two points 2 pt apart with labels 10 pt high: the lower label goes to the left of its point;
    # a point far to the right keeps its place (3 pt right of and above the point)
    assert spread_labels([(0, 100), (0, 98), (500, 98)], size) == [(3, 3), (-43, 3), (3, 3)]
    # a third label beside both: right and left are taken, so it goes one height down, on the right
    assert spread_labels([(0, 100), (0, 98), (1, 97)], size) == [(3, 3), (-43, 3), (3, -7)]
    # nor over another point: the right of (5, 95) is taken by the label of (0, 100) and its left
    # would cover that point's marker (without markers as obstacles it went left: (-43, 3))
    assert spread_labels([(0, 100), (5, 95)], size[:2]) == [(3, 3), (3, -7)]


def test_x_strata_by_hand(tmp_path):
    from recbole_dnr.benchmark.strata import x_strata

    def rec(name, seed, **metrics):
        path = tmp_path / f"{name}{seed}.npz"
        np.savez(path, request_id=np.array([1, 2, 3, 4, 5]), **{k: np.array(v) for k, v in metrics.items()})
        return {"seed": seed, "npz": str(path)}

    floor = [rec("floor", 1, auc=[0.1, 0.2, 0.8, 0.9, np.nan])]  # request 5 has no positive: dropped
    a = [rec("a", 1, **{"ndcg@6": [0.5, 0.5, 0.5, 0.5, 0]}), rec("a", 2, **{"ndcg@6": [0.7, 0.5, 0.5, 0.3, 0]})]
    b = [rec("b", 1, **{"ndcg@6": [0.4, 0.6, 0.5, 0.5, 0]}), rec("b", 2, **{"ndcg@6": [0.5, 0.5, 0.5, 0.5, 0]})]
    s = x_strata(a, b, floor, bins=2)
    # per-request Δ over seeds: [0.15, -0.05, 0, -0.1]; bins {1, 2} (AUC 0.1-0.5) and {3, 4} (0.5-0.9)
    assert s["seeds"] == [1, 2] and s["n"] == 4 and s["delta"] == pytest.approx(0.0)
    low, high = s["bins"]
    assert (low["lo"], low["hi"], low["n"]) == pytest.approx((0.1, 0.5, 2))
    assert low["delta"] == pytest.approx(0.05) and low["se"] == pytest.approx(0.1)
    assert low["seed_deltas"] == pytest.approx([0.0, 0.1])
    assert high["delta"] == pytest.approx(-0.05) and high["se"] == pytest.approx(0.05)
    assert high["seed_deltas"] == pytest.approx([0.0, -0.1])
    assert x_strata(a, b, [], bins=2) is None
    from recbole_dnr.benchmark.strata import agreeing

    assert agreeing(low) == 1 and agreeing(high) == 1  # seed 1 has Δ 0 in both bins: it agrees with neither


@pytest.mark.parametrize("pairs, panels", [
    ([("DNR_PRM", "PRM"), ("PRM", "PRM-noinfo")], [2]),  # few pairs: one panel, whoever leads them
    ([("PRM", "A"), ("PRM", "B"), ("DNR_PRM", "PRM"), ("DNR_PRM", "A"), ("DNR_PIER", "PIER"), ("DNR_X", "X")], [2, 4]),
    ([(f"DNR_{k}", k) for k in "ABCDEF"], [6]),  # more than five, all DNR rows: still one panel
    # panels the grid names, in order of first mention; an unnamed pair joins "other pairs"
    ([("A-none", "A", "no x"), ("DNR_A", "A", "DNR"), ("B-none", "B", "no x"), ("DNR_A", "A-none")], [2, 1, 1]),
])
def test_strata_plot_splits_backbone_pairs_from_dnr_pairs_when_crowded(tmp_path, pairs, panels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recbole_dnr.benchmark.strata import plot_strata

    bins = [{"delta": 0.01, "se": 0.001, "lo": 0.0, "hi": 0.5}, {"delta": -0.01, "se": 0.001, "lo": 0.5, "hi": 1.0}]
    found = {p[:2]: {"bins": bins, "seeds": [1], "panel": p[2] if len(p) > 2 else None} for p in pairs}
    made = []
    original = plt.subplots
    plt.subplots = lambda *a, **k: made.append(original(*a, **k)) or made[-1]
    try:
        assert plot_strata(plt, "toy", found, str(tmp_path / "s.png")) == str(tmp_path / "s.png")
    finally:
        plt.subplots = original
    axes = made[0][1][0]
    assert [len(ax.get_legend().get_texts()) for ax in axes] == panels
    assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.reliability("Bad input", "a grid yaml edited after some of its cells ran (a setting changed)",
                         "the cells run with the old settings are named with what changed, before any work; "
                         "--rerun_stale retrains them; reports leave them out")
def test_cells_run_with_other_settings_are_stale(tmp_path, slice_root, capfd):
    from recbole_dnr.benchmark.results import load_cells

    path = grid_file(tmp_path, slice_root, ["PRM"])
    spec = load_spec(path)
    cell = spec.cells[0]
    assert spec.status(cell) == "missing"
    os.makedirs(os.path.dirname(spec.cell_path(cell)))
    settings = json.loads(json.dumps(spec.settings(cell)))
    for stopping_step, status in ((settings.get("stopping_step"), "done"), (7, "stale")):
        rec = {"settings": {**settings, "stopping_step": stopping_step}, "test": {"ndcg@6": 0.5}}
        with open(spec.cell_path(cell), "w") as f:
            json.dump(rec, f)
        assert spec.status(cell) == status
        assert len(load_cells(spec)) == (status == "done")
    with pytest.raises(SystemExit, match=r"(?s)1 finished cell\(s\).*stopping_step: 7 -> .*--rerun_stale"):
        main(["--config", path, "--dry-run"])
    capfd.readouterr()
    main(["--config", path, "--dry-run", "--rerun_stale"])
    assert "0 done, 1 to run (1 stale)" in capfd.readouterr().out




def test_default_config_is_chosen_over_the_searched_one_only_on_higher_mean_valid():
    from recbole_dnr.benchmark.selection import choose

    valid = {"A": {1: 0.5, 2: 0.5}, "A@default": {1: 0.6, 2: 0.4},   # tie: the search's config stays
             "B": {1: 0.5, 2: 0.5}, "B@default": {1: 0.6, 2: 0.41},  # 0.505 > 0.5: the default
             "C": {1: 0.5, 2: 0.5}, "C@default": {1: 0.9},           # its twin's seeds still running
             "D": {1: 0.5}}                                          # no twin
    assert choose(valid) == {"A": "A", "B": "B@default"}


def test_selected_table_and_paired_tests_use_the_chosen_configs(tmp_path):
    from types import SimpleNamespace

    from recbole_dnr.benchmark.tables import selected_markdown

    def rec(variant, seed, valid, per_request):
        path = tmp_path / f"{variant}-{seed}.npz"
        np.savez(path, request_id=np.arange(len(per_request)), **{"ndcg@6": np.asarray(per_request)})
        return {"variant": variant, "seed": seed, "valid": {"ndcg@6": valid},
                "test": {"ndcg@6": float(np.mean(per_request))}, "npz": str(path)}

    by_variant = {"X": [rec("X", 1, 0.50, [0.2, 0.4, 0.6])], "X@default": [rec("X@default", 1, 0.55, [0.1, 0.2, 0.3])],
                  "DNR_X": [rec("DNR_X", 1, 0.60, [0.3, 0.3, 0.3])],
                  "DNR_X@default": [rec("DNR_X@default", 1, 0.40, [0.9, 0.9, 0.9])]}
    spec = SimpleNamespace(report={"select": "@default"})
    lines = selected_markdown(spec, by_variant, [("DNR_X", "X"), ("X", "X@default")])
    assert "| X | 0.5000 | 0.5500 | default | 0.2000 |" in lines  # the default's test, never the searched 0.4
    assert "| DNR_X | 0.6000 | 0.4000 | searched | 0.3000 |" in lines  # its default's better test is not read
    (row,) = [line for line in lines if line.startswith("| DNR_X − X |")]
    # DNR_X (0.3, 0.3, 0.3) − X@default (0.1, 0.2, 0.3): +0.2, +0.1, 0 → mean +0.1000 over 3 requests
    assert row.startswith("| DNR_X − X | searched − default | +0.1000 (n=3) |")
    assert not any(line.startswith("| X − X@default") for line in lines)  # tuned − default is the table above
    assert selected_markdown(SimpleNamespace(report={}), by_variant, []) == []


def test_a_cell_records_the_cpu_its_figures_depend_on():
    import torch

    from recbole_dnr.benchmark.tables import cpu_text
    from recbole_dnr.machine import machine

    m = machine()
    assert m["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and isinstance(m["cpu_model"], str)
    assert cpu_text({"cpu_model": "AMD EPYC", "cpu_capability": "AVX512"}) == " (AMD EPYC, AVX512)"
    assert cpu_text({"cpu_model": "", "cpu_capability": "AVX2"}) == " (AVX2)"
    assert cpu_text({"platform": "Linux"}) == ""  # a cell written before the CPU was recorded
