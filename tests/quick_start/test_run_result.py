"""One run, one result: Config reads only the command line it is handed, and ``RunResult`` reads as the
dict ``run_recbole_dnr`` returned before it."""

import os
import re
import sys

import pytest
from conftest import smoke_config

from recbole_dnr.config import Config
from recbole_dnr.errors import UserInputError
from recbole_dnr.quick_start import RunResult

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ``sys.argv = ...``, ``sys.argv[1:] = ...``, ``sys.argv[0] = ...`` (not ``==``)
ASSIGNMENT = re.compile(r"\bsys\.argv\s*(\[[^\]]*\])?\s*=(?!=)")


def test_assignment_pattern_finds_what_it_must():
    found = [line for line in ("sys.argv = sys.argv[:1]", "    sys.argv[1:] = rest", "sys.argv[0]= 'x'",
                               "if sys.argv == ['a']:", "args = sys.argv[1:]", "n = len(sys.argv)")
             if ASSIGNMENT.search(line)]
    assert found == ["sys.argv = sys.argv[:1]", "    sys.argv[1:] = rest", "sys.argv[0]= 'x'"]


def test_no_sys_argv_assignment_in_the_package_or_scripts():
    """The command line reaches Config as ``argv``: nothing blanks or rewrites the process's ``sys.argv``."""
    hits = []
    for folder in ("recbole_dnr", os.path.join("experiments", "scripts")):
        for root, dirs, files in os.walk(os.path.join(REPO, folder)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8") as f:
                        hits += [f"{os.path.relpath(path, REPO)}:{i}" for i, line in enumerate(f, 1)
                                 if ASSIGNMENT.search(line)]
    assert hits == []


def test_config_ignores_sys_argv_and_reads_the_argv_it_is_handed(slice_root, monkeypatch):
    cfg = smoke_config(slice_root, model="PRM", epochs=2)
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=77", "-q", "tests/x.py"])  # e.g. pytest's own flags
    assert Config(config_dict=cfg)["epochs"] == 2
    config = Config(config_dict=cfg, argv=["--epochs=5", "--topk=[6,10]"])
    assert config["epochs"] == 5  # a command line wins over the config dict, as in RecBole
    assert list(config["topk"]) == [6, 10]  # values are read as RecBole reads them (yaml-like)
    with pytest.raises(UserInputError, match="--key=value"):
        Config(config_dict=cfg, argv=["epochs=5"])
    with pytest.raises(UserInputError, match="given twice"):
        Config(config_dict=cfg, argv=["--epochs=5", "--epochs=6"])


def test_cli_hands_its_config_flags_to_the_run_and_leaves_sys_argv(monkeypatch):
    import recbole_dnr.quick_start as quick_start
    from recbole_dnr.cli import main

    seen = {}
    monkeypatch.setattr(quick_start, "run", lambda **kw: seen.update(kw))
    monkeypatch.setattr(sys, "argv", ["recbole-dnr", "--model=PRM"])
    main(["--model=PRM", "--dataset=ml-100k", "--epochs=3", "--nproc=1", "--score_fusion=none"])
    assert seen["argv"] == ["--epochs=3", "--score_fusion=none"]  # the launcher's own options stay out
    assert (seen["model"], seen["dataset"], seen["nproc"]) == ("PRM", "ml-100k", 1)
    assert sys.argv == ["recbole-dnr", "--model=PRM"]


def test_run_result_reads_as_the_result_dict():
    result = RunResult(model="PRM", valid={"ndcg@6": 0.5}, test={"ndcg@6": 0.4}, best_valid_score=0.5,
                       valid_score_bigger=True, valid_curve=[0.3, 0.5, 0.45], train_loss_curve=[2.0, 1.5, 1.2],
                       epochs=3, best_epoch=2, seconds=9.0, list_stats={"test_lists": 10},
                       per_request={"request_id": [1, 2]})
    assert result["best_valid_result"] == {"ndcg@6": 0.5} and result["test_result"] == {"ndcg@6": 0.4}
    assert result["model"] == "PRM" and result["best_valid_score"] == 0.5 and result["valid_score_bigger"] is True
    assert result["list_stats"] == {"test_lists": 10}
    # absent, as in the dict: no saved model, no predictions, no kept resume state
    assert "model_file" not in result and result.get("model_file") is None
    with pytest.raises(KeyError):
        result["resume_file"]
    with pytest.raises(KeyError):
        result["per_request"]  # not one of the dict's keys: read it as result.per_request
    assert list(dict(result)) == ["best_valid_score", "valid_score_bigger", "best_valid_result", "test_result",
                                  "model", "epochs", "best_epoch", "valid_curve", "train_loss_curve", "seconds",
                                  "list_stats"]
    result.model_file = "/tmp/PRM.pth"
    assert result["model_file"] == "/tmp/PRM.pth" and len(result) == 12


CELL_KEYS = ["dataset", "model", "seed", "valid", "test", "slate_scope", "score_corruption", "valid_curve",
             "best_epoch", "train_loss_curve", "epochs_run", "epoch_cap", "resumed_after_epoch", "hit_epoch_cap",
             "train_sec_per_epoch", "epoch_times", "fit_sec", "infer_us_per_list", "peak_rss_mb",
             "train_peak_rss_mb", "wall_sec", "test_lists", "parameters", "list_stats", "config", "machine",
             "resume_file", "run_key", "run_config"]


def test_a_cell_wraps_the_run_result(slice_root, in_session_dir):
    """A benchmark cell is a run plus its own measurements: its record keeps the keys committed cells
    have, and its per-request arrays average to the run's test metrics."""
    import numpy as np

    from recbole_dnr.benchmark.cell import run_cell
    from recbole_dnr.trainer.resume import ResumeState

    settings = smoke_config(slice_root, model="PRM", epochs=2, eval_step=1, list_mode="slate")
    record, arrays = run_cell(settings)
    try:
        assert list(record) == CELL_KEYS
        assert record["epochs_run"] == len(record["train_loss_curve"]) == len(record["valid_curve"]) == 2
        curve = record["valid_curve"]
        assert record["valid"]["ndcg@6"] == pytest.approx(max(curve), abs=1e-4)  # the selected epoch's
        assert record["best_epoch"] == max(i + 1 for i, v in enumerate(curve) if v == max(curve))  # a tie: the last
        assert len(arrays["request_id"]) == record["test_lists"] == record["list_stats"]["test_lists"]
        for key in ("ndcg@6", "auc"):  # the split's metrics are rounded to 4 decimals
            assert float(np.nanmean(arrays[key])) == pytest.approx(record["test"][key], abs=1e-4)
            assert float(np.nanmean(arrays["slate_" + key])) == pytest.approx(record["slate_scope"]["test"][key],
                                                                            abs=1e-4)
        assert os.path.isfile(record["resume_file"])  # held for main, which discards it once the cell is written
    finally:
        ResumeState(Config(config_dict={**settings, "show_progress": False, "resume": True})).discard()
