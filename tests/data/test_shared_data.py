"""Slow: the real MovieLens-1M subset in ../shared/data (skipped where it is absent)."""

import os

import numpy as np
import pytest

from recbole_dnr.config import Config
from recbole_dnr.data import create_dataset
from recbole_dnr.data.builder import ListBuilder

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
NAME = "ml-1m-u1to2999"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED, NAME, NAME + ".inter")),
                       reason=f"{SHARED}/{NAME} not present"),
]


def test_ml1m_subset_counts_and_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = {"model": "Retriever", "dataset": NAME, "data_path": SHARED, "retriever_epochs": 1,
           "state": "ERROR", "show_progress": False, "checkpoint_dir": str(tmp_path), "list_cache": False}
    lists = ListBuilder(create_dataset(Config(config_dict=cfg)))
    train, valid, test = lists.build()
    s = lists.stats
    # iterated 20-core filter of the 487,650 ratings of users 1..2999
    assert (s["users"], s["items"], s["interactions"]) == (2983, 2648, 479510)
    assert s["lists"] == 78658 and s["train_lists"] == 57464
    # every valid/test request of a user comes after all its training requests
    for later in (valid, test):
        assert len(later) > 5000
        assert (later.inter["label"].sum(1) > 0).all()  # no-positive lists dropped from evaluation
    first_later = {}
    for later in (valid, test):
        for u, rid in zip(later.inter["user_id"].tolist(), later.inter["request_id"].tolist()):
            first_later[u] = min(first_later.get(u, rid), rid)
    train_u, train_r = train.inter["user_id"].numpy(), train.inter["request_id"].numpy()
    assert all(r < first_later.get(u, np.inf) for u, r in zip(train_u, train_r))
