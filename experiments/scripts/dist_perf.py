"""Training lists/s of one process (all cores) against N gloo processes (cores split between them).

    python experiments/scripts/dist_perf.py --dataset ml-100k --model PRM --nprocs 1 2 \
        --out experiments/results/dist_perf_ml-100k.json     # experiments/grids/bench.yaml settings

Each configuration builds its lists (from the cache after the first), then times
``--epochs`` training epochs (``ListTrainer._train_epoch``, no evaluation) after one warm-up
epoch; rank 0 reports training lists/s = lists per epoch / median epoch seconds. Threads per
process = cores // nproc. Configurations alternate for ``--rounds`` rounds (this VM is noisy).
"""

import argparse
import json
import os
import socket
import statistics
import time

import torch
import torch.multiprocessing as mp


def _port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _rank(local_rank, nproc, args, port, queue):
    torch.set_num_threads(max(1, args.cores // nproc))
    from recbole_dnr import distributed
    from recbole_dnr.quick_start import build

    cfg = {"state": "ERROR", "show_progress": False, "gpu_id": "", "seed": 2020}
    cfg.update(json.loads(args.set))
    if args.data_path:
        cfg["data_path"] = args.data_path
    if nproc > 1:
        cfg.update(local_rank=local_rank, world_size=nproc, nproc=nproc, offset=0, ip="localhost", port=port)
    _, _, (train, _, _), _, trainer = build(args.model, args.dataset, args.config_files, config_dict=cfg)
    times = []
    for epoch in range(args.epochs + 1):
        distributed.barrier()
        t = time.perf_counter()
        trainer._train_epoch(train, epoch)
        distributed.barrier()
        times.append(time.perf_counter() - t)
    if distributed.rank() == 0:
        queue.put(len(train._dataset) / statistics.median(times[1:]))
    if nproc > 1:
        torch.distributed.destroy_process_group()


def measure(nproc, args):
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_rank, args=(nproc, args, str(_port()), queue), nprocs=nproc, join=True)
    return queue.get()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--model", default="PRM")
    parser.add_argument("--config_files", nargs="*", default=["experiments/grids/bench.yaml"])
    parser.add_argument("--set", default="{}", help="JSON dict of config keys")
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rates = {n: [] for n in args.nprocs}
    for _ in range(args.rounds):
        for n in args.nprocs:
            rates[n].append(measure(n, args))
            print(f"nproc {n}: {rates[n][-1]:.0f} training lists/s", flush=True)
    result = {"dataset": args.dataset, "model": args.model, "cores": args.cores, "config_files": args.config_files,
              "set": json.loads(args.set),
              "lists_per_s": {n: statistics.median(v) for n, v in rates.items()}, "rounds": rates,
              "torch": torch.__version__}
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
