"""Shared fixtures: a tiny ml-100k slice written from RecBole's bundled copy, isolated working dirs."""

import os

import pytest
import recbole

import recbole_dnr  # noqa: F401  (numpy aliases, metric registration)

SLICE = "ml-100k-slice"
SLICE_USERS = 150


def write_slice(folder, n_users=SLICE_USERS):
    """Atomic files of ml-100k's first ``n_users`` users (by id), from RecBole's wheel."""
    src = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k", "ml-100k.inter")
    out_dir = os.path.join(folder, SLICE)
    os.makedirs(out_dir, exist_ok=True)
    with open(src) as f, open(os.path.join(out_dir, SLICE + ".inter"), "w") as g:
        g.write(next(f))
        for line in f:
            if int(line.split("\t", 1)[0]) <= n_users:
                g.write(line)
    return folder


@pytest.fixture(scope="session")
def slice_root(tmp_path_factory):
    return write_slice(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    """A working directory shared by the smoke runs (RecBole writes ./log and ./log_tensorboard)."""
    return str(tmp_path_factory.mktemp("work"))


@pytest.fixture()
def in_session_dir(session_dir, monkeypatch):
    monkeypatch.chdir(session_dir)
    return session_dir


def smoke_config(slice_root, **overrides):
    """Small, fast settings on the ml-100k slice; lists are cached across tests by config hash."""
    cfg = {
        "dataset": SLICE,
        "data_path": slice_root,
        "gpu_id": "",
        "seed": 7,
        "state": "ERROR",
        "show_progress": False,
        "user_inter_num_interval": "[20,inf)",
        "item_inter_num_interval": "[5,inf)",
        "retriever_epochs": 10,
        "retriever_embedding_size": 32,
        "retriever_learning_rate": 0.01,
        "hidden_size": 32,
        "inner_size": 32,
        "epochs": 3,
        "learning_rate": 0.003,
        "train_batch_size": 64,
        "stopping_step": 3,
        "checkpoint_dir": "saved",
    }
    cfg.update(overrides)
    return cfg
