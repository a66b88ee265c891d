"""The DNR paper's main table on our protocol (``report: paper_table: true``): per dataset every row's
test metrics (mean ± std over seeds), paired tests of each DNR row against the best baseline, the
paper's figure beside ours with both rank orders and Kendall's tau-b, what selecting the epoch on test
would add (:mod:`.selection_bias`), and one plot of test NDCG@6 per row with the paper's figure."""

import os

import numpy as np

from recbole_dnr import machine, storage
from recbole_dnr.benchmark.results import METRICS, by_variant as group_by_variant
from recbole_dnr.benchmark.selection_bias import kendall_tau_b, margins, reading
from recbole_dnr.benchmark.stats import paired
from recbole_dnr.benchmark.tables import fmt, image_link, pair_cells, signed

RANKED = "ndcg@6"  # the metric rows are ranked, compared with the paper and plotted on


def is_dnr(runs):
    """A row is DNR when its cells trained a ``DNR_<X>`` model (whatever the variant is called)."""
    return str(runs[0].get("model", "")).startswith("DNR_")


def test_means(by_variant, metric=RANKED):
    return {v: float(np.mean([r["test"][metric] for r in rs])) for v, rs in by_variant.items()
            if all(metric in r.get("test", {}) for r in rs)}


def best_baseline(by_variant, metric=RANKED):
    """The non-DNR row with the highest mean test ``metric``, or None."""
    means = {v: m for v, m in test_means(by_variant, metric).items() if not is_dnr(by_variant[v])}
    return max(means, key=means.get) if means else None


def rank_order(scores):
    """Names by score, highest first (ties in name order, so the order is reproducible)."""
    return sorted(scores, key=lambda v: (-scores[v], v))


def paper_comparison(ours, paper):
    """Both rank orders over the rows both have, and Kendall's tau-b between them.

    ours, paper: ``{row: score}``. Returns ``(our order, paper order, tau-b)``; tau is NaN below two rows."""
    common = [v for v in ours if v in paper]
    tau = kendall_tau_b([ours[v] for v in common], [paper[v] for v in common]) if len(common) > 1 else float("nan")
    return rank_order({v: ours[v] for v in common}), rank_order({v: paper[v] for v in common}), tau


def paper_text(figures):
    return ", ".join(f"{m.upper()} {v}" for m, v in figures.items())


def dataset_section(spec, dataset, runs):
    """Markdown lines of one dataset's paper table."""
    by_variant = group_by_variant(runs)
    paper = (spec.paper or {}).get(dataset) or {}
    m0 = runs[0].get("machine") or {}
    known = machine.cpu_text(m0)
    lines = [f"### {dataset}", "",
             f"Command: `python -m recbole_dnr.benchmark --config {spec.path}`; machine: {m0.get('platform', '?')}, "
             f"{m0.get('cpu_count', '?')} CPUs{f' ({known})' if known else ''}, torch {m0.get('torch', '?')}. "
             "Test metrics at the epoch of the best valid NDCG@6 (mean ± std over seeds).", ""]
    paper_col = " | paper (%) |" if paper else " |"
    head = "| row | seeds | " + " | ".join(m.upper() for m in METRICS) + paper_col
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for v, rs in by_variant.items():
        cells = [fmt([r.get("test", {}).get(m, np.nan) for r in rs]) for m in METRICS]
        lines.append(f"| {v} | {len(rs)} | " + " | ".join(cells) + (f" | {paper_text(paper.get(v, {}))} |" if paper else " |"))
    lines.append("")
    base = best_baseline(by_variant)
    dnr = [v for v, rs in by_variant.items() if is_dnr(rs)]
    if base and dnr:
        lines += [f"**Paired tests, DNR row − the best baseline** ({base}, the non-DNR row of highest mean test "
                  "NDCG@6; test NDCG@6)", "",
                  "| pair | Δ over requests | t p | Wilcoxon p | Δ per seed | t p (seeds; — for one seed) |",
                  "|---|---|---|---|---|---|"]
        for v in dnr:
            p = paired(by_variant[v], by_variant[base])
            if p:
                lines.append(f"| {v} − {base} | {pair_cells(p)} |")
        lines.append("")
    figures = {v: f[RANKED] for v, f in paper.items() if RANKED in f and v in by_variant}
    if figures:
        ours, theirs, tau = paper_comparison(test_means(by_variant), figures)
        lines += [f"**Rank order, test NDCG@6**, over the {len(ours)} rows the paper reports "
                  f"({spec.report.get('paper_note', 'the DNR paper, its own protocol')}):", "",
                  f"- ours: {' > '.join(ours)}", f"- paper: {' > '.join(theirs)}",
                  f"- Kendall's tau-b: {tau:.3f}" if not np.isnan(tau) else "- Kendall's tau-b: — (fewer than two rows)",
                  "", "The paper's protocol differs (split, candidate lists, metric scope, model selection): "
                  "its values do not compare with ours, only the order of the rows.", ""]
    lines += selection_section(by_variant, dnr)
    return lines


