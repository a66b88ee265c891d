"""Benchmark variants x seeds on one dataset, in one process (so cost ratios share one machine state).

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
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from recbole_dnr.data.dataset import LABEL, REQUEST_ID, SLATE_MASK  # noqa: E402
from recbole_dnr.evaluator import ListEvaluator  # noqa: E402
from recbole_dnr.quick_start import build  # noqa: E402


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


def inference_seconds_per_list(trainer, data, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = trainer.predict_lists(data)
        best = min(best, time.perf_counter() - start)
    return best / len(out["scores"])


def run_one(args, variant, seed):
    files = [variant_file(variant)] + (args.config_files or [])
    config_dict = {"dataset": args.dataset, "seed": seed, "show_progress": False}
    if args.data_path:
        config_dict["data_path"] = args.data_path
    config_dict.update({k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set or [])})
    started = time.perf_counter()
    config, ds, (train, valid, test), model, trainer = build(config_file_list=files, config_dict=config_dict)
    epoch_times = []
    train_epoch = trainer._train_epoch

    def timed(*a, **kw):
        t0 = time.perf_counter()
        out = train_epoch(*a, **kw)
        epoch_times.append(time.perf_counter() - t0)
        return out

    trainer._train_epoch = timed
    best_score, best_valid = trainer.fit(train, valid, saved=True, show_progress=False)
    test_result = trainer.evaluate(test, load_best_model=True)
    out = trainer.last_eval
    per_list = trainer.evaluator.per_list(out["scores"], out[LABEL], out[SLATE_MASK])
    # the same predictions scored on the 6 exposed slate items only (a diagnostic scope)
    slate_eval = ListEvaluator(config, scope="slate") if config["list_mode"] == "slate" else None
    slate = {}
    if slate_eval is not None:
        slate["test"] = dict(slate_eval.evaluate(out["scores"], out[LABEL], out[SLATE_MASK]))
        slate_per_list = slate_eval.per_list(out["scores"], out[LABEL], out[SLATE_MASK])
        trainer.evaluate(valid, load_best_model=False)
        v = trainer.last_eval
        slate["valid"] = dict(slate_eval.evaluate(v["scores"], v[LABEL], v[SLATE_MASK]))
    infer = inference_seconds_per_list(trainer, test)
    record = {
        "variant": variant, "model": config["model"], "seed": seed, "dataset": args.dataset,
        "valid": dict(best_valid or {}), "test": dict(test_result),
        "epochs_run": len(epoch_times), "train_sec_per_epoch": float(np.mean(epoch_times)) if epoch_times else 0.0,
        "epoch_times": epoch_times, "infer_sec_per_list": infer, "wall_sec": time.perf_counter() - started,
        "test_lists": len(out["scores"]), "list_stats": ds.stats, "slate_scope": slate,
        "config": {k: config[k] for k in ("learning_rate", "hidden_size", "epochs", "stopping_step", "train_batch_size",
                                          "score_fusion", "lambda_c", "lambda_m", "lambda_e", "noise",
                                          "use_learned_generator", "lambda_adv", "lambda_x") if k in config},
    }
    arrays = {"request_id": out[REQUEST_ID].numpy()}
    for key, (values, defined) in per_list.items():
        arrays[key] = np.where(defined.numpy(), values.numpy(), np.nan)
    if slate_eval is not None:
        for key, (values, defined) in slate_per_list.items():
            arrays["slate_" + key] = np.where(defined.numpy(), values.numpy(), np.nan)
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
