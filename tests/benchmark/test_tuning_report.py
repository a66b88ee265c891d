"""The tuning grid's report (issue 37): best configs, search cost, knob sensitivity, plot."""

import json
import math
import os

import pytest
import yaml

from recbole_dnr.benchmark import search_report as R
from recbole_dnr.benchmark.__main__ import main as benchmark
from recbole_dnr.hyper.search import TrialRow


def test_spearman_against_hand_computed_ranks():
    # ranks x: 1 2 3 4, y: 1 3 2 4 -> d^2 = 0+1+1+0 = 2, rho = 1 - 6*2/(4*15) = 0.8
    rho, p = R.spearman([0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 2.0, 4.0])
    # exact p over the 24 pairings: |rho| >= 0.8 where d^2 <= 2 (1 + 3 adjacent swaps) or >= 18 (their reverses)
    assert rho == pytest.approx(0.8) and p == pytest.approx(8 / 24)
    assert R.spearman([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx((1.0, 2 / 24))  # not scipy's t-approximation 0
    rho, p = R.spearman(range(10), [0, 2, 1, 3, 4, 6, 5, 7, 9, 8])  # beyond 8 points: the t approximation
    assert 0 < p < 1e-4 and rho == pytest.approx(1 - 6 * 6 / (10 * 99))
    assert math.isnan(R.spearman([1, 1, 1], [1, 2, 3])[0])  # a constant knob says nothing
    assert math.isnan(R.spearman([1, 2], [1, 2])[0])


@pytest.fixture()
def grid_file(tmp_path):
    spec = {"out": str(tmp_path / "tuned"), "trials": 3, "space": ["learning_rate loguniform -7,-5"],
            "knobs": {"dnr": ["lambda_c uniform 0.1,1.0", "lambda_m loguniform -2.3,1.6"]},
            "datasets": {"toy": {}},
            "contenders": {"PRM-none": {"settings": {"model": "PRM"}},
                           "DNR-G": {"settings": {"model": "DNR_PRM"}, "knobs": ["dnr"]}},
            "seeds": {"report": {"markdown": str(tmp_path / "page.md"), "tag": "tuned", "img_dir": str(tmp_path / "img"),
                                 "prefix": "tuned"}}}
    trials = {"PRM-none": [TrialRow(0, {"learning_rate": 0.001}, "complete", 0.40, 0.30, 10, 6, 1800.0,
                                    note="best of ml-100k (trial 4); resumed after a stop"),
                           TrialRow(1, {"learning_rate": 0.002}, "pruned", 0.20, math.nan, 3, 0, 360.0)],
              "DNR-G": [TrialRow(i, {"learning_rate": 0.001, "lambda_c": c, "lambda_m": m}, "complete", v, v - 0.1,
                                 8, 5, 900.0, note="best of ml-100k (trial 4)" if i == 0 else "")
                        for i, (c, m, v) in enumerate([(0.2, 1.0, 0.30), (0.5, 0.3, 0.45), (0.9, 2.0, 0.50)])]}
    for name, rows in trials.items():
        folder = tmp_path / "tuned" / "toy" / name
        folder.mkdir(parents=True)
        (folder / "trials.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in rows))
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(spec))
    (tmp_path / "page.md").write_text("# Page\n\nkept text\n")
    return str(path)


def test_report_writes_configs_cost_and_sensitivity(grid_file, tmp_path):
    assert benchmark(["--config", grid_file, "--report"]) == 0
    page = (tmp_path / "page.md").read_text()
    assert page.startswith("# Page\n\nkept text\n") and "<!-- BEGIN tuned-search" in page
    # best by valid, counts of done/pruned against the budget, hours = the trials' seconds
    # where the best config came from (a transfer), not how its run went (resumed)
    assert "| PRM-none | 1 / 1 of 3 | 0.4000 (trial 0: ml-100k's best) | learning_rate 0.001 | 0.60 |" in page
    assert "| DNR-G | 3 / 0 of 3 | 0.5000 (trial 2) |" in page and "1.4 h in all" in page
    # lambda_c ranks equal valid's ranks: rho +1; lambda_m ranks 2 1 3 against 1 2 3: rho 0.5
    assert "| DNR-G | +1.00 (p 0.33, n 3) | +0.50 (p 1.00, n 3) | — | — | — |" in page  # exact: 2 and 6 of 6 pairings
    png = tmp_path / "img" / "tuned_sensitivity_toy.png"
    assert png.is_file() and "(img/tuned_sensitivity_toy.png)" in page
    before = (png.read_bytes(), os.stat(png).st_mtime_ns, page)
    benchmark(["--config", grid_file, "--report"])  # same trials: same bytes, files untouched
    assert (png.read_bytes(), os.stat(png).st_mtime_ns, (tmp_path / "page.md").read_text()) == before


def test_report_needs_a_target_page(grid_file):
    spec = yaml.safe_load(open(grid_file))
    del spec["seeds"]
    open(grid_file, "w").write(yaml.safe_dump(spec))
    with pytest.raises(SystemExit, match="seeds.report.markdown"):
        benchmark(["--config", grid_file, "--report"])
