"""Training and inference cost of DNR against its backbone, or of the backbone options, in one process.

For each variant it times training on the same ``--batches`` training batches (per phase for DNR:
heuristic epochs and learned-generator epochs) and inference over the whole test split.
Variants are timed round-robin ``--repeats`` times and the median is kept, so slow phases of a
shared machine hit every variant alike. Ratios are to the variant's base (``--set dnr``: the
backbone with the same score fusion; ``--set backbone``: PRM at its defaults).

    python experiments/scripts/cost.py --dataset ml-1m-u1to2999 --data_path ../shared/data \
        --config_files experiments/grids/bench.yaml --batches 20 --repeats 3 --out experiments/results/cost.json
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout

from recbole_dnr.data.dataloader import ListDataLoader  # noqa: E402
from recbole_dnr.data.dataset import RequestSet  # noqa: E402
from recbole_dnr.quick_start import build  # noqa: E402

SETS = {  # set: {name: (experiment yaml, phase epoch or None, config overrides, base variant)}
    "dnr": {
        "PRM (late)": ("PRM", None, {}, "PRM (late)"),
        "DNR-G (late), heuristic phase": ("DNR-G", "heuristic", {}, "PRM (late)"),
        "DNR-G (late), learned phase": ("DNR-G", "learned", {}, "PRM (late)"),
        "PRM (early)": ("PRM-early", None, {}, "PRM (early)"),
        "DNR-G (early), heuristic phase": ("DNR-G-early", "heuristic", {}, "PRM (early)"),
        "DNR-G (early), learned phase": ("DNR-G-early", "learned", {}, "PRM (early)"),
    },
    "backbone": {  # the backbone options of properties/overall.yaml, one at a time on PRM
        "PRM": ("PRM", None, {}, "PRM"),
        "+ embedding_init_std 0.02": ("PRM", None, {"embedding_init_std": 0.02}, "PRM"),
        "+ history_encoder gru": ("PRM", None, {"history_encoder": "gru"}, "PRM"),
        "+ history_encoder transformer": ("PRM", None, {"history_encoder": "transformer"}, "PRM"),
        "+ user_interaction product": ("PRM", None, {"user_interaction": "product"}, "PRM"),
        "+ token_norm": ("PRM", None, {"token_norm": True}, "PRM"),
        "+ side_features": ("features-ml-100k", None, {"model": "PRM"}, "PRM"),
        "list_context False": ("PRM", None, {"list_context": False}, "PRM"),
    },
    "baselines": {  # every reranker at its yaml defaults, against PRM
        **{name: ("PRM", None, {"model": name}, "PRM")
           for name in ["PRM", "DLCM", "SetRank", "MiDNN", "MIR", "PIER", "EGRerank", "NAR4Rec", "DiffuRec", "DCDR",
                        ]},
        **{name: ("PRM", None, {"model": "RecBoleReranker", "recbole_model": name}, "PRM")
           for name in ["SASRec", "GRU4Rec", "Caser"]},  # RecBole's models reranking our lists
        "DiffuRec, 8 respaced steps": ("PRM", None, {"model": "DiffuRec", "diffurec_eval_steps": 8}, "PRM"),
    },
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--config_files", nargs="*", default=[])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--set", choices=sorted(SETS), default="dnr", help="which variants to time")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    variants = SETS[args.set]
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))

    built = {}
    for name, (variant, _, overrides, _) in variants.items():
        key = (variant, str(sorted(overrides.items())))
        if key in built:
            built[name] = built[key]
            continue
        cfg = {"dataset": args.dataset, "seed": args.seed, "show_progress": False, "state": "WARNING", **overrides}
        if args.data_path:
            cfg["data_path"] = args.data_path
        files = [variant] + args.config_files  # a shipped variant, by name (experiments/variants/)
        config, ds, (train, valid, test), model, trainer = build(config_file_list=files, config_dict=cfg)
        n = min(len(train._dataset), args.batches * config["train_batch_size"])
        sub = RequestSet(ds, train._dataset.inter[torch.arange(n)], "train")
        built[name] = built[key] = (config, trainer, ListDataLoader(config, sub, config["train_batch_size"],
                                                                     shuffle=False), test)

    train_sec = {name: [] for name in variants}
    infer_sec = {name: [] for name in variants}
    for rep in range(args.repeats + 1):  # round 0 warms up (allocator, thread pools) and is discarded
        for name, (variant, phase, _, _) in variants.items():
            config, trainer, loader, test = built[name]
            epoch = 0 if phase != "learned" else config["lambda_e"]
            start = time.perf_counter()
            trainer._train_epoch(loader, epoch)
            elapsed = time.perf_counter() - start
            start = time.perf_counter()
            out = trainer.predict_lists(test)
            if rep > 0:
                train_sec[name].append(elapsed)
                infer_sec[name].append((time.perf_counter() - start) / len(out["scores"]))

    rows = []
    for name, (_, _, _, base) in variants.items():
        t, b = statistics.median(train_sec[name]), statistics.median(train_sec[base])
        i, bi = statistics.median(infer_sec[name]), statistics.median(infer_sec[base])
        rows.append({"variant": name, "train_sec_per_batch": t / args.batches, "train_ratio": t / b,
                     "infer_us_per_list": i * 1e6, "infer_ratio": i / bi,
                     "train_runs": train_sec[name], "infer_runs": infer_sec[name]})
        print(f"{name:34s} train {t / args.batches:.3f} s/batch (x{t / b:.2f})   "
              f"inference {i * 1e6:.1f} us/list (x{i / bi:.2f})", flush=True)
    result = {"command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.orig_argv[2:]),
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
              "batches": args.batches, "repeats": args.repeats, "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
