"""``recbole-dnr recommend``: recommendations of a trained pipeline for a batch of users.

    recbole-dnr recommend --model_file=saved/PRM-....pth --users=196,186 --k=6
    recbole-dnr recommend --model_file=... --users_file=users.txt --out=recs.csv   (or .json)
"""

import argparse
import csv
import json
import os
import sys

from recbole_dnr.errors import UserInputError


def build_parser():
    parser = argparse.ArgumentParser(prog="recbole-dnr recommend",
                                     description="Top-k items per user from a trained pipeline: retrieve "
                                                 "candidate_num unseen items, rerank them (docs/serving.md).")
    parser.add_argument("--model_file", required=True, help="a checkpoint saved by recbole-dnr training")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated user ids, e.g. 196,186")
    who.add_argument("--users_file", help="a file with one user id per line")
    parser.add_argument("--k", type=int, default=6, help="items per user (default 6)")
    parser.add_argument("--out", default=None, help="write .csv or .json instead of printing a table")
    parser.add_argument("--data_path", default=None, help="folder of the dataset's atomic files, if they moved")
    parser.add_argument("--batch", type=int, default=512, help="users scored per reranker call")
    return parser


def read_users(args):
    if args.users is not None:
        users = [u.strip() for u in args.users.split(",") if u.strip()]
    else:
        try:
            with open(args.users_file, encoding="utf-8") as f:
                users = [line.strip() for line in f if line.strip()]
        except OSError as err:
            raise UserInputError(f"--users_file {args.users_file} cannot be read ({err.strerror})") from None
    if not users:
        raise UserInputError("no user ids given (--users=196,186 or --users_file=<one id per line>)")
    return users


def write(rows, out):
    """``rows``: ``[(user, rank, item, score)]``; to ``out`` (.csv/.json) atomically, or stdout."""
    if out is None:
        print(f"{'user':>10} {'rank':>4} {'item':>10} {'score':>10}")
        for user, rank, item, score in rows:
            print(f"{user:>10} {rank:>4} {item:>10} {score:>10.4f}")
        return
    ext = os.path.splitext(out)[1].lower()  # .csv or .json: main() checked it before loading the model
    tmp = out + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        if ext == ".csv":
            w = csv.writer(f)
            w.writerow(["user", "rank", "item", "score"])
            w.writerows([(u, r, i, f"{s:.6f}") for u, r, i, s in rows])
        else:
            by_user = {}
            for u, _, i, s in rows:
                by_user.setdefault(u, []).append({"item": i, "score": s})
            json.dump(by_user, f, indent=1)
    os.replace(tmp, out)
    print(f"wrote {len(rows)} rows to {out}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        users = read_users(args)
        if args.out is not None and os.path.splitext(args.out)[1].lower() not in (".csv", ".json"):
            raise UserInputError(f"--out {args.out}: the name must end in .csv or .json")
        from recbole_dnr.serve.recommender import Recommender

        rec = Recommender.load(args.model_file, data_path=args.data_path)
        rows = []
        for at in range(0, len(users), args.batch):
            part = users[at:at + args.batch]
            for user, items in zip(part, rec.recommend(part, k=args.k, with_scores=True)):
                rows += [(user, r + 1, item, score) for r, (item, score) in enumerate(items)]
        write(rows, args.out)
    except UserInputError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
