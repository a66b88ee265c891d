"""Distributed runs on CPU (gloo): sharding, gradient sums, metrics equal to one process, resume."""

import socket

import pytest
import torch
import torch.multiprocessing as mp
from conftest import smoke_config
from hypothesis import given, settings
from hypothesis import strategies as st

import _dist_worker
from recbole_dnr import compat
from recbole_dnr.fields import REQUEST_ID
from recbole_dnr.distributed import check_launch, shard
from recbole_dnr.quick_start import build
from recbole_dnr.errors import UserInputError


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 300), st.integers(1, 9))
def test_shards_cover_each_item_exactly_once(n, world):
    parts = [range(n)[shard(n, r, world)] for r in range(world)]
    assert sorted(i for p in parts for i in p) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_launch_options_are_checked_before_anything_starts():
    assert check_launch(2, -1, "localhost", "5678", 0) == 2
    assert check_launch(2, 4, "10.0.0.1", 29500, 2) == 4
    with pytest.raises(UserInputError, match="--nproc"):
        check_launch(0, -1, "localhost", "5678", 0)
    with pytest.raises(UserInputError, match="--world_size=1 is smaller"):
        check_launch(2, 1, "localhost", "5678", 0)
    with pytest.raises(UserInputError, match="--group_offset=3"):
        check_launch(2, 4, "localhost", "5678", 3)
    with pytest.raises(UserInputError, match="--port"):
        check_launch(2, -1, "localhost", "http", 0)


def test_gradients_are_weighted_by_each_ranks_lists(tmp_path):
    mp.spawn(_dist_worker.gradients, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in range(2):
        g = torch.load(tmp_path / f"grad{r}.pt")
        # by hand: a = (3 * [3, 6] + 1 * [7, 2]) / 4; b only on rank 0: 3 * [1, 1] / 4; c: no rank
        assert torch.allclose(g["a"], torch.tensor([4.0, 5.0]))
        assert torch.allclose(g["b"], torch.tensor([0.75, 0.75]))
        assert g["c"] is None


@pytest.mark.parametrize("model, tol", [("PRM", 1e-4), ("DNR_PRM", 0.01)])
def test_two_processes_match_one(model, tol, slice_root, in_session_dir, tmp_path):
    """(a) same test metrics as one process for the same effective batch (no dropout: PRM's
    gradient is then the same sum, DNR_PRM's differs by rank 1's noise draws); (b) each training
    list once per epoch across ranks; (c) rank 0's checkpoint resumes in one process."""
    cfg = smoke_config(slice_root, epochs=2, dropout_prob=0.0, attn_dropout_prob=0.0, lambda_e=1,
                       world_size=2, nproc=2, offset=0, ip="localhost", port=free_port())
    mp.spawn(_dist_worker.train, args=(model, cfg, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["backend"] == "gloo" and ranks[0]["world"] == 2
    assert ranks[0]["test"] == ranks[1]["test"]  # every rank computed the metrics of the whole split

    single = {k: v for k, v in cfg.items() if k not in ("world_size", "nproc", "offset", "ip", "port")}
    config, _, (train, valid, test), _, trainer = build(model, config_dict=single)
    seen = torch.cat([ranks[0]["seen"], ranks[1]["seen"]])
    one_epoch = [batch[REQUEST_ID] for batch in train]  # as the ranks did: same shuffles in fit
    assert len(one_epoch) == len(train)
    assert sorted(seen.tolist()) == sorted(train._dataset.inter[REQUEST_ID].tolist())  # (b)
    trainer.fit(train, valid, saved=True)
    one = trainer.evaluate(test, load_best_model=True)
    for metric, value in one.items():  # (a)
        assert abs(ranks[0]["test"][metric] - value) <= tol, (metric, ranks[0]["test"][metric], value)

    # (c) rank 0's checkpoint, written under world size 2, resumes in one process
    checkpoint = compat.load_checkpoint(ranks[0]["checkpoint"])
    config, _, (train, valid, test), model_, trainer = build(model, config_dict=dict(single, epochs=3))
    trainer.resume_checkpoint(ranks[0]["checkpoint"])
    assert trainer.start_epoch == checkpoint["epoch"] + 1
    for name, tensor in model_.state_dict().items():
        assert torch.equal(tensor, checkpoint["state_dict"][name]), name
    trainer.fit(train, valid, saved=False)
    assert trainer.evaluate(test, load_best_model=False)["ndcg@6"] > 0


def test_recbole_models_are_refused_in_a_distributed_run(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, local_rank=0, world_size=2, nproc=2, offset=0, ip="localhost", port=free_port())
    with pytest.raises(UserInputError, match="RecBole's own model"):
        build("BPR", config_dict=cfg)
