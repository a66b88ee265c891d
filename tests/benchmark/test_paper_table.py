"""The paper-table machinery: per-epoch test curves in cells (training unchanged), the selection
reading (our valid-selected epoch against the co-authors' per-metric best test epoch), Kendall's
tau-b, and the paper table's markdown and plots (byte-identical when rendered twice)."""

import json
import os

import numpy as np
import pytest

from conftest import smoke_config


def test_test_curve_leaves_training_unchanged(slice_root, in_session_dir):
    from recbole_dnr.benchmark.cell import run_cell

    settings = smoke_config(slice_root, model="PRM", epochs=2, stopping_step=5, resume=False)
    plain, plain_arrays = run_cell(dict(settings))
    curved, curved_arrays = run_cell(dict(settings), test_curve=True)
    assert "test_curve" not in plain
    assert curved["valid_curve"] == plain["valid_curve"] and len(curved["valid_curve"]) == 2
    assert curved["best_epoch"] == plain["best_epoch"]
    assert curved["train_loss_curve"] == plain["train_loss_curve"]
    assert curved["test"] == plain["test"]
    assert curved["run_key"] == plain["run_key"]
    np.testing.assert_array_equal(curved_arrays["ndcg@6"], plain_arrays["ndcg@6"])
    curve = curved["test_curve"]
    assert len(curve) == 2 and set(curve[0]) >= {"h@6", "ndcg@6", "map@6", "f1@6", "auc"}
    # the tested checkpoint is the valid-selected epoch's: its test curve entry is the final test result
    at_best = curve[curved["best_epoch"] - 1]
    for metric in ("h@6", "ndcg@6", "map@6", "f1@6", "auc"):
        assert at_best[metric] == pytest.approx(curved["test"][metric], abs=1e-6)


def curve_cell(best_epoch, curve, **extra):
    """A cell record with a test curve: ``curve`` lists (ndcg@6, auc) per evaluation."""
    return {"best_epoch": best_epoch, "test_curve": [{"ndcg@6": n, "auc": a} for n, a in curve], **extra}


def test_selection_reading_by_hand():
    from recbole_dnr.benchmark.selection_bias import reading

    # valid picked evaluation 2; test peaks at 3 for NDCG@6 but at 1 for AUC: each metric its own epoch
    rec = curve_cell(2, [(0.30, 0.72), (0.32, 0.69), (0.35, 0.71)])
    rd = reading([rec, {"best_epoch": 1}], ["ndcg@6", "auc"])  # a cell without a curve is left out
    assert rd["ndcg@6"]["ours"] == [0.32] and rd["ndcg@6"]["theirs"] == [0.35]
    assert rd["ndcg@6"]["inflation"] == [pytest.approx(0.03)]
    assert rd["auc"]["ours"] == [0.69] and rd["auc"]["theirs"] == [0.72]
    assert reading([{"best_epoch": 1}], ["auc"]) == {}


def test_margin_under_both_rules_by_hand():
    from recbole_dnr.benchmark.selection_bias import margins

    def rd(ours, theirs):
        return {"ndcg@6": {"ours": ours, "theirs": theirs}}

    readings = {"DNR": rd([0.40, 0.40], [0.41, 0.41]), "B": rd([0.38], [0.43]), "C": rd([0.38, 0.40], [0.40, 0.40])}
    out = margins(readings, ["DNR"], "ndcg@6")
    # ours: best baseline C (0.39), DNR +0.01; theirs: B inflates most and becomes the best (0.43), DNR -0.02
    assert out["DNR"]["ours"] == (pytest.approx(0.01), "C")
    assert out["DNR"]["theirs"] == (pytest.approx(-0.02), "B")
    assert out["DNR"]["change"] == pytest.approx(-0.03)
    assert margins({"DNR": readings["DNR"]}, ["DNR"], "ndcg@6") == {}


