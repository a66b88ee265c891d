"""Benchmark report: markdown tables (mean ± std over seeds, best in bold, paired tests of every
DNR_X against X, the paper's figure beside ours) rendered into a marked block of a markdown file,
and PNG plots (matplotlib, headless). Cells: :mod:`.results`; tests: :mod:`.stats`."""

import os
from collections import defaultdict

import numpy as np

from recbole_dnr import storage
from recbole_dnr.benchmark import strata
from recbole_dnr.benchmark.results import COST, METRICS, fit_cost, load_cells, metrics_of, peak_cell, write_results_csv  # noqa: F401
from recbole_dnr.benchmark.stats import paired


def fmt(values, bold=False):
    """``mean ± std`` over the seeds that have the value; ``(k of n seeds)`` when some lack it (a metric
    recorded only by cells written after it was added), ``—`` when none has it."""
    values = np.asarray(values, dtype=float)
    have = values[~np.isnan(values)]
    if not len(have):
        return "—"
    text = f"{have[0]:.4f}" if len(have) == 1 else f"{have.mean():.4f} ± {have.std(ddof=1):.4f}"
    if len(have) < len(values):
        text += f" ({len(have)} of {len(values)} seeds)"
    return f"**{text}**" if bold else text


def backbone_variant(variant, by_variant):
    """X for a variant DNR_X (same name without the prefix), if the grid has it."""
    return variant[len("DNR_"):] if variant.startswith("DNR_") and variant[len("DNR_"):] in by_variant else None


def dataset_markdown(spec, dataset, runs):
    metrics = metrics_of(spec)
    by_variant = defaultdict(list)
    for r in runs:
        by_variant[r["variant"]].append(r)
    paper = (spec.paper or {}).get(dataset, {})
    m0 = runs[0]["machine"]
    lines = [f"### {dataset}", "",
             f"Command: `python -m recbole_dnr.benchmark --config {spec.path}`; seeds per row as listed; "
             f"machine: {m0['platform']}, {m0['cpu_count']} CPUs, torch {m0['torch']} ({m0['torch_threads']} threads). "
             "Test metrics at the best valid epoch (early stopping on valid NDCG@6).", ""]
    # valid beside test: whether model selection (on valid) would pick the row test ranks first, and how
    # far a gap moves between the splits (x's quality differs between them, docs/protocol.md)
    columns = [("test", m) for m in metrics] + [("valid", "ndcg@6")]
    values = {v: {c: [r.get(c[0], {}).get(c[1], np.nan) for r in rs] for c in columns} for v, rs in by_variant.items()}
    means = {v: {c: np.nanmean(x) if not np.isnan(x).all() else np.nan for c, x in cols.items()}
             for v, cols in values.items()}
    best = {c: max(means, key=lambda v: -np.inf if np.isnan(means[v][c]) else means[v][c]) for c in columns}
    head = "| variant | seeds | " + " | ".join(m.upper() for m in metrics) + " | valid NDCG@6 | paper NDCG@6 | " \
           "epochs best/run | train s/epoch | infer µs/list | peak MB (training) |"
    lines += ["**test**, and valid NDCG@6 at the selected epoch (mean ± std over seeds; best in bold)", "", head, "|" + "---|" * (head.count("|") - 1)]
    for v, rs in by_variant.items():
        cells = [fmt(values[v][c], bold=best[c] == v) for c in columns]
        epochs = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}{'*' if r['hit_epoch_cap'] else ''}" for r in rs)
        lines.append(f"| {v} | {len(rs)} | " + " | ".join(cells) +
                     f" | {paper.get(v, '')} | {epochs} | {np.mean([r['train_sec_per_epoch'] for r in rs]):.1f} | "
                     f"{np.mean([r['infer_us_per_list'] for r in rs]):.1f} | {peak_cell(rs)} |")
    lines += ["", "`*` = stopped by the epoch cap, not by early stopping. Peak MB: the cell process's peak resident "
              "memory, building or loading the lists included; in brackets its peak while training and evaluating "
              "(the lists already in memory), recorded by cells written from 2026-11-24 on.", ""]
    pairs = [(v, backbone_variant(v, by_variant)) for v in by_variant if backbone_variant(v, by_variant)]
    pairs += [(a, b) for a, b in spec.report.get("pairs", []) if a in by_variant and b in by_variant]
    if pairs:
        lines += ["**Paired tests, A − B** (test NDCG@6; DNR_X against X, and the pairs the grid file lists)", "",
                  "| pair | Δ over requests | t p | Wilcoxon p | Δ per seed | t p (seeds; — for one seed) |", "|---|---|---|---|---|---|"]
        for v, b in pairs:
            p = paired(by_variant[v], by_variant[b])
            if p:
                seed_p = "—" if np.isnan(p["t_seed"]) else f"{p['t_seed']:.3g}"
                lines.append(f"| {v} − {b} | {p['delta']:+.4f} (n={p['n']}) | {p['t_req']:.3g} | {p['w_req']:.3g} | "
                             f"{', '.join(f'{d:+.4f}' for d in p['seed_deltas'])} | {seed_p} |")
        lines.append("")
    if paper:
        lines += [f"Paper figures ({spec.report.get('paper_note', 'DNR paper, its own protocol')}) are on a "
                  "different protocol (their split, candidate lists, metric scope and model selection), so only "
                  "the order of the rows is comparable, not the values.", ""]
    return lines


