"""Multi-process training on ``torch.distributed``: gloo on CPU, nccl on GPU (docs/distributed.md).

RecBole's own path (``Config._init_device``: nccl + ``cuda.set_device``; ``DistributedDataParallel``
with ``device_ids``; ``DistributedSampler``, which pads the last shard with repeated samples) is
GPU-only and would show some lists twice an epoch. Here instead:

- every rank walks the same seeded permutation and takes a contiguous part of each global batch
  (:func:`shard`), so an epoch shows every training list exactly once across ranks and the
  *effective* batch is ``train_batch_size`` whatever the world size;
- after each backward the gradients are summed over ranks, each rank's weighted by its share of
  the batch (:func:`average_gradients`): for a loss that is a mean over lists this is the
  gradient of the whole batch, as one process would compute it. Plain collectives rather than
  DDP's reducer, because DNR's φ step back-propagates into the generator only (DDP would wait for
  the reranker's gradients) and the last batch of an epoch may leave a rank with no list;
- evaluation scores each rank's part of the split and gathers the per-list outputs in loader
  order (:func:`gather_lists`), so every rank computes the single-process metrics and takes the
  same early-stopping decisions; only rank 0 writes checkpoints and list caches.
"""

import contextlib
import datetime
import os

import torch
import torch.distributed as dist

from recbole_dnr.errors import UserInputError

#: Config keys of a distributed run (RecBole's names).
LAUNCH_KEYS = ("local_rank", "world_size", "nproc", "offset", "ip", "port")


def is_distributed(config):
    """True inside a run launched with ``nproc > 1`` or ``world_size > 1``."""
    return not config["single_spec"]


def require_reranker(is_rerank, model):
    """Only our rerankers, DNR and CoRR run distributed here (RecBole's own models: its GPU path)."""
    if not is_rerank:
        raise UserInputError(f"--nproc/--world_size run our rerankers, DNR and CoRR; {model} is RecBole's own "
                             "model: train it with RecBole's run_recbole.py (GPUs, nccl)")


@contextlib.contextmanager
def rank_zero_first(active=True):
    """Run the block on rank 0 first, then on the other ranks (after a barrier): for work whose
    result later ranks read (list caches) or that races when done at once (folder creation)."""
    first = rank() == 0
    if active and not first:
        barrier()
    yield
    if active and first:
        barrier()


def rank():
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def check_launch(nproc, world_size_, ip, port, group_offset):
    """Validate the launcher's options before any process starts."""
    if not isinstance(nproc, int) or nproc < 1:
        raise UserInputError(f"--nproc={nproc!r}: the number of processes on this machine must be an integer >= 1")
    world = nproc if world_size_ is None or world_size_ <= 0 else world_size_
    if world < nproc:
        raise UserInputError(f"--world_size={world_size_} is smaller than --nproc={nproc}: the world is every "
                             "process on every machine; leave it out on one machine")
    if not 0 <= group_offset <= world - nproc:
        raise UserInputError(f"--group_offset={group_offset}: this machine's ranks are group_offset .. "
                             f"group_offset+nproc-1, which must lie in 0 .. world_size-1 = {world - 1}")
    try:
        port_ = int(port)
    except (TypeError, ValueError):
        port_ = -1
    if not 0 < port_ < 65536:
        raise UserInputError(f"--port={port!r}: a TCP port number (1..65535) free on the rank-0 machine")
    if not ip:
        raise UserInputError("--ip is empty: give the address of the machine that runs rank 0")
    return world


def init_process_group(cfg):
    """Join the process group for ``cfg`` (a final config dict with RecBole's launch keys).

    Returns the device of this rank. GPU runs keep RecBole's choice (nccl, one GPU per local rank).
    """
    local, offset = int(cfg["local_rank"]), int(cfg.get("offset") or 0)
    world = int(cfg["world_size"])
    use_gpu = bool(str(cfg.get("gpu_id", ""))) and torch.cuda.is_available()
    backend = "nccl" if use_gpu else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=local + offset, world_size=world,
                                init_method=f"tcp://{cfg['ip']}:{cfg['port']}",
                                timeout=datetime.timedelta(seconds=int(os.environ.get("RECBOLE_DNR_DIST_TIMEOUT",
                                                                                      1800))))
    if use_gpu:
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def shard(n, rank_=None, world=None):
    """The contiguous part ``slice`` of ``n`` items that rank ``rank_`` of ``world`` takes.

    Parts differ in length by at most one, cover ``range(n)`` and do not overlap; a rank's part
    is empty when ``n < world``.
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    return slice(n * rank_ // world, n * (rank_ + 1) // world)


def broadcast_module(module, src=0):
    """Copy rank ``src``'s parameters and buffers to every rank (each rank initialised its own)."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def average_gradients(params, weight):
    """Replace each ``p.grad`` by ``sum_r weight_r * grad_r / sum_r weight_r`` over ranks.

    ``weight`` is this rank's number of lists in the batch (0 when its part is empty: its
    gradients, if any, do not count). A parameter keeps ``grad = None`` when no rank gave it a
    gradient, as in one process (Adam then leaves it alone). One all-reduce per call.
    """
    params = list(params)
    if not params:
        return
    device, dtype = params[0].device, params[0].dtype
    flat = [p.grad.reshape(-1).to(dtype) * weight if p.grad is not None and weight > 0
            else torch.zeros(p.numel(), dtype=dtype, device=device) for p in params]
    has = torch.tensor([float(p.grad is not None and weight > 0) for p in params] + [float(weight)],
                       dtype=dtype, device=device)
    buf = torch.cat(flat + [has])  # gradients, then a "given" flag per parameter, then the weight
    dist.all_reduce(buf)
    total = buf[-1].item()
    if total <= 0:
        for p in params:
            p.grad = None
        return
    n = buf.numel() - len(params) - 1
    given = (buf[n: n + len(params)] > 0).tolist()
    offset = 0
    for p, g in zip(params, given):
        part = buf[offset: offset + p.numel()]
        offset += p.numel()
        p.grad = (part / total).view_as(p).clone() if g else None


def all_sum(values):
    """Element-wise sum over ranks of a list of floats."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def gather_lists(out, positions):
    """Every rank's per-list outputs, in loader order.

    ``out``: dict of tensors with lists on dim 0 (this rank's part); ``positions [N_r]``: each
    list's index in the loader's order. Returns the dict over all lists, sorted by position.
    """
    parts = [None] * world_size()
    dist.all_gather_object(parts, ({k: v.cpu() for k, v in out.items()}, positions.cpu()))
    pos = torch.cat([p for _, p in parts])
    order = torch.argsort(pos)
    if not torch.equal(pos[order], torch.arange(len(pos))):
        raise RuntimeError("distributed evaluation: the ranks' parts do not cover the split exactly once")
    return {k: torch.cat([o[k] for o, _ in parts])[order] for k in out}


def gather_objects(obj):
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    parts = [None] * world_size()
    dist.all_gather_object(parts, obj)
    return parts


def broadcast_object(obj, src=0):
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def describe():
    """``"gloo, world size 2, rank 0"`` for the log."""
    return f"{dist.get_backend()}, world size {world_size()}, rank {rank()}"
