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