def probe_markdown(runs):
    """Robustness probe table (issue 8): test NDCG@6 of each trained model with its test x corrupted
    (x + σ·N(0,1), re-normalised per list) or taken from a weaker retriever, and the drop from σ = 0."""
    by_variant = defaultdict(list)
    for r in runs:
        if r.get("score_corruption"):
            by_variant[r["variant"]].append(r)
    if not by_variant:
        return []
    sigmas = sorted({s for rs in by_variant.values() for r in rs for s in r["score_corruption"] if s != "weak_retriever"},
                    key=float)
    weak = any("weak_retriever" in r["score_corruption"] for rs in by_variant.values() for r in rs)
    head = "| variant | seeds | " + " | ".join(f"σ={s}" for s in sigmas) + \
           (f" | Δ σ={sigmas[-1]}" if len(sigmas) > 1 else "") + (" | weak retriever | Δ weak" if weak else "") + " |"
    lines = ["**Robustness probe** (test NDCG@6 of each trained model when its test x is x + σ·N(0,1) re-normalised "
             "per list, or the scores of a weaker retriever on the same candidates; Δ = drop from σ = 0, "
             "mean ± std over seeds; the noise is the same for every model)", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for v, rs in by_variant.items():
        def at(key):
            return [r["score_corruption"][key]["ndcg@6"] for r in rs if key in r["score_corruption"]]
        cells = [fmt(at(s)) if at(s) else "" for s in sigmas]
        base = {r["seed"]: r["score_corruption"][sigmas[0]]["ndcg@6"] for r in rs if sigmas[0] in r["score_corruption"]}
        if len(sigmas) > 1:
            d = [r["score_corruption"][sigmas[-1]]["ndcg@6"] - base[r["seed"]] for r in rs
                 if sigmas[-1] in r["score_corruption"] and r["seed"] in base]
            cells.append(signed(d) if d else "")
        if weak:
            d = [r["score_corruption"]["weak_retriever"]["ndcg@6"] - base[r["seed"]] for r in rs
                 if "weak_retriever" in r["score_corruption"] and r["seed"] in base]
            cells += [fmt(at("weak_retriever")) if at("weak_retriever") else "", signed(d) if d else ""]
        lines.append(f"| {v} | {len(rs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def signed(values):
    values = np.asarray(values, dtype=float)
    return f"{values[0]:+.4f}" if len(values) == 1 else f"{values.mean():+.4f} ± {values.std(ddof=1):.4f}"


def table2_markdown(spec, runs_by_dataset):
    """The DNR paper's Table 2, shaped with our rows: ``report: table2: [[row, variant, paper], ...]``."""
    rows = spec.report.get("table2")
    if not rows or not runs_by_dataset:  # no dataset columns to fill yet
        return []
    datasets = list(runs_by_dataset)
    cols = {ds: defaultdict(list) for ds in datasets}
    for ds, runs in runs_by_dataset.items():
        for r in runs:
            cols[ds][r["variant"]].append(r["test"]["ndcg@6"])
    head = "| row | variant | " + " | ".join(datasets) + f" | paper ({spec.report.get('table2_note', 'ML-1M')}) |"
    lines = ["**The DNR paper's Table 2, our rows** (test NDCG@6, mean ± std over seeds, seeds in brackets)", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        label, variant, paper = (list(row) + ["", "", ""])[:3]
        vals = [f"{fmt(cols[ds][variant])} ({len(cols[ds][variant])})" if cols[ds].get(variant) else "—"
                for ds in datasets]
        lines.append(f"| {label} | {variant} | " + " | ".join(vals) + f" | {paper if paper is not None else ''} |")
    return lines + [""]


def image_link(spec, target, name, caption):
    """Markdown lines linking plot ``<img_dir>/<prefix>_<name>`` from ``target`` (none without img_dir)."""
    img = spec.report.get("img_dir")
    if not img:
        return []
    png = os.path.join(img, f"{spec.report.get('prefix', 'benchmark')}_{name}")
    return [f"![{caption}]({os.path.relpath(png, os.path.dirname(os.path.abspath(target)))})", ""]


def has_curves(runs):
    """A dataset is plotted once a trained cell (one with valid NDCG@6 per epoch) has landed: the retriever
    alone makes an empty figure."""
    return any(r.get("valid_curve") for r in runs)


def curve_variants(names, by_variant, wanted=None):
    """Variants whose valid curve is drawn: ``wanted`` (the grid's ``report: curves``) where given,
    else those of the grid's own protocol (no ``@suffix``), so the panel stays readable; a grid made
    only of ``@`` variants draws them all."""
    curved = [n for n in names if by_variant[n][0].get("valid_curve")]
    if wanted is not None:
        return [n for n in curved if n in wanted]
    plain = [n for n in curved if "@" not in n]
    return plain or curved


def curve_ylim(points, margin=0.005):
    """y range of the valid-curve panel: from the 5th percentile of all plotted values, so the first
    epochs of a slow starter (NDCG@6 0.1 while the rest sit at 0.4) do not flatten every other curve."""
    if not points:
        return 0.0, 1.0
    return float(np.percentile(points, 5)) - margin, float(np.max(points)) + margin


def spread_labels(anchors, sizes, gap=3.0):
    """Offsets (dx, dy) in points that keep scatter labels from overlapping. A label sits ``gap`` right
    of and above its point ([x, y] in points, ``sizes`` [w, h]); from the highest point down, one that
    would overlap a label already placed tries the left of its point, then both sides one height
    lower, two heights lower, ... and takes the first free place. The points' markers (``gap`` in
    radius, the default scatter marker) count as taken too, so a label never hides another point."""
    placed = [(x - gap, y - gap, x + gap, y + gap) for x, y in anchors]
    offsets = [(gap, gap)] * len(anchors)
    for i in sorted(range(len(anchors)), key=lambda i: -anchors[i][1]):
        (x, y), (w, h) = anchors[i], sizes[i]
        for dx, dy in [(dx, gap - k * h) for k in range(200) for dx in (gap, -gap - w)]:
            box = (x + dx, y + dy, x + dx + w, y + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        offsets[i] = (dx, dy)
    return offsets


def strata_of(spec, runs_by_dataset):
    """``{dataset: strata.strata_for(...)}``: computed once per render, shared by table and plot."""
    return {ds: strata.strata_for(spec, runs) for ds, runs in runs_by_dataset.items()}


def render_markdown(spec, runs_by_dataset, strata_by_dataset=None):
    if strata_by_dataset is None:
        strata_by_dataset = strata_of(spec, runs_by_dataset)
    target = spec.report.get("markdown")
    if not target:
        return None
    tag = spec.report.get("tag", "benchmark")
    begin, end = f"<!-- BEGIN {tag} (generated by python -m recbole_dnr.benchmark) -->", f"<!-- END {tag} -->"
    body = [begin, ""] + table2_markdown(spec, runs_by_dataset)
    if not runs_by_dataset:
        body += ["No finished cells yet.", ""]
    for ds, runs in runs_by_dataset.items():
        body += dataset_markdown(spec, ds, runs)
        if has_curves(runs):
            body += image_link(spec, target, f"{ds}.png", f"{ds}: test NDCG@6 per model, valid curves, quality vs cost")
        else:
            body += ["Plots follow when the first trained cell lands.", ""]
        probe = probe_markdown(runs)
        body += probe
        if probe:
            body += image_link(spec, target, f"{ds}_probe.png", f"{ds}: test NDCG@6 against the noise on x")
        found = strata_by_dataset[ds]
        body += strata.strata_markdown(ds, found)
        if found:
            body += image_link(spec, target, f"{ds}_strata.png", f"{ds}: differences by the quality of x")
    body.append(end)
    text = open(target).read() if os.path.isfile(target) else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + "\n".join(body) + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    with open(target + ".tmp", "w") as f:
        f.write(text)
    os.replace(target + ".tmp", target)
    return target


def render_plots(spec, runs_by_dataset, strata_by_dataset=None):
    if strata_by_dataset is None:
        strata_by_dataset = strata_of(spec, runs_by_dataset)
    img = spec.report.get("img_dir")
    if not img:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[benchmark] matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    os.makedirs(img, exist_ok=True)
    prefix = spec.report.get("prefix", "benchmark")
    written = []
    for ds, runs in runs_by_dataset.items():
        if not has_curves(runs):
            continue
        by_variant = defaultdict(list)
        for r in runs:
            by_variant[r["variant"]].append(r)
        names = list(by_variant)
        vals = [[r["test"]["ndcg@6"] for r in by_variant[v]] for v in names]
        fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
        ax = axes[0]
        mean = [np.mean(v) for v in vals]
        err = [np.std(v, ddof=1) if len(v) > 1 else np.nan for v in vals]  # one seed: no bar (not a zero-width one)
        floors = [n for n in names if by_variant[n][0].get("model") == "Retriever"]  # rank by x alone
        colors = ["tab:orange" if n.startswith("DNR") else "tab:gray" if n in floors else "tab:blue" for n in names]
        ax.barh(range(len(names)), mean, xerr=err, color=colors, capsize=3)
        ax.set_yticks(range(len(names)), [f"{n} ({len(v)})" for n, v in zip(names, vals)])
        ax.invert_yaxis()
        lo = min(mean) - 0.02
        ax.set_xlim(lo, max(m + np.nan_to_num(e) for m, e in zip(mean, err)) + 0.01)
        ax.set_xlabel("test NDCG@6 (mean ± std over seeds; seeds in brackets)")
        ax.set_title(f"{ds}: test NDCG@6")
        if floors:
            ax.axvline(np.mean([r["test"]["ndcg@6"] for r in by_variant[floors[0]]]), ls="--", c="k", lw=1,
                       label="retriever floor")
            ax.legend(loc="best")  # matplotlib avoids the bars; a fixed corner covered the longest one
        ax = axes[1]
        curved = curve_variants(names, by_variant, spec.report.get("curves"))
        bases = list(dict.fromkeys(n[len("DNR_"):] if n.startswith("DNR_") else n for n in curved))
        palette = plt.get_cmap("tab10" if len(bases) <= 10 else "tab20")
        points = []
        for n in curved:  # DNR_X dashed, in X's colour
            curve = by_variant[n][0]["valid_curve"]
            base = n[len("DNR_"):] if n.startswith("DNR_") else n
            ax.plot(range(1, len(curve) + 1), curve, label=n, ls="--" if n.startswith("DNR") else "-",
                    color=palette(bases.index(base) % palette.N))
            points += curve
        lo, hi = curve_ylim(points)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid NDCG@6")
        hidden = len(names) - len(curved) - sum(not by_variant[n][0].get("valid_curve") for n in names)
        ax.set_title(f"valid NDCG@6 per epoch (seed {runs[0]['seed']})"
                     + (f"; {hidden} variants not drawn" if hidden else ""), fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        ax = axes[2]
        xs = [max(float(np.mean([fit_cost(r) for r in by_variant[n]])), 1.0) for n in names]
        ys = [float(np.mean([r["test"]["ndcg@6"] for r in by_variant[n]])) for n in names]
        ax.scatter(xs, ys, c=colors)
        ax.set_xscale("log")
        if max(xs) < 10 * min(xs):  # a narrower log axis labels its minor ticks, which overlap: show a decade
            mid = float(np.sqrt(min(xs) * max(xs)))
            ax.set_xlim(mid / 10 ** 0.5, mid * 10 ** 0.5)
        ax.set_xlabel("training time to early stop, s (log; shared 2-core machine)")
        ax.set_ylabel("test NDCG@6")
        fig.canvas.draw()  # fixes the limits, so display positions are final
        to_pt = 72.0 / fig.dpi
        anchors = [tuple(p * to_pt) for p in ax.transData.transform(np.column_stack([xs, ys]))]
        size = 7
        offsets = spread_labels(anchors, [(0.55 * size * len(n), 1.2 * size) for n in names])
        for n, x, y, (dx, dy) in zip(names, xs, ys, offsets):
            ax.annotate(n, (x, y), fontsize=size, xytext=(dx, dy), textcoords="offset points",
                        arrowprops=dict(arrowstyle="-", lw=0.4, color="0.6") if abs(dy) > 1.2 * size else None)
        ax.set_title("quality vs training cost")
        fig.tight_layout()
        path = os.path.join(img, f"{prefix}_{ds}.png")
        storage.save_figure(fig, path)
        plt.close(fig)
        written.append(path)
        probe = plot_probe(plt, by_variant, ds, os.path.join(img, f"{prefix}_{ds}_probe.png"))
        if probe:
            written.append(probe)
        found = strata.plot_strata(plt, ds, strata_by_dataset[ds], os.path.join(img, f"{prefix}_{ds}_strata.png"))
        if found:
            written.append(found)
    return written


def plot_probe(plt, by_variant, ds, path):
    """Test NDCG@6 vs σ (mean ± std over seeds), and the weak-retriever point, per variant; one
    panel per variant suffix (``@holdout``...), so each panel stays readable."""
    probed = {v: rs for v, rs in by_variant.items() if any(r.get("score_corruption") for r in rs)}
    if not probed:
        return None
    sigmas = sorted({s for rs in probed.values() for r in rs for s in (r.get("score_corruption") or {})
                     if s != "weak_retriever"}, key=float)
    groups = defaultdict(dict)
    for v, rs in probed.items():
        groups[v.split("@", 1)[1] if "@" in v else ""][v] = rs
    fig, axes = plt.subplots(1, len(groups), figsize=(8 * len(groups), 5.5), sharey=True, squeeze=False)
    palette = plt.get_cmap("tab20")
    xs = [float(s) for s in sigmas]
    weak_x = xs[-1] + (xs[-1] - xs[0]) / max(len(xs) - 1, 1) if xs else 0.0
    for ax, (suffix, members) in zip(axes[0], sorted(groups.items())):
        for i, (v, rs) in enumerate(members.items()):
            vals = [[r["score_corruption"][s]["ndcg@6"] for r in rs if s in (r.get("score_corruption") or {})]
                    for s in sigmas]
            mean = [np.mean(x) if x else np.nan for x in vals]
            err = [np.std(x, ddof=1) if len(x) > 1 else 0 for x in vals]
            style = "--" if v.startswith("DNR") else "-"
            line = ax.errorbar(xs, mean, yerr=err, ls=style, marker="o", ms=4, capsize=2, color=palette(i % 20),
                               label=f"{v} ({len(rs)})")
            weak = [r["score_corruption"]["weak_retriever"]["ndcg@6"] for r in rs
                    if "weak_retriever" in (r.get("score_corruption") or {})]
            if weak:
                ax.errorbar([weak_x], [np.mean(weak)], yerr=[np.std(weak, ddof=1) if len(weak) > 1 else 0],
                            marker="s", ms=5, capsize=2, color=line[0].get_color())
        ax.set_xticks(xs + [weak_x], [f"σ={s}" for s in sigmas] + ["weak\nretriever"])
        ax.set_xlabel("test-time corruption of x (x + σ·N(0,1), re-normalised per list), or x from a weaker retriever",
                      fontsize=8)
        ax.set_title(f"{ds}, {'@' + suffix if suffix else 'lists as the grid builds them'} (DNR dashed; seeds in brackets)",
                     fontsize=10)
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].set_ylabel("test NDCG@6 (mean ± std over seeds)")
    fig.tight_layout()
    storage.save_figure(fig, path)
    plt.close(fig)
    return path


def render(spec):
    runs_by_dataset = defaultdict(list)
    for r in load_cells(spec):
        runs_by_dataset[r["dataset"]].append(r)
    if not runs_by_dataset:  # clear a stale block (e.g. after discarding cells)
        md = render_markdown(spec, {})
        return [md] if md else []
    written = [os.path.join(spec.out, "results.csv")]
    found = strata_of(spec, runs_by_dataset)
    md = render_markdown(spec, runs_by_dataset, found)
    if md:
        written.append(md)
    return written + render_plots(spec, runs_by_dataset, found)

