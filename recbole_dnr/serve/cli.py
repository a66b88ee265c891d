"""``recbole-dnr recommend``: recommendations of a trained pipeline for a batch of users;
``recbole-dnr export``: the pipeline as a bundle folder that serves with no dataset;
``recbole-dnr serve``: the HTTP service.

    recbole-dnr recommend --model_file=saved/PRM-....pth --users=196,186 --k=6
    recbole-dnr recommend --model_file=... --users_file=users.txt --out=recs.csv   (or .json)
    recbole-dnr recommend --model_file=... --users=new --histories='{"new": ["50", "181"]}'
    recbole-dnr export --model_file=saved/PRM-....pth --bundle=prm-bundle
"""

import argparse
import csv
import json
import os
import sys

from recbole_dnr.errors import UserInputError, missing_extra


def build_parser():
    parser = argparse.ArgumentParser(prog="recbole-dnr recommend",
                                     description="Top-k items per user from a trained pipeline: retrieve "
                                                 "candidate_num unseen items, rerank them (docs/serving.md).")
    parser.add_argument("--model_file", required=True,
                        help="a checkpoint saved by recbole-dnr training, or a bundle folder (recbole-dnr export)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated user ids, e.g. 196,186")
    who.add_argument("--users_file", help="a file with one user id per line")
    parser.add_argument("--k", type=int, default=6, help="items per user (default 6)")
    parser.add_argument("--out", default=None, help="write .csv or .json instead of printing a table")
    parser.add_argument("--data_path", default=None, help="folder of the dataset's atomic files, if they moved")
    parser.add_argument("--batch", type=int, default=512, help="users scored per reranker call")
    parser.add_argument("--histories", default=None,
                        help='histories of users (new ones included), as JSON or a .json file: {"<user>": '
                             '["<item>", ...] or {"items": [...], "liked": [1, 0, ...]}}; [] gives a new user the '
                             "most rated items")
    add_import_option(parser)
    return parser


def add_import_option(parser):
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="a module or .py file to import first: the one defining a custom model class "
                             "(repeatable)")


def read_histories(spec, users):
    """``--histories`` (inline JSON or a .json file) as one entry per user of ``users`` (None: the run's)."""
    if spec is None:
        return None
    try:
        if spec.lstrip().startswith("{"):
            given = json.loads(spec)
        else:
            with open(spec, encoding="utf-8") as f:
                given = json.load(f)
    except OSError as err:
        raise UserInputError(f"--histories {spec} cannot be read ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise UserInputError(f"--histories: not valid JSON ({err.msg}, line {err.lineno} column {err.colno})") from None
    if not isinstance(given, dict):
        raise UserInputError('--histories must be a JSON object {"<user>": ["<item>", ...]}')
    unused = sorted(set(given) - set(users))
    if unused:
        raise UserInputError(f"--histories names users not in --users/--users_file: {unused[:5]}")
    return [given.get(u) for u in users]


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
        histories = read_histories(args.histories, users)
        from recbole_dnr.serve.recommender import Recommender

        rec = Recommender.load(args.model_file, data_path=args.data_path, imports=args.imports)
        rows = []
        for at in range(0, len(users), args.batch):
            part = users[at:at + args.batch]
            given = None if histories is None else histories[at:at + args.batch]
            for user, items in zip(part, rec.recommend(part, k=args.k, with_scores=True, histories=given)):
                rows += [(user, r + 1, item, score) for r, (item, score) in enumerate(items)]
        write(rows, args.out)
    except UserInputError as err:
        sys.exit(f"error: {err}")


def export_main(argv=None):
    """``recbole-dnr export``: write a checkpoint's pipeline as a bundle folder."""
    parser = argparse.ArgumentParser(prog="recbole-dnr export",
                                     description="Write a trained pipeline as a bundle folder that serves with no "
                                                 "dataset: weights, config, id maps, the retriever's vectors, "
                                                 "each known user's history (docs/serving.md).")
    parser.add_argument("--model_file", required=True, help="a checkpoint saved by recbole-dnr training")
    parser.add_argument("--bundle", required=True, help="the folder to write (created if missing)")
    parser.add_argument("--data_path", default=None, help="folder of the dataset's atomic files, if they moved")
    add_import_option(parser)
    args = parser.parse_args(argv)
    try:
        from recbole_dnr.serve.recommender import Recommender

        rec = Recommender.load(args.model_file, data_path=args.data_path, imports=args.imports)
        rec.save(args.bundle)
    except UserInputError as err:
        sys.exit(f"error: {err}")
    print(f"wrote bundle {args.bundle} ({len(rec.user_ids)} users, {len(rec.data.item_tokens) - 1} items); serve it "
          f"with: recbole-dnr serve --model_file={args.bundle}")


def serve_main(argv=None, prog="recbole-dnr serve"):
    """``recbole-dnr serve``: the HTTP service (:mod:`recbole_dnr.serve.http`)."""
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Serve a trained pipeline over HTTP: POST /recommend, POST "
                                                 "/rerank, GET /health, API docs at /docs (docs/serving.md).")
    parser.add_argument("--model_file", required=True,
                        help="a checkpoint saved by recbole-dnr training, or a bundle folder (recbole-dnr export)")
    parser.add_argument("--data_path", default=None, help="folder of the dataset's atomic files, if they moved")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max_batch", type=int, default=512, help="most users scored in one reranker call")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--access_log", action="store_true", help="print one line per request (uvicorn's access log)")
    add_import_option(parser)
    args = parser.parse_args(argv)
    try:
        from recbole_dnr.serve.http import create_app
        from recbole_dnr.serve.recommender import Recommender

        try:
            import uvicorn
        except ImportError:
            raise missing_extra("the HTTP service needs FastAPI and uvicorn", "fastapi uvicorn", "serve") from None
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        rec = Recommender.load(args.model_file, data_path=args.data_path, imports=args.imports)
        app = create_app(rec, max_batch=args.max_batch)
    except UserInputError as err:
        sys.exit(f"error: {err}")
    print(f"serving {rec.config['model']} on http://{args.host}:{args.port}, docs at /docs", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.access_log else "warning",
                access_log=args.access_log)


def run_subcommand(argv):
    """``recbole-dnr recommend|serve|export <options>``."""
    return {"recommend": main, "serve": serve_main, "export": export_main}[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