def selection_section(by_variant, dnr):
    """What the co-authors' rule (per metric, the best epoch on test) reports against ours."""
    readings = {v: reading(rs, METRICS) for v, rs in by_variant.items()}
    readings = {v: rd for v, rd in readings.items() if rd}
    if not readings:
        return []
    lines = ["**Selecting the epoch on test** (rows whose cells recorded a test curve): ours = test at the "
             "valid-selected epoch; theirs = for each metric its best epoch on test (the DNR group's evaluation "
             "code); cells = seeds with a curve. Inflation = theirs − ours (mean ± std over those seeds).", "",
             "| row | cells | " + " | ".join(f"{m.upper()} ours → theirs (inflation)" for m in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for v, rd in readings.items():
        cells = [f"{np.mean(rd[m]['ours']):.4f} → {np.mean(rd[m]['theirs']):.4f} ({fmt(rd[m]['inflation'])})"
                 for m in METRICS]
        lines.append(f"| {v} | {len(rd[METRICS[0]]['ours'])} | " + " | ".join(cells) + " |")
    rows = []
    for m in METRICS:
        for v, e in margins(readings, [v for v in dnr if v in readings], m).items():
            rows.append(f"| {v} | {m.upper()} | {signed(e['ours'][0])} ({e['ours'][1]}) | "
                        f"{signed(e['theirs'][0])} ({e['theirs'][1]}) | {signed(e['change'])} |")
    if rows:
        lines += ["", "**DNR − best baseline under each rule** (means over the cells with a curve; each rule picks "
                  "its own best baseline, in brackets)", "",
                  "| DNR row | metric | ours | theirs | change |", "|---|---|---|---|---|"] + rows
    return lines + [""]


def plot_dataset(plt, spec, dataset, by_variant, path):
    """Test NDCG@6 per row (mean ± std over seeds, each seed a dot; DNR rows orange) and the paper's
    figure as a marker on a top axis of its own scale (its protocol's values are far from ours)."""
    names = list(by_variant)
    vals = [[r["test"][RANKED] for r in by_variant[v]] for v in names]
    mean = [float(np.mean(v)) for v in vals]
    err = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in vals]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.8))
    ys = np.arange(len(names))
    for y, n, v, m, e in zip(ys, names, vals, mean, err):
        color = "tab:orange" if is_dnr(by_variant[n]) else "tab:blue"  # as in the zoo's plots
        ax.errorbar([m], [y], xerr=[e], fmt="o", color=color, capsize=3)
        ax.scatter(v, [y] * len(v), s=8, color=color, alpha=0.4)
    ax.set_yticks(ys, [f"{n} ({len(v)})" for n, v in zip(names, vals)])
    ax.invert_yaxis()
    ax.set_xlabel("our test NDCG@6 (mean ± std over seeds, dots: seeds; seeds in brackets)")
    figures = {n: f[RANKED] / 100.0 for n, f in ((spec.paper or {}).get(dataset) or {}).items()
               if RANKED in f and n in by_variant}
    if figures:
        top = ax.twiny()
        top.set_ylim(ax.get_ylim())
        top.scatter(list(figures.values()), [names.index(n) for n in figures], marker="D", color="tab:red",
                    label="paper (its protocol; top axis)")
        top.set_xlabel("the paper's NDCG@6 (an axis as wide as ours: equal gaps look equal)", color="tab:red")
        lo, hi = min(figures.values()), max(figures.values())
        left, right = ax.get_xlim()
        width = max(right - left, 1.2 * (hi - lo))
        top.set_xlim((lo + hi - width) / 2, (lo + hi + width) / 2)
        top.legend(loc="best", fontsize=7)
    ax.set_title(f"{dataset}: test NDCG@6 per row", fontsize=10)
    fig.tight_layout()
    storage.save_figure(fig, path)
    plt.close(fig)
    return path


def render_paper(spec, runs_by_dataset):
    """Write the markdown block (``report: markdown``/``tag``) and the plots; returns the paths written."""
    written = []
    target = spec.report.get("markdown")
    sections = {ds: dataset_section(spec, ds, runs) for ds, runs in runs_by_dataset.items()}
    if target:
        body = [] if runs_by_dataset else ["No finished cells yet.", ""]
        for ds, lines in sections.items():
            body += lines + image_link(spec, target, f"{ds}.png", f"{ds}: test NDCG@6 per row, the paper's beside")
        written.append(storage.replace_block(target, spec.report.get("tag", "paper"), body,
                                             "python -m recbole_dnr.benchmark"))
    img = spec.report.get("img_dir")
    if img and runs_by_dataset:
        plt = storage.pyplot()
        if plt is None:
            print("[benchmark] matplotlib is not installed: no plots (pip install matplotlib)")
            return written
        os.makedirs(img, exist_ok=True)
        for ds, runs in runs_by_dataset.items():
            path = os.path.join(img, f"{spec.report.get('prefix', 'paper')}_{ds}.png")
            written.append(plot_dataset(plt, spec, ds, group_by_variant(runs), path))
    return written
