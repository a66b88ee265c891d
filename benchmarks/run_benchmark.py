"""Benchmark variants x seeds on one dataset, in one process (so cost ratios share one machine state).

Superseded for new grids by ``python -m recbole_dnr.benchmark --config <grid.yaml>`` (resumable,
one process per cell); kept because the result files of the sections before the model zoo in
docs/benchmarks.md were written by it.

Each variant is a yaml file in properties/experiments/ (e.g. PRM, DNR-G, DNR-B, the ablations).
For every run it records valid/test metrics (early stopping on the valid split), epochs run,
training seconds per epoch, inference seconds per list (best of 3 passes over the test lists),
and the per-request test metrics (for paired tests, in an .npz beside the json).

    python benchmarks/run_benchmark.py --dataset ml-100k --variants Retriever PRM DNR-G DNR-B \
        --seeds 2020 2021 2022 --config_files benchmarks/bench.yaml --out benchmarks/results/ml-100k.json

Summarise with ``python benchmarks/report.py benchmarks/results/*.json``.
"""

import argparse
import json
import os
import platform
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from recbole_dnr.benchmark.cell import run_cell  # noqa: E402


def variant_file(name):
    path = os.path.join(ROOT, "properties", "experiments", name + ".yaml")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(os.path.dirname(path)) if f.endswith(".yaml"))
        raise SystemExit(f"unknown variant '{name}': known variants are {known}")
    return path


def parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_one(args, variant, seed):
    """One run through the benchmark command's cell runner (recbole_dnr/benchmark/cell.py), in this process."""
    files = [variant_file(variant)] + (args.config_files or [])
    config_dict = {"dataset": args.dataset, "seed": seed, "show_progress": False}
    if args.data_path:
        config_dict["data_path"] = args.data_path
    config_dict.update({k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set or [])})
    record, arrays = run_cell(config_dict, files, label=f"[{variant} seed {seed}]")
    record["variant"] = variant
    record["infer_sec_per_list"] = record["infer_us_per_list"] / 1e6  # the key report.py reads
    return record, arrays


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--config_files", nargs="*", default=None, help="extra yaml files for every run")
    parser.add_argument("--set", nargs="*", help="key=value overrides for every run")
    parser.add_argument("--out", required=True, help="results json (per-request metrics go to <out>.npz)")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config overrides
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))

    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                           "torch": torch.__version__},
               "command": " ".join(["python"] + [os.path.relpath(__file__, ROOT)] + os.sys.orig_argv[2:]),
               "runs": []}
    arrays = {}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    for seed in args.seeds:
        for variant in args.variants:
            record, per_list = run_one(args, variant, seed)
            results["runs"].append(record)
            for key, values in per_list.items():
                arrays[f"{variant}/{seed}/{key}"] = values
            print(json.dumps({k: record[k] for k in ("variant", "seed", "valid", "test", "epochs_run",
                                                      "train_sec_per_epoch", "infer_sec_per_list")}), flush=True)
            tmp = args.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(results, f, indent=1)
            os.replace(tmp, args.out)
            np.savez_compressed(args.out + ".tmp.npz", **arrays)
            os.replace(args.out + ".tmp.npz", args.out[:-5] + ".npz" if args.out.endswith(".json") else args.out + ".npz")


if __name__ == "__main__":
    main()
