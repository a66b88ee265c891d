"""Benchmark tables: mean ± std over seeds (best in bold), paired tests of every DNR_X against X,
the paper's figure beside ours, rendered into a marked block of a markdown file."""

import os
from collections import defaultdict

import numpy as np

from recbole_dnr import machine
from recbole_dnr.benchmark import strata
from recbole_dnr.benchmark.results import by_variant as group_by_variant, metrics_of, peak_cell
from recbole_dnr.benchmark.selection import choose, valid_by_seed
from recbole_dnr.benchmark.stats import paired
from recbole_dnr.storage import replace_block


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


def cpu_text(m):
    """`` (AMD EPYC, AVX512)`` where a cell recorded its CPU, else ''."""
    known = machine.cpu_text(m)
    return f" ({known})" if known else ""


DRIFT_MARK = "†"  # a row with a cell trained under another run key than its settings give now


def backbone_variant(variant, by_variant):
    """X for a variant DNR_X (same name without the prefix), if the grid has it."""
    return variant[len("DNR_"):] if variant.startswith("DNR_") and variant[len("DNR_"):] in by_variant else None


def dataset_markdown(spec, dataset, runs):
    metrics = metrics_of(spec)
    by_variant = group_by_variant(runs)
    paper = (spec.paper or {}).get(dataset, {})
    m0 = runs[0]["machine"]
    lines = [f"### {dataset}", "",
             f"Command: `python -m recbole_dnr.benchmark --config {spec.path}`; seeds per row as listed; "
             f"machine: {m0['platform']}, {m0['cpu_count']} CPUs{cpu_text(m0)}, torch {m0['torch']} "
             f"({m0['torch_threads']} threads). "
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
        mark = DRIFT_MARK if any(r.get("drifted") for r in rs) else ""
        lines.append(f"| {v}{mark} | {len(rs)} | " + " | ".join(cells) +
                     f" | {paper.get(v, '')} | {epochs} | {np.mean([r['train_sec_per_epoch'] for r in rs]):.1f} | "
                     f"{np.mean([r['infer_us_per_list'] for r in rs]):.1f} | {peak_cell(rs)} |")
    lines += ["", "`*` = stopped by the epoch cap, not by early stopping. Peak MB: the cell process's peak resident "
              "memory, building or loading the lists included; in brackets its peak while training and evaluating "
              "(the lists already in memory), where the cell recorded it.", ""]
    if any(r.get("drifted") for r in runs):
        lines += [f"`{DRIFT_MARK}` = run under an earlier configuration (another run key): a cell's yaml "
                      "defaults or config files changed since (`--dry_run` names what, `--rerun_drifted` "
                      "retrains).", ""]
    pairs = [(v, backbone_variant(v, by_variant)) for v in by_variant if backbone_variant(v, by_variant)]
    pairs += [(a, b) for a, b in spec.report.get("pairs", []) if a in by_variant and b in by_variant]
    if pairs:
        lines += ["**Paired tests, A − B** (test NDCG@6; DNR_X against X, and the pairs the grid file lists)", "",
                  "| pair | Δ over requests | t p | Wilcoxon p | Δ per seed | t p (seeds; — for one seed) |", "|---|---|---|---|---|---|"]
        for v, b in pairs:
            p = paired(by_variant[v], by_variant[b])
            if p:
                lines.append(f"| {v} − {b} | {pair_cells(p)} |")
        lines.append("")
    lines += selected_markdown(spec, by_variant, pairs)
    if paper:
        lines += [f"Paper figures ({spec.report.get('paper_note', 'DNR paper, its own protocol')}) are on a "
                  "different protocol (their split, candidate lists, metric scope and model selection), so only "
                  "the order of the rows is comparable, not the values.", ""]
    return lines


def pair_cells(p):
    """Δ over requests (n) | t p | Wilcoxon p | Δ per seed | t p over seeds, of a :func:`paired` result."""
    seed_p = "—" if np.isnan(p["t_seed"]) else f"{p['t_seed']:.3g}"
    return (f"{p['delta']:+.4f} (n={p['n']}) | {p['t_req']:.3g} | {p['w_req']:.3g} | "
            f"{', '.join(f'{d:+.4f}' for d in p['seed_deltas'])} | {seed_p}")


def selected_markdown(spec, by_variant, pairs):
    """With ``report: select: <suffix>``: each variant's searched config against its twin ``X<suffix>``
    (the default it started from) on mean valid NDCG@6 (:mod:`.selection`), and the paired tests of the
    grid's pairs at the configs chosen."""
    suffix = spec.report.get("select")
    if not suffix:
        return []
    valid = valid_by_seed(by_variant)
    chosen = choose(valid, suffix)
    if not chosen:
        return []

    def kind(name):
        return "default" if chosen[name] != name else "searched"

    lines = [f"**Selected on valid**: each contender's search best against its default config (`{suffix}`), by "
             "mean valid NDCG@6 over the same seeds (a tie keeps the search's); test NDCG@6 of the one chosen",
             "", "| contender | valid, searched | valid, default | chosen | test NDCG@6 |", "|---|---|---|---|---|"]
    for name, pick in chosen.items():
        lines.append(f"| {name} | {fmt(list(valid[name].values()))} | {fmt(list(valid[name + suffix].values()))} | "
                     f"{kind(name)} | {fmt([r['test']['ndcg@6'] for r in by_variant[pick]])} |")
    rows = []
    for a, b in pairs:
        if a in chosen and b in chosen and not (a.endswith(suffix) or b.endswith(suffix)):
            p = paired(by_variant[chosen[a]], by_variant[chosen[b]])
            if p:
                rows.append(f"| {a} − {b} | {kind(a)} − {kind(b)} | {pair_cells(p)} |")
    if rows:
        lines += ["", "**Paired tests at the chosen configs, A − B** (test NDCG@6)", "",
                  "| pair | configs | Δ over requests | t p | Wilcoxon p | Δ per seed | t p (seeds; — for one seed) |",
                  "|---|---|---|---|---|---|---|"] + rows
    return lines + [""]


def probe_markdown(runs):
    """Robustness probe table (issue 8): test NDCG@6 of each trained model with its test x corrupted
    (x + σ·N(0,1), re-normalised per list) or taken from a weaker retriever, and the drop from σ = 0."""
    by_variant = group_by_variant(r for r in runs if r.get("score_corruption"))
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
            cells.append(signed_spread(d) if d else "")
        if weak:
            d = [r["score_corruption"]["weak_retriever"]["ndcg@6"] - base[r["seed"]] for r in rs
                 if "weak_retriever" in r["score_corruption"] and r["seed"] in base]
            cells += [fmt(at("weak_retriever")) if at("weak_retriever") else "", signed_spread(d) if d else ""]
        mark = DRIFT_MARK if any(r.get("drifted") for r in rs) else ""
        lines.append(f"| {v}{mark} | {len(rs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def signed(x):
    """``+0.0123``; a difference that rounds to zero prints as +0.0000, not -0.0000."""
    return f"{round(float(x), 4) + 0.0:+.4f}"


def signed_spread(values):
    """One difference signed, or their mean signed ± their sample std."""
    values = np.asarray(values, dtype=float)
    return signed(values[0]) if len(values) == 1 else f"{signed(values.mean())} ± {values.std(ddof=1):.4f}"


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


def strata_of(spec, runs_by_dataset):
    """``{dataset: strata.strata_for(...)}``: computed once per render, shared by table and plot."""
    return {ds: strata.strata_for(spec, runs) for ds, runs in runs_by_dataset.items()}


def render_markdown(spec, runs_by_dataset, strata_by_dataset=None):
    if strata_by_dataset is None:
        strata_by_dataset = strata_of(spec, runs_by_dataset)
    target = spec.report.get("markdown")
    if not target:
        return None
    body = table2_markdown(spec, runs_by_dataset)
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
    return replace_block(target, spec.report.get("tag", "benchmark"), body, "python -m recbole_dnr.benchmark")
