"""Moved: a tuning grid's report renders with ``python -m recbole_dnr.benchmark --config G.yaml
--report`` (:mod:`recbole_dnr.benchmark.search_report`); this module only says so."""

import sys

from recbole_dnr.hyper.grid import main as moved

if __name__ == "__main__":
    sys.exit(moved(name="report", extra=["--report"]))
