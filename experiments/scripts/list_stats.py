"""Dataset and list statistics under each protocol option (docs/protocol.md).

Builds the candidate lists (the retriever stage included) for every option given and prints
one json line each: users, items, lists per split, positives per list, and the retriever's
AUC over the lists and recall of the positives on train/valid/test.

    python experiments/scripts/list_stats.py --dataset ml-100k --options filler_sampling=uniform \
        filler_sampling=popularity filler_sampling=retriever retriever_fit=crossfit list_mode=retrieve
"""

import argparse
import json
import sys
import time


from recbole_dnr.config import Config  # noqa: E402
from recbole_dnr.data import create_dataset  # noqa: E402
from recbole_dnr.data.builder import ListBuilder  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--options", nargs="*", default=["list_mode=slate"],
                        help="one key=value[,key=value] per protocol variant")
    parser.add_argument("--out", default=None, help="append json lines here")
    args = parser.parse_args()
    for option in args.options:
        over = dict(kv.split("=", 1) for kv in option.split(","))
        over = {k: (int(v) if v.isdigit() else v) for k, v in over.items()}
        cfg = {"model": "Retriever", "dataset": args.dataset, "seed": args.seed, "state": "WARNING",
               "show_progress": False, **over}
        if args.data_path:
            cfg["data_path"] = args.data_path
        start = time.perf_counter()
        lists = ListBuilder(create_dataset(Config(config_dict=cfg)))
        lists.build()
        row = {"option": option, "seed": args.seed, "build_sec": round(time.perf_counter() - start, 1), **lists.stats}
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")



def markdown(paths):
    """Markdown tables from the json lines written with ``--out``."""
    rows = [json.loads(line) for p in paths for line in open(p)]
    out = ["| dataset | option | users | items | ratings | lists (train/valid/test kept) | no-positive lists dropped (valid/test) "
           "| positives per list (train/valid/test) | retriever AUC train/valid/test | retriever recall train/valid/test |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for d in rows:
        tri = lambda k, f="{}": "/".join(f.format(d[f"{s}_{k}"]) for s in ("train", "valid", "test"))
        out.append(f"| {d['dataset']} | {d['option']} (fit: {d['retriever_fit']}) | {d['users']:,} | {d['items']:,} | {d['interactions']:,} "
                   f"| {d['lists']:,} ({tri('lists')}) | {d['valid_lists_no_positive']}/{d['test_lists_no_positive']} "
                   f"| {tri('positives_per_list', '{:.2f}')} | {tri('retriever_auc', '{:.3f}')} "
                   f"| {tri('retriever_recall', '{:.3f}')} |")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--markdown"]:
        print(markdown(sys.argv[2:]))
    else:
        main()
