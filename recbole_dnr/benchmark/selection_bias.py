"""What selecting the epoch on test adds: our rule against the DNR group's (benchmark/paper.py).

Our rule keeps one checkpoint, the epoch of the best valid NDCG@6, and reports every test metric there.
The co-authors' evaluation code (GoalRank's stage-2 trainer) keeps, for each metric separately, its
maximum over epochs on the test loader. Given a cell's ``test_curve`` (one dict of test metrics per
evaluation), both readings follow; their difference is the inflation of the test-selected figure.
"""

import numpy as np


def at_valid_epoch(record, metric):
    """Test ``metric`` at the valid-selected evaluation (``best_epoch``, 1-based) of a cell."""
    return float(record["test_curve"][record["best_epoch"] - 1][metric])


def best_on_test(record, metric):
    """Max over evaluations of test ``metric`` (the co-authors' rule, one metric at a time)."""
    return float(max(entry[metric] for entry in record["test_curve"]))


def reading(runs, metrics):
    """``{metric: {"ours": [...], "theirs": [...], "inflation": [...]}}`` over a row's cells that have a
    test curve (one value per seed, in ``runs`` order); ``{}`` when none has."""
    curved = [r for r in runs if r.get("test_curve") and r.get("best_epoch")]
    if not curved:
        return {}
    out = {}
    for m in metrics:
        ours = [at_valid_epoch(r, m) for r in curved]
        theirs = [best_on_test(r, m) for r in curved]
        out[m] = {"ours": ours, "theirs": theirs, "inflation": [t - o for o, t in zip(ours, theirs)]}
    return out


def margins(readings, dnr_rows, metric):
    """DNR − best baseline under both rules, for one metric.

    readings: ``{row: reading(...)}``; dnr_rows: the rows that are DNR (the rest are baselines).
    Returns ``{dnr row: {"ours": (margin, best baseline), "theirs": (margin, best baseline),
    "change": theirs − ours}}``, each rule choosing its own best baseline by the mean over seeds;
    empty when no baseline or no DNR row has a test curve."""
    means = {rule: {row: float(np.mean(rd[metric][rule])) for row, rd in readings.items() if metric in rd}
             for rule in ("ours", "theirs")}
    baselines = [row for row in means["ours"] if row not in dnr_rows]
    if not baselines:
        return {}
    out = {}
    for row in dnr_rows:
        if row not in means["ours"]:
            continue
        entry = {}
        for rule, mean in means.items():
            best = max(baselines, key=lambda b: mean[b])
            entry[rule] = (mean[row] - mean[best], best)
        entry["change"] = entry["theirs"][0] - entry["ours"][0]
        out[row] = entry
    return out


def kendall_tau_b(a, b):
    """Kendall's tau-b between two score lists over the same items (ties in either are allowed):
    (concordant − discordant) / sqrt((n0 − ties in a)(n0 − ties in b)), n0 = n(n − 1)/2 pairs;
    NaN when either list is constant or has fewer than two items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"kendall_tau_b: lists of {len(a)} and {len(b)} items")
    i, j = np.triu_indices(len(a), k=1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n0 = len(i)
    tied_a, tied_b = int((da == 0).sum()), int((db == 0).sum())
    denom = np.sqrt(float(n0 - tied_a) * float(n0 - tied_b))
    if denom == 0:
        return float("nan")
    return float((da * db).sum() / denom)
