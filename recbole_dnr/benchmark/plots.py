"""Benchmark plots (matplotlib, headless): test NDCG@6 per model, valid curves, quality vs cost,
the probe and strata panels; written only when their bytes change (:func:`storage.save_figure`)."""

import os
from collections import defaultdict

import numpy as np

from recbole_dnr import storage
from recbole_dnr.benchmark import strata
from recbole_dnr.benchmark.results import by_variant as group_by_variant, fit_cost
from recbole_dnr.benchmark.tables import has_curves, strata_of


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


def render_plots(spec, runs_by_dataset, strata_by_dataset=None):
    if strata_by_dataset is None:
        strata_by_dataset = strata_of(spec, runs_by_dataset)
    img = spec.report.get("img_dir")
    if not img:
        return []
    plt = storage.pyplot()
    if plt is None:
        print("[benchmark] matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    os.makedirs(img, exist_ok=True)
    prefix = spec.report.get("prefix", "benchmark")
    written = []
    for ds, runs in runs_by_dataset.items():
        if not has_curves(runs):
            continue
        by_variant = group_by_variant(runs)
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
                     + (f"; {hidden} variant{'s' if hidden > 1 else ''} not drawn" if hidden else ""), fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        ax = axes[2]
        xs = [max(float(np.mean([fit_cost(r) for r in by_variant[n]])), 1.0) for n in names]
        ys = [float(np.mean([r["test"]["ndcg@6"] for r in by_variant[n]])) for n in names]
        ax.scatter(xs, ys, c=colors)
        ax.set_xscale("log")
        if max(xs) < 10 * min(xs):  # keep at least a decade in view, so the axis has labelled ticks
            mid = float(np.sqrt(min(xs) * max(xs)))
            ax.set_xlim(mid / 10 ** 0.5, mid * 10 ** 0.5)
        # labels at 1, 2, 5 × 10^k (at 10^k over wide axes) only: matplotlib labels every minor tick of a
        # log axis spanning under about two decades, and those labels overlap
        wide = max(xs) > 300 * min(xs)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
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
