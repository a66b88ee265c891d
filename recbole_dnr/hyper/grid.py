"""Moved: tuning grids run with ``python -m recbole_dnr.benchmark --config G.yaml`` (a tuning grid is a
benchmark grid with a search stage, :mod:`recbole_dnr.benchmark.tuning`). This module only says so, so
that the search layer never imports the benchmark above it."""

import sys

MOVED = "python -m recbole_dnr.hyper.{name} has moved: run python -m recbole_dnr.benchmark {args}"


def main(argv=None, name="grid", extra=()):
    argv = [*(sys.argv[1:] if argv is None else argv), *extra]
    print(MOVED.format(name=name, args=" ".join(argv)), file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
