"""Deprecated: ``python -m recbole_dnr.hyper.grid --config G.yaml`` runs
``python -m recbole_dnr.benchmark --config G.yaml`` (a tuning grid is a benchmark grid with a search
stage: :mod:`recbole_dnr.benchmark.tuning`). Its options are the benchmark's; ``--dry_run``,
``--seeds`` and ``--only 'dataset=a;contender=b'`` read as before."""

import sys


def main(argv=None):
    from recbole_dnr.benchmark.__main__ import main as benchmark_main

    argv = list(sys.argv[1:] if argv is None else argv)
    print("python -m recbole_dnr.hyper.grid is deprecated: it runs python -m recbole_dnr.benchmark "
          + " ".join(argv), file=sys.stderr, flush=True)
    return benchmark_main(argv)


if __name__ == "__main__":
    sys.exit(main())
