"""Rank entry points for tests/trainer/test_distributed.py (spawned processes import them by name)."""

import os

import torch
import torch.distributed as dist

from recbole_dnr import distributed
from recbole_dnr.fields import REQUEST_ID


def gradients(local_rank, port, out_dir):
    """Two ranks with uneven parts (3 lists and 1) and a parameter only rank 0 reaches."""
    dist.init_process_group("gloo", rank=local_rank, world_size=2, init_method=f"tcp://localhost:{port}")
    a, b, c = (torch.zeros(2, requires_grad=True) for _ in range(3))
    if local_rank == 0:
        a.grad, b.grad = torch.tensor([3.0, 6.0]), torch.tensor([1.0, 1.0])
        weight = 3
    else:
        a.grad = torch.tensor([7.0, 2.0])
        weight = 1
    distributed.average_gradients([a, b, c], weight)
    torch.save({"a": a.grad, "b": b.grad, "c": c.grad}, os.path.join(out_dir, f"grad{local_rank}.pt"))
    dist.destroy_process_group()


def train(local_rank, model, cfg, out_dir):
    """Build, record one epoch's training request ids, train, evaluate test; save what the test reads."""
    from recbole_dnr.quick_start import build

    cfg = dict(cfg, local_rank=local_rank)
    config, _, (train_data, valid_data, test_data), _, trainer = build(model, config_dict=cfg)
    seen = torch.cat([batch[REQUEST_ID] for batch in train_data])
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    test = trainer.evaluate(test_data, load_best_model=True)
    torch.save({"seen": seen, "test": dict(test), "checkpoint": trainer.saved_model_file,
                "backend": dist.get_backend(), "world": dist.get_world_size()},
               os.path.join(out_dir, f"rank{local_rank}.pt"))
    distributed.barrier()
    dist.destroy_process_group()
