"""Deprecated: ``python -m recbole_dnr.hyper.report --config G.yaml`` runs
``python -m recbole_dnr.benchmark --config G.yaml --report`` (the searches' block, then the seeds
stage's report: :mod:`recbole_dnr.benchmark.search_report`)."""

import sys


def main(argv=None):
    from recbole_dnr.benchmark.__main__ import main as benchmark_main

    argv = [*(sys.argv[1:] if argv is None else argv), "--report"]
    print("python -m recbole_dnr.hyper.report is deprecated: it runs python -m recbole_dnr.benchmark "
          + " ".join(argv), file=sys.stderr, flush=True)
    return benchmark_main(argv)


if __name__ == "__main__":
    sys.exit(main())
