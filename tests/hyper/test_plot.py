"""The trial plot of a search (``--display_file``): its series, its bytes, the flag."""

import importlib
import math
import sys

import pytest

from recbole_dnr.hyper.cli import run
from recbole_dnr.hyper.plot import best_so_far, plot_trials
from recbole_dnr.hyper.search import SearchResult, TrialRow

pytest.importorskip("matplotlib")


def rows():
    """Hand-made trials, out of order: a failed one first, a pruned one scoring above the best complete."""
    return [TrialRow(3, {"lr": 4e-3}, "complete", 0.41, 0.40, 5, 3, 1.0),
            TrialRow(0, {"lr": 1e-3}, "failed", note="hidden_size=7: expected a multiple of n_heads"),
            TrialRow(1, {"lr": 2e-3}, "complete", 0.38, 0.37, 5, 4, 1.0),
            TrialRow(2, {"lr": 3e-3}, "pruned", 0.52, math.nan, 2, 0, 1.0),
            TrialRow(4, {"lr": 5e-3}, "complete", 0.36, 0.35, 5, 2, 1.0)]


def test_best_so_far_counts_complete_trials_only_in_the_metrics_direction():
    got = best_so_far(rows())
    assert math.isnan(got[0])  # trial 0 failed: nothing yet
    assert got[1:] == [0.38, 0.38, 0.41, 0.41]  # trial 2's 0.52 was pruned: it cannot be chosen
    assert best_so_far(rows(), bigger=False)[1:] == [0.38, 0.38, 0.38, 0.36]
    assert best_so_far([]) == []


def test_the_same_trials_render_the_same_bytes(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    best = rows()[0]
    assert plot_trials(rows(), "ndcg@6", str(first), best)
    plot_trials(rows()[::-1], "ndcg@6", str(second), best)  # the order rows come in does not matter
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.read_bytes() == second.read_bytes()
    assert not plot_trials(rows(), "ndcg@6", str(first), best)  # unchanged bytes: the file is left as it is
    plot_trials(rows(), "ndcg@6", str(second), rows()[2])
    assert first.read_bytes() != second.read_bytes()  # another chosen trial draws another picture


@pytest.fixture()
def searched(monkeypatch, tmp_path):
    """The command with its search replaced by the hand-made trials: the flag's wiring, no training."""
    made = rows()
    search_module = importlib.import_module("recbole_dnr.hyper.search")  # the package exports a function of that name
    monkeypatch.setattr(search_module, "search", lambda *a, **kw: SearchResult(made, made[0], "ndcg@6", True, 5))
    return ["--params_file=space.hyper", f"--output_file={tmp_path / 'out.md'}", "--model=PRM"]


def test_the_display_file_flag_writes_the_plot(searched, tmp_path, capsys):
    run(searched + [f"--display_file={tmp_path / 'plots' / 'trials.png'}"])
    written = (tmp_path / "plots" / "trials.png").read_bytes()
    plot_trials(rows(), "ndcg@6", str(tmp_path / "direct.png"), rows()[0])
    assert written == (tmp_path / "direct.png").read_bytes()
    assert f"trial plot: {tmp_path / 'plots' / 'trials.png'}" in capsys.readouterr().out
    run(searched)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["direct.png"]  # no flag, no plot


def test_the_display_file_flag_fails_before_any_trial(searched, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match=r"--display_file=trials.jpg: the plot is a PNG"):
        run(searched + ["--display_file=trials.jpg"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit, match=r"--display_file needs matplotlib: pip install matplotlib \(from a "
                                         r"checkout: pip install \"\.\[hyper\]\"\)"):
        run(searched + [f"--display_file={tmp_path / 'trials.png'}"])
    assert not (tmp_path / "out.md").exists()
