"""``python run_hyper.py`` / ``recbole-dnr-hyper``: hyper-parameter search with RecBole's flags.

    python run_hyper.py --config_files=fixed.yaml --params_file=space.hyper --output_file=out.md \
        --display_file=trials.png

``--config_files`` hold the fixed settings (model and dataset among them, or ``--model``/``--dataset``);
``--params_file`` the search space in RecBole's format; any other ``--key=value`` is a fixed setting too.
"""

import argparse
import os
import sys

import yaml


def build_parser():
    from recbole_dnr.hyper.search import ALGOS, TOOLS

    parser = argparse.ArgumentParser(
        prog="recbole-dnr-hyper", description=__doc__.splitlines()[0],
        epilog="params file, one parameter a line:\n  learning_rate loguniform -8,-4   (exp of a uniform)\n"
               "  hidden_size choice [64,128]\n  dropout_prob uniform 0,0.5\n  lambda_e quniform 0,10,2\n\n"
               "Optuna is the default tool (seeded TPE, median pruning on the valid curve; --storage makes a\n"
               "search resumable); --tool=hyperopt runs RecBole's HyperTuning. docs/tuning.md has more.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_files", type=str, default=None, help="space-separated fixed config yamls")
    parser.add_argument("--params_file", type=str, required=True, help="search space (RecBole's params format)")
    parser.add_argument("--output_file", type=str, default="hyper_result.md", help="the trial table (markdown)")
    parser.add_argument("--best_config_file", type=str, default=None,
                        help="the best trial's config as yaml (default: <output_file stem>.best.yaml)")
    parser.add_argument("--display_file", type=str, default=None,
                        help="a PNG of each trial's best valid score and the best so far (needs matplotlib)")
    parser.add_argument("--tool", type=str, default="optuna",
                        help=f"{' or '.join(TOOLS)} (default {TOOLS[0]}; any case, as RecBole spells them)")
    parser.add_argument("--algo", type=str, default=None,
                        help="; ".join(f"{t}: {', '.join(a)}" for t, a in ALGOS.items()) + " (first = default)")
    parser.add_argument("--max_evals", type=int, default=20, help="trials (grid/exhaustive: at most the grid)")
    parser.add_argument("--seed", type=int, default=2020, help="the sampler's seed (the runs take the config's seed)")
    parser.add_argument("--storage", type=str, default=None,
                        help="optuna storage URL, e.g. sqlite:///saved/hyper.db: a killed search continues")
    parser.add_argument("--study_name", type=str, default="recbole_dnr", help="optuna study name in --storage")
    parser.add_argument("--no_prune", action="store_true", help="optuna: train every trial to its early stop")
    parser.add_argument("--model", "-m", type=str, default=None, help="fixed model (else from the config files)")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="fixed dataset (else from the config files)")
    return parser


def run(argv=None):
    """The search ``argv`` asks for, written to ``--output_file`` and ``--best_config_file``; returns
    ``(rows, best)`` (:func:`recbole_dnr.hyper.search.search`)."""
    from recbole_dnr.errors import UserInputError
    from recbole_dnr.hyper.plot import plot_trials, pyplot
    from recbole_dnr.hyper.search import ALGOS, check_tool, search
    from recbole_dnr.hyper.tables import default_best_file, write_results
    from recbole_dnr.storage import check_writable

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    fixed = {}
    for arg in rest:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognised argument {arg!r}: fixed config keys are given as --key=value")
        key, value = arg[2:].split("=", 1)
        fixed[key] = yaml.safe_load(value)
    fixed.update({k: v for k, v in (("model", args.model), ("dataset", args.dataset)) if v})

    def on_trial(row):
        print(f"trial {row.number}: {row.state} valid {row.best_valid:.4f} test {row.test:.4f} "
              f"epochs {row.epochs} {row.seconds:.0f} s {row.params}", flush=True)

    config_files = args.config_files.split() if args.config_files else None
    best_file = args.best_config_file or default_best_file(args.output_file)
    try:
        tool = check_tool(args.tool)
        if args.display_file:
            if not args.display_file.lower().endswith(".png"):
                raise UserInputError(f"--display_file={args.display_file}: the plot is a PNG; name a .png file")
            pyplot()
        for path in (args.output_file, args.best_config_file, args.display_file):  # before any trial trains
            if path:
                check_writable(os.path.dirname(os.path.abspath(path)), what="output folder",
                               fix="give --output_file / --best_config_file / --display_file in a folder you "
                                   "can write")
        rows, best, valid_metric, bigger, epoch_cap = search(
            args.params_file, config_files, fixed, tool=tool, algo=args.algo, max_evals=args.max_evals,
            seed=args.seed, storage=args.storage, study_name=args.study_name, prune=not args.no_prune,
            on_trial=on_trial)
        write_results(rows, best, valid_metric, config_files, fixed, args.output_file, best_file,
                      command=dict(tool=tool, algo=args.algo or ALGOS[tool][0], max_evals=args.max_evals,
                                   seed=args.seed, params_file=args.params_file), epoch_cap=epoch_cap)
        if args.display_file:
            plot_trials(rows, valid_metric, args.display_file, best, bigger)
    except UserInputError as err:
        raise SystemExit(f"error: {err}")
    with open(args.output_file, encoding="utf-8") as f:
        print(f.read())
    if args.display_file:
        print(f"trial plot: {args.display_file}")
    return rows, best


def main(argv=None):
    """The command: exit status 0 when a trial completed, 1 when none did (or on a usage error)."""
    _, best = run(argv)
    if best is None:
        print("error: no trial completed (the table above says why)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
