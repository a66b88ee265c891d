"""The ``recbole-dnr`` command (= ``python run_recbole_dnr.py``): train and evaluate one model;
``recbole-dnr recommend|serve|export ...`` serve a trained one (:mod:`recbole_dnr.serve`).

RecBole's command-line convention: ``--model``, ``--dataset``, ``--config_files`` are the
launcher's own; every other ``--key=value`` enters the config (yaml syntax, e.g.
``--epochs=20 --topk=[6,10]``).
"""

import argparse
import sys
import textwrap

DOCS = "docs/ in the source tree (README.md, docs/models.md, docs/protocol.md)"


def _model_help():
    from recbole_dnr.registry import user_model_names

    return _fill(", ".join(user_model_names()))


def _fill(text):
    return textwrap.fill(text, width=88, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)


def build_parser():
    from recbole_dnr.config import experiment_names
    from recbole_dnr.version import VERSION

    epilog = (
        "models (ours):\n" + _model_help() + "\n"
        "  plus DNR_<any backbone>, and any RecBole model: as RecBole runs it (--model=SASRec),\n"
        "  or as a reranker of the lists (--model=SASRec --list_mode=slate, or DNR_SASRec).\n\n"
        "config:\n"
        "  Any --key=value not listed above enters the config, overriding the yamls\n"
        "  (properties/overall.yaml, properties/model/<Model>.yaml, properties/dataset/<name>.yaml),\n"
        "  e.g. --epochs=20 --learning_rate=1e-3 --score_fusion=none --list_mode=retrieve.\n"
        "  --config_files takes paths, or the names of the variants shipped with the package:\n"
        + _fill(", ".join(experiment_names()) + ".") + "\n\n"
        "datasets:\n"
        "  ml-100k ships with RecBole; any other dataset in RecBole's url.yaml (ml-1m, ...) is\n"
        "  downloaded to --data_path (default dataset/) on first use; --download=False turns that off.\n\n"
        "serving:\n"
        "  recbole-dnr recommend --model_file=<checkpoint> --users=196,186 --k=6  (--help: more)\n"
        "  recbole-dnr serve --model_file=<checkpoint> --port=8080               (HTTP, extra [serve])\n"
        "  recbole-dnr export --model_file=<checkpoint> --bundle=<folder>        (serves with no dataset)\n\n"
        "hyper-parameter search (RecBole's params-file format; run_hyper.py in a checkout):\n"
        "  recbole-dnr-hyper --model=DNR_PRM --dataset=ml-100k --params_file=space.hyper  (--help: more)\n\n"
        "examples:\n"
        "  recbole-dnr --model=PRM --dataset=ml-100k\n"
        "  recbole-dnr --model=DNR_PRM --dataset=ml-1m --noise=beta\n"
        "  recbole-dnr --config_files=DNR-heuristic-G-shuffled --dataset=ml-100k\n\n"
        f"docs: {DOCS}"
    )
    parser = argparse.ArgumentParser(
        prog="recbole-dnr", epilog=epilog,
        description="Train and evaluate one model of the two-stage pipeline (retriever -> reranker).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default=None, help="model name, e.g. PRM, DNR_PRM, Retriever")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name, e.g. ml-100k (bundled), ml-1m")
    parser.add_argument("--config_files", type=str, default=None,
                        help="space-separated yaml paths or shipped variant names (e.g. DNR-B)")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (docs/distributed.md)")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    parser.add_argument("--ip", type=str, default="localhost", help="address of the machine running rank 0")
    parser.add_argument("--port", type=str, default="5678", help="free TCP port on the rank-0 machine")
    parser.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first process")
    parser.add_argument("--resume", nargs="?", const="True", default=None, metavar="True|False",
                        help="continue this run from its last evaluated epoch if it was interrupted")
    parser.add_argument("--version", action="version", version=f"recbole-dnr {VERSION}")
    return parser


def main(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``), run, print the error message of a usage mistake."""
    import yaml

    from recbole_dnr.errors import UserInputError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("recommend", "serve", "export"):
        from recbole_dnr.serve.cli import run_subcommand

        return run_subcommand(argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not a.startswith("--") or "=" not in a]
    if bad:
        parser.error(f"unrecognised argument(s) {bad}: config keys are given as --key=value")
    files = args.config_files.split() if args.config_files else None
    from recbole_dnr.quick_start import run

    try:  # the launcher's own options stay out of the config: the rest are its --key=value overrides
        result = run(model=args.model, dataset=args.dataset, config_file_list=files, nproc=args.nproc,
            config_dict=None if args.resume is None else {"resume": yaml.safe_load(args.resume)},
            world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset, argv=rest)
    except UserInputError as err:  # a usage mistake: the message is the fix; bugs keep their traceback
        raise SystemExit(f"error: {err}")
    if result and result.model_file:
        print(f"model saved: {result.model_file}\n"
              f"recommend with it: recbole-dnr recommend --model_file={result.model_file} --users=<id>,<id> --k=6")


if __name__ == "__main__":
    main()
