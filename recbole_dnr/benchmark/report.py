"""Benchmark report of a grid: ``results.csv`` (:mod:`.results`), the markdown tables
(:mod:`.tables`) and the PNG plots (:mod:`.plots`); of a tuning grid's searches, their configs, cost
and sensitivity (:mod:`.search_report`)."""

import os
from collections import defaultdict

from recbole_dnr.benchmark import search_report
from recbole_dnr.benchmark.paper import render_paper
from recbole_dnr.benchmark.plots import render_plots
from recbole_dnr.benchmark.results import load_cells
from recbole_dnr.benchmark.tables import render_markdown, strata_of


def render(spec):
    runs_by_dataset = defaultdict(list)
    for r in load_cells(spec):
        runs_by_dataset[r["dataset"]].append(r)
    if spec.report.get("paper_table"):  # the DNR paper's main table instead of the grid's own tables
        csv = [os.path.join(spec.out, "results.csv")] if runs_by_dataset else []
        return csv + render_paper(spec, runs_by_dataset)
    if not runs_by_dataset:  # clear a stale block (e.g. after discarding cells)
        md = render_markdown(spec, {})
        return [md] if md else []
    written = [os.path.join(spec.out, "results.csv")]
    found = strata_of(spec, runs_by_dataset)
    md = render_markdown(spec, runs_by_dataset, found)
    if md:
        written.append(md)
    return written + render_plots(spec, runs_by_dataset, found)


def render_searches(grid, path):
    """The search block of the tuning grid at ``path`` (the seeds stage renders as any grid)."""
    return search_report.render(grid, path)
