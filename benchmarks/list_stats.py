"""Dataset and list statistics under each protocol option (docs/protocol.md).

Builds the candidate lists (the retriever stage included) for every option given and prints
one json line each: users, items, lists per split, positives per list, and the retriever's
AUC over the lists and recall of the positives on train/valid/test.

    python benchmarks/list_stats.py --dataset ml-100k --options filler_sampling=uniform \
        filler_sampling=popularity filler_sampling=retriever retriever_fit=crossfit list_mode=retrieve
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recbole_dnr.config import Config  # noqa: E402
from recbole_dnr.data import create_dataset  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--options", nargs="*", default=["list_mode=slate"],
                        help="one key=value[,key=value] per protocol variant")
    parser.add_argument("--out", default=None, help="append json lines here")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    for option in args.options:
        over = dict(kv.split("=", 1) for kv in option.split(","))
        over = {k: (int(v) if v.isdigit() else v) for k, v in over.items()}
        cfg = {"model": "Retriever", "dataset": args.dataset, "seed": args.seed, "state": "WARNING",
               "show_progress": False, **over}
        if args.data_path:
            cfg["data_path"] = args.data_path
        start = time.perf_counter()
        ds = create_dataset(Config(config_dict=cfg))
        ds.build()
        row = {"option": option, "seed": args.seed, "build_sec": round(time.perf_counter() - start, 1), **ds.stats}
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
