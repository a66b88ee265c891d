"""A grid's finished cells: loading them, ``results.csv`` (one row per dataset/variant/seed/split),
per-request metric arrays (what the paired tests read), and a cell's costs."""

import csv
import os
from collections import defaultdict

import numpy as np

from recbole_dnr.trainer.list_trainer import selected_epoch

METRICS = ["h@6", "ndcg@6", "map@6", "f1@6", "auc"]
COST = ["epochs_run", "best_epoch", "hit_epoch_cap", "train_sec_per_epoch", "fit_sec", "infer_us_per_list",
        "peak_rss_mb", "train_peak_rss_mb", "parameters"]


def by_variant(runs):
    """``{variant: [records]}``, variants in the order they first appear (the grid's order)."""
    rows = defaultdict(list)
    for r in runs:
        rows[r["variant"]].append(r)
    return dict(rows)


def load_cells(spec):
    """Finished cells of the grid, in grid order: list of records (with ``npz`` path). Stale cells (run
    with other settings than the grid now gives them) are left out: they are not this grid's results.
    Drifted cells (another run key than their settings give now) are kept with ``drifted: True``."""
    out = []
    for cell in spec.cells:
        if os.path.isfile(spec.cell_path(cell)):
            rec = spec.record(cell)
            if not spec.is_current(cell, rec):
                continue
            rec["variant"] = cell.variant
            rec["drifted"] = spec.is_drifted(cell, rec)
            rec["npz"] = spec.cell_path(cell, "npz")
            if rec.get("valid_curve"):  # cells written before selected_epoch took the first of tied epochs
                rec["best_epoch"] = selected_epoch(rec["valid_curve"])
            test = rec.get("test") or {}
            independent = rec.get("model") != "CoRR" and "retriever_recall@50" in test
            if independent and "retriever_auc" not in test and "test_retriever_auc" in (rec.get("list_stats") or {}):
                # cells written before 2026-12-03 17:00: their retriever is the stored lists' (the same value)
                rec["test"]["retriever_auc"] = rec["list_stats"]["test_retriever_auc"]
            out.append(rec)
    return out


def metrics_of(spec):
    """Metric columns: ``report: metrics:`` of the grid file, else METRICS."""
    return list(spec.report.get("metrics") or METRICS)


def write_results_csv(spec):
    metrics = metrics_of(spec)
    rows = []
    for r in load_cells(spec):
        splits = [("valid", r["valid"]), ("test", r["test"])] + [("test_slate", r["slate_scope"]["test"])
                                                                 for _ in [0] if r["slate_scope"].get("test")]
        for split, values in splits:
            rows.append({"dataset": r["dataset"], "variant": r["variant"], "model": r["model"], "seed": r["seed"],
                         "split": split, **{m: values.get(m, "") for m in metrics},
                         **{c: r.get(c, "") for c in COST}})
    os.makedirs(spec.out, exist_ok=True)
    path = os.path.join(spec.out, "results.csv")
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["dataset", "variant", "model", "seed", "split"] + metrics + COST)
        w.writeheader()
        w.writerows(rows)
    os.replace(path + ".tmp", path)
    return path


def per_request(rec, metric):
    with np.load(rec["npz"]) as z:
        return dict(zip(z["request_id"].tolist(), z[metric].tolist()))


def per_request_by_seed(a_runs, b_runs, metric):
    """The seeds both variants have, and each one's ``{request id: metric}`` per seed (a, b)."""
    seeds = sorted({r["seed"] for r in a_runs} & {r["seed"] for r in b_runs})
    a = [per_request(next(r for r in a_runs if r["seed"] == s), metric) for s in seeds]
    b = [per_request(next(r for r in b_runs if r["seed"] == s), metric) for s in seeds]
    return seeds, a, b


def fit_cost(rec):
    """Training seconds of a cell. A cell resumed from a state written before 2026-11-24 (which kept no
    timing) timed only the epochs after its resume: scaled to all its epochs at their rate."""
    timed = len(rec.get("epoch_times") or [])
    if rec.get("resumed_after_epoch") is not None and 0 < timed < rec.get("epochs_run", 0):
        return rec["fit_sec"] * rec["epochs_run"] / timed
    return rec["fit_sec"]


def peak_cell(runs):
    """``max process peak (max training peak)`` over a row's seeds, MB."""
    text = f"{max(r['peak_rss_mb'] for r in runs):.0f}"
    train = [r["train_peak_rss_mb"] for r in runs if r.get("train_peak_rss_mb")]
    return text + (f" ({max(train):.0f})" if train else "")
