"""Where a gain comes from: Δ test NDCG@6 of two variants per quantile of the retriever's own quality.

Each test request is placed by the retriever's per-request AUC over its candidates (how well x alone
orders that request's list: the ``Retriever`` cell's per-request metrics), and the paired difference
of two variants is averaged inside each quantile bin. A model that reads x more gains where x is good
and loses where it is bad; a denoiser should do the opposite of a naive x-reader. The strata use the
test labels, so they describe where a difference arises; they are not a rule a deployed system could
apply. Configured by a grid's ``report: strata: {floor: Retriever, bins: 5, pairs: [[A, B], ...]}``; a
pair's optional third element names the plot panel it goes into (``[A, B, "panel title"]``).
"""

import warnings

import numpy as np

from recbole_dnr import storage
from recbole_dnr.benchmark.results import per_request, per_request_by_seed


def x_strata(a_runs, b_runs, floor_runs, bins=5, metric="ndcg@6", by="auc"):
    """Δ ``metric`` (a − b) per quantile bin of the floor's per-request ``by``.

    The per-request Δ is the mean over the seeds both variants have; the floor's per-request values
    come from its first run (the lists are fixed by ``list_seed``, so every seed's floor is the same).
    Returns ``{"seeds", "n", "delta", "bins": [{"lo", "hi", "n", "delta", "se", "seed_deltas"}]}`` or
    None when the two have no seed in common or there is no floor."""
    if not floor_runs:
        return None
    seeds, a, b = per_request_by_seed(a_runs, b_runs, metric)
    if not seeds:
        return None
    q = per_request(floor_runs[0], by)
    ids = sorted(set(q).intersection(*[set(d) for d in a + b]))
    with warnings.catch_warnings():  # a request undefined in every seed is NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        per_seed = np.array([[x[i] - y[i] for i in ids] for x, y in zip(a, b)], dtype=float)  # [S, R]
        diff = np.nanmean(per_seed, axis=0)
    quality = np.array([q[i] for i in ids], dtype=float)
    ok = np.isfinite(quality) & np.isfinite(diff)
    quality, diff, per_seed = quality[ok], diff[ok], per_seed[:, ok]
    if not len(diff):
        return None
    edges = np.quantile(quality, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, quality, side="right") - 1, 0, bins - 1)  # the top edge joins the last bin
    out = []
    for k in range(bins):
        m = which == k
        n = int(m.sum())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out.append({"lo": float(edges[k]), "hi": float(edges[k + 1]), "n": n,
                        "delta": float(diff[m].mean()) if n else float("nan"),
                        "se": float(diff[m].std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                        "seed_deltas": [float(np.nanmean(row[m])) if n else float("nan") for row in per_seed]})
    return {"seeds": seeds, "n": int(len(diff)), "delta": float(diff.mean()), "bins": out}


def strata_for(spec, runs):
    """``{(a, b): x_strata(...)}`` for the pairs of ``report: strata`` that have landed on one dataset."""
    conf = spec.report.get("strata") or {}
    if not conf:
        return {}
    by_variant = {}
    for r in runs:
        by_variant.setdefault(r["variant"], []).append(r)
    floor = by_variant.get(conf.get("floor", "Retriever"), [])
    found = {}
    for a, b, *panel in conf.get("pairs") or []:
        if a in by_variant and b in by_variant:
            s = x_strata(by_variant[a], by_variant[b], floor, int(conf.get("bins", 5)))
            if s:
                found[(a, b)] = dict(s, panel=panel[0] if panel else None)
    return found


def agreeing(stratum):
    """Seeds whose own Δ in the bin has the sign of the mean Δ."""
    sign = np.sign(stratum["delta"])
    return int(sum(np.sign(d) == sign and sign != 0 for d in stratum["seed_deltas"]))


def strata_markdown(dataset, found):
    if not found:
        return []
    first = next(iter(found.values()))
    bins = len(first["bins"])
    head = ("| pair | seeds | all | " + " | ".join(f"q{k + 1}" for k in range(bins)) + " |")
    lines = [f"**Where the differences arise ({dataset})**: Δ test NDCG@6 (a − b, mean over seeds; ± standard "
             f"error over requests) in {bins} equal-count bins of the requests, ordered by how well the retriever's "
             "x alone ranks each request's candidates (its per-request AUC; q1 = x worst). The bins use the test "
             "labels: they say where a difference comes from, not which requests a system could pick out. In "
             "brackets: seeds whose own Δ in the bin has the sign of the mean (the request-level error ignores "
             "training noise; the same config trained twice can differ by 0.05 in a bin in one seed).",
             "", head, "|" + "---|" * (head.count("|") - 1),
             "| retriever AUC in the bin | | | " + " | ".join(f"{b['lo']:.2f}-{b['hi']:.2f}" for b in first["bins"])
             + " |"]
    for (a, b), s in found.items():
        cells = [f"{x['delta']:+.4f} ± {x['se']:.4f}" + (f" ({agreeing(x)}/{len(s['seeds'])})" if len(s["seeds"]) > 1
                                                         else "") for x in s["bins"]]
        lines.append(f"| {a} − {b} | {len(s['seeds'])} | {s['delta']:+.4f} | " + " | ".join(cells) + " |")
    return lines + [""]


def plot_strata(plt, dataset, found, path):
    """The panels the grid names (a pair's ``panel``), in order of first mention; without names, one
    panel, or two beside each other when more than five pairs would share it: pairs of backbones (what
    reading x does) and pairs led by a DNR row (what DNR does over them)."""
    if not found:
        return None
    if any(s.get("panel") for s in found.values()):
        titles = list(dict.fromkeys(s.get("panel") or "other pairs" for s in found.values()))
        groups = [{k: v for k, v in found.items() if (v.get("panel") or "other pairs") == t} for t in titles]
    else:
        groups = [{k: v for k, v in found.items() if not k[0].startswith("DNR")},
                  {k: v for k, v in found.items() if k[0].startswith("DNR")}]
        groups = [g for g in groups if g] if len(found) > 5 else [found]
        titles = (["backbone against backbone", "DNR rows against a backbone"] if len(groups) == 2 else [None])
    fig, axes = plt.subplots(1, len(groups), figsize=(8 if len(groups) == 1 else 6.5 * len(groups), 4.8),
                             sharey=True, squeeze=False)
    first = next(iter(found.values()))
    xs = np.arange(1, len(first["bins"]) + 1)
    for ax, group, title in zip(axes[0], groups, titles):
        for (a, b), s in group.items():
            ax.errorbar(xs, [x["delta"] for x in s["bins"]], yerr=[x["se"] for x in s["bins"]], marker="o", ms=4,
                        capsize=2, label=f"{a} − {b} ({len(s['seeds'])} seed{'s' if len(s['seeds']) > 1 else ''})",
                        ls="--" if a.startswith("DNR") else "-")
        ax.axhline(0, c="k", lw=0.8)
        ax.set_xticks(xs, [f"q{k}\n{x['lo']:.2f}-{x['hi']:.2f}" for k, x in zip(xs, first["bins"])])
        ax.set_xlabel("requests in equal-count bins of the retriever's per-request AUC (q1: x worst)", fontsize=8)
        if title:
            ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("Δ test NDCG@6 (± s.e. over requests)")
    fig.suptitle(f"{dataset}: where the differences arise, by the quality of x", fontsize=10)
    fig.tight_layout()
    storage.save_figure(fig, path)
    plt.close(fig)
    return path