def test_kendall_tau_b_by_hand():
    from scipy import stats

    from recbole_dnr.benchmark.selection_bias import kendall_tau_b

    # 6 pairs, one discordant (items 2 and 3): (5 - 1) / 6
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: a ties items 2,3 and b ties 3,4; 4 concordant, 0 discordant, 5 untied pairs each: 4 / sqrt(5 * 5)
    assert kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(stats.kendalltau([1, 2, 2, 3], [1, 2, 3, 3])[0])
    assert kendall_tau_b([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert np.isnan(kendall_tau_b([1, 1], [1, 2]))


def test_paper_comparison_uses_the_rows_both_have():
    from recbole_dnr.benchmark.paper import paper_comparison

    ours = {"A": 0.40, "B": 0.30, "C": 0.35, "D": 0.20}
    mine, theirs, tau = paper_comparison(ours, {"A": 77.0, "B": 76.5, "C": 72.0})
    assert mine == ["A", "C", "B"] and theirs == ["A", "B", "C"] and tau == pytest.approx(1 / 3)


def fake_runs(tmp_path):
    """Two baselines and a DNR row over 3 seeds, with per-request NDCG@6 and test curves."""
    rng = np.random.default_rng(0)
    runs = []
    for variant, model, level in [("Retriever", "Retriever", 0.30), ("PIER", "PIER", 0.36), ("DNR-G-PIER", "DNR_PIER", 0.38)]:
        for seed in (2020, 2021, 2022):
            values = np.clip(level + 0.1 * rng.standard_normal(40), 0, 1)
            npz = tmp_path / f"{variant}-{seed}.npz"
            np.savez(npz, request_id=np.arange(40), **{"ndcg@6": values})
            test = {m: float(values.mean()) + k * 0.01 for k, m in enumerate(["h@6", "ndcg@6", "map@6", "f1@6", "auc"])}
            curve = [] if model == "Retriever" else [{m: v - 0.01 * (2 - e) for m, v in test.items()} for e in range(3)]
            runs.append({"dataset": "d", "variant": variant, "model": model, "seed": seed, "test": test,
                         "best_epoch": 2 if curve else 0, "test_curve": curve, "npz": str(npz),
                         "machine": {"platform": "Linux", "cpu_count": 2, "torch": "2"}})
    return runs


def test_paper_table_renders_and_is_byte_identical_twice(tmp_path):
    from recbole_dnr.benchmark.paper import render_paper
    from recbole_dnr.benchmark.spec import Spec

    spec = Spec(path="grid.yaml", out=str(tmp_path), config_files=[], datasets={}, variants={}, cells=[],
                paper={"d": {"PIER": {"ndcg@6": 75.99}, "DNR-G-PIER": {"ndcg@6": 77.67}}},
                report={"markdown": str(tmp_path / "doc.md"), "tag": "paper", "img_dir": str(tmp_path / "img"),
                        "prefix": "paper", "paper_table": True})
    runs = {"d": fake_runs(tmp_path)}
    written = render_paper(spec, runs)
    assert written == [str(tmp_path / "doc.md"), str(tmp_path / "img" / "paper_d.png")]
    first = [open(p, "rb").read() for p in written]
    for p in written:
        os.remove(p)
    assert [open(p, "rb").read() for p in render_paper(spec, runs)] == first
    md = first[0].decode()
    assert "| DNR-G-PIER | 3 |" in md and "| DNR-G-PIER − PIER |" in md  # the best baseline, not the floor
    assert "NDCG@6 77.67" in md and "Kendall's tau-b: 1.000" in md
    # test curves: valid-selected epoch 2 is 0.01 below the last; the floor has no curve, so no row
    assert "ours → theirs" in md and "| Retriever | 0 |" not in md and "(0.0100 ± 0.0000)" in md
    assert "| DNR-G-PIER | NDCG@6 | +0.0274 (PIER) | +0.0274 (PIER) | +0.0000 |" in md


@pytest.mark.parametrize("extra, message", [
    ({"test_curve": "yes"}, "test_curve: must be true or false"),
    ({"paper": {"ml-100k": {"PRM": 72.85}}}, "paper.ml-100k.PRM must be a variant of the grid mapped to"),
    ({"paper": {"ml-100k": {"SASRec": {"ndcg@6": 72.16}}}}, "paper.ml-100k.SASRec must be a variant"),
])
def test_paper_grid_mistakes_are_clear_errors(tmp_path, extra, message):
    import yaml

    from recbole_dnr.benchmark.spec import load_spec
    from recbole_dnr.errors import UserInputError

    grid = {"out": str(tmp_path / "out"), "datasets": {"ml-100k": {}},
            "grids": [{"datasets": ["ml-100k"], "models": ["PRM"], "seeds": [1]}],
            "report": {"paper_table": True}, **extra}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    with pytest.raises(UserInputError, match=message.replace(".", r"\.")):
        load_spec(str(path))


@pytest.mark.slow  # the grid names ../shared/data
def test_the_paper_grid_loads_with_its_figures():
    from recbole_dnr.benchmark.spec import load_spec

    spec = load_spec("experiments/grids/paper.yaml")
    assert spec.test_curve and spec.report["paper_table"]
    assert {c.seed for c in spec.cells if c.variant == "DNR-B-PIER"} == {2020, 2021, 2022, 2023, 2024}
    assert {c.seed for c in spec.cells if c.variant == "DCDR"} == {2020, 2021, 2022}
    assert all(v in spec.variants for rows in spec.paper.values() for v in rows)
