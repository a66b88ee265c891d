"""The searches of a tuning grid, for readers: each contender's best config, what the search cost,
and how much each DNR knob mattered (rank correlation with valid score, and a plot).

    python -m recbole_dnr.benchmark --config experiments/grids/tuned.yaml --report

Writes the block ``<!-- BEGIN <tag>-search -->`` of the ``seeds.report.markdown`` file and
``<img_dir>/<prefix>_sensitivity_<dataset>.png``. The seeds stage's grid reports tuned against
default on test (:mod:`.report`); this page is about the searches only, which select on valid.
"""

import itertools
import math
import os
import re

import numpy as np

from recbole_dnr.errors import UserInputError
from recbole_dnr.benchmark import tuning as G
from recbole_dnr.hyper.search import best_row
from recbole_dnr.storage import pyplot, replace_block, save_figure

# DNR's weights and its phase split (docs/method.md); drawn on a log axis where the search is log-uniform
LAMBDAS = ("lambda_c", "lambda_m", "lambda_x", "lambda_adv", "lambda_e")


# up to this many points the p of a rank correlation is exact (every pairing of the ranks: 8! = 40320);
# scipy's t approximation is far off there (4 points in perfect order would get p 0, not 2/24)
EXACT_UP_TO = 8


def spearman(x, y):
    """``(rho, p)``: Spearman's rank correlation (average ranks for ties) and its two-sided p, exact up
    to :data:`EXACT_UP_TO` points; nan when there are fewer than 3 points or either side is constant."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    r = stats.spearmanr(x, y)
    rho = float(r.statistic)
    if len(x) > EXACT_UP_TO:
        return rho, float(r.pvalue)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rx, pairings = rx - rx.mean(), np.array(list(itertools.permutations(ry - ry.mean())))  # [n!, n]
    rhos = pairings @ rx / (np.linalg.norm(rx) * np.linalg.norm(pairings[0]))
    return rho, float(np.mean(np.abs(rhos) >= abs(rho) - 1e-9))


def searches(grid):
    """``{dataset: {contender: [TrialRow]}}`` of every search with at least one trial."""
    out = {}
    for dataset, name in G.cells(grid):
        rows = G.read_trials(os.path.join(G.folder(grid, dataset, name), "trials.jsonl"))
        if rows:
            out.setdefault(dataset, {})[name] = rows
    return out


def _value(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _origin(note):
    """Where a best trial's config came from, from its note (``best of ml-100k (trial 3); resumed after a
    stop`` -> ``: ml-100k's best``); the rest of a note (a resume) is the trial table's business."""
    m = re.search(r"best of (\S+) \(trial \d+\)", note or "")
    return f": {m[1]}'s best" if m else ""


def configs_markdown(grid, dataset, found):
    """Best config and cost of each search on one dataset."""
    metric = None
    lines = ["| contender | trials (done / pruned) | best valid | best config | search hours |", "|---|---|---|---|---|"]
    total = 0.0
    for name, rows in found.items():
        metric = metric or G.valid_metric(grid, dataset, name)
        best = best_row(rows)
        hours = sum(r.seconds for r in rows) / 3600
        total += hours
        trials = (f"{sum(r.state == 'complete' for r in rows)} / {sum(r.state == 'pruned' for r in rows)} "
                  f"of {G.budget(grid, dataset)}")
        if best is None:
            lines.append(f"| {name} | {trials} | — | — | {hours:.2f} |")
            continue
        config = ", ".join(f"{k} {_value(v)}" for k, v in best.params.items())
        lines.append(f"| {name} | {trials} | {best.best_valid:.4f} (trial {best.number}{_origin(best.note)}) | {config} "
                     f"| {hours:.2f} |")
    head = [f"Valid {(metric or 'ndcg@6').upper()} of the best trial (selection is on valid only); search hours "
            f"are the trials' own training time, {total:.1f} h in all on this dataset.", ""]
    return head + lines + [""]


def sensitivity(found):
    """``{contender: {knob: (values, scores)}}`` over the complete trials of contenders with DNR knobs."""
    out = {}
    for name, rows in found.items():
        done = [r for r in rows if r.state == "complete" and not math.isnan(r.best_valid)]
        knobs = [k for k in LAMBDAS if any(k in r.params for r in done)]
        if knobs:
            out[name] = {k: ([r.params[k] for r in done if k in r.params],
                             [r.best_valid for r in done if k in r.params]) for k in knobs}
    return out


def sensitivity_markdown(found_sens):
    if not found_sens:
        return []
    lines = ["How much each DNR knob mattered: Spearman's ρ between the knob and valid score over each search's "
             "complete trials (pruned trials stopped early and are left out), with its p (exact, over every pairing, "
             "up to 8 trials) and n; the knobs move "
             "together with the rest of the config, so a ρ says where good trials lay, not what a knob does alone.", "",
             "| contender | " + " | ".join(LAMBDAS) + " |", "|---|" + "---|" * len(LAMBDAS)]
    for name, knobs in found_sens.items():
        cells = []
        for k in LAMBDAS:
            if k not in knobs:
                cells.append("—")
                continue
            x, y = knobs[k]
            rho, p = spearman(x, y)
            cells.append(f"{rho:+.2f} (p {p:.2f}, n {len(x)})" if not math.isnan(rho) else f"— (n {len(x)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def plot_sensitivity(dataset, found_sens, path):
    """Valid score against each λ, one panel per λ, one marker per contender (None without matplotlib)."""
    plt = pyplot()
    if plt is None:
        print("[benchmark] matplotlib is not installed: no sensitivity plot (pip install matplotlib)")
        return None
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    knobs = [k for k in LAMBDAS if any(k in s for s in found_sens.values())]
    fig, axes = plt.subplots(1, len(knobs), figsize=(3.4 * len(knobs), 3.8), sharey=True, squeeze=False)
    # a contender keeps its colour and marker in every panel, also where it lacks the knob
    style = {name: (f"C{i}", "osD^v<>"[i % 7]) for i, name in enumerate(found_sens)}
    for ax, knob in zip(axes[0], knobs):
        for name, s in found_sens.items():
            if knob in s:
                color, marker = style[name]
                ax.scatter(*s[knob], color=color, marker=marker, s=28, alpha=0.8, label=name)
        if knob in ("lambda_m", "lambda_x", "lambda_adv"):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(knob)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("valid NDCG@6 (best epoch)")
    handles = [plt.Line2D([], [], color=c, marker=m, linestyle="", label=n) for n, (c, m) in style.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle(f"{dataset}: valid score of each complete trial against DNR's knobs", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)
    plt.close(fig)
    return path


# what the block names as its generator, as every grid's report does
COMMAND = "python -m recbole_dnr.benchmark"


def render(grid, path):
    """Write the search block of the grid at ``path`` (and its plots); returns the files written."""
    command = f"{COMMAND} --config {path} --report"
    report = (grid.get("seeds") or {}).get("report") or {}
    target = report.get("markdown")
    if not target:
        raise UserInputError("the grid has no seeds.report.markdown: name the markdown file the report goes to")
    tag = f"{report.get('tag', 'tuned')}-search"
    img = report.get("img_dir")
    prefix = report.get("prefix", "tuned")
    body, written = [], []
    for dataset, found in searches(grid).items():
        body += [f"### {dataset}: the searches", "", f"Command: `{command}`; trials from "
                 f"`{os.path.join(grid['out'], dataset)}/<contender>/trials.md`.", ""]
        body += configs_markdown(grid, dataset, found)
        sens = sensitivity(found)
        body += sensitivity_markdown(sens)
        if sens and img:
            png = plot_sensitivity(dataset, sens, os.path.join(img, f"{prefix}_sensitivity_{dataset}.png"))
            if png:
                written.append(png)
                rel = os.path.relpath(png, os.path.dirname(os.path.abspath(target)))
                body += [f"![{dataset}: valid NDCG@6 against each DNR knob]({rel})", ""]
    replace_block(target, tag, body or ["No finished trials yet.", ""], COMMAND)
    return [target] + written
