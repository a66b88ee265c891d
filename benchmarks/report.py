"""Summarise benchmark results as markdown: mean ± std over seeds, paired tests, cost ratios.

    python benchmarks/report.py benchmarks/results/*.json [--baseline PRM] [--metric ndcg@6]

Files of the same dataset are merged (e.g. seeds run in separate processes); ``file.json@label``
shows that file's runs under ``label`` (sweeps run with ``--set`` overrides).

Paired tests of each variant against the baseline: over requests (per-request metric averaged
over the seeds both ran, paired t-test and Wilcoxon signed-rank) and over seeds (paired t-test of
the per-seed means). Cost ratios use runs of the same json (one process, one machine state).
"""

import argparse
import json
from collections import defaultdict

import numpy as np
from scipy import stats

METRICS = ["h@6", "ndcg@6", "map@6", "f1@6", "auc"]


def fmt(values):
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def load(paths):
    """Runs and per-request arrays of one or more result files (of one dataset), merged."""
    res, arrays, commands = None, {}, []
    for spec in paths:
        path, _, label = spec.partition("@")
        with open(path) as f:
            part = json.load(f)
        commands.append(part.get("command", "?"))
        renamed = {}
        if label:  # a sweep file: its runs get their own row instead of joining the variant's
            for r in part["runs"]:
                renamed[r["variant"]] = label
                r["variant"] = label
        if res is None:
            res = part
        else:
            res["runs"] += part["runs"]
        with np.load(path[:-5] + ".npz" if path.endswith(".json") else path + ".npz") as npz:
            for k in npz.files:
                variant, rest = k.split("/", 1)
                arrays[f"{renamed.get(variant, variant)}/{rest}"] = npz[k]
    res["command"] = "`; `".join(commands)
    return res, arrays


def per_request(arrays, variant, seed, metric):
    ids = arrays[f"{variant}/{seed}/request_id"]
    return dict(zip(ids.tolist(), arrays[f"{variant}/{seed}/{metric}"].tolist()))


def report(paths, baseline, metric):
    res, arrays = load(paths)
    runs = res["runs"]
    by_variant = defaultdict(list)
    for r in runs:
        by_variant[r["variant"]].append(r)
    dataset = runs[0]["dataset"]
    out = [f"### {dataset}", "", f"Command: `{res.get('command', '?')}`  ",
           f"Machine: {res['machine']['platform']}, {res['machine']['cpu_count']} CPUs, "
           f"torch {res['machine']['torch']} ({res['machine']['torch_threads']} threads)", ""]
    for split in ("valid", "test"):
        out += [f"**{split}** (mean ± std over seeds)", "",
                "| variant | seeds | " + " | ".join(METRICS) + " | epochs |",
                "|---|---|" + "---|" * len(METRICS) + "---|"]
        for v, rs in by_variant.items():
            cells = [fmt([r[split].get(m, np.nan) for r in rs]) for m in METRICS]
            epochs = "/".join(str(r["epochs_run"]) for r in rs)
            out.append(f"| {v} | {len(rs)} | " + " | ".join(cells) + f" | {epochs} |")
        out.append("")
    scoped = {v: [r for r in rs if r.get("slate_scope")] for v, rs in by_variant.items()}
    if any(scoped.values()):
        out += ["**test, `eval_scope: slate`** (the same predictions ranked within the 6 exposed items "
                "only, a diagnostic scope, not the DNR group's evaluator's (docs/metrics.md); H@6 is 1 there by construction)", "",
                "| variant | seeds | " + " | ".join(METRICS[1:]) + " |", "|---|---|" + "---|" * (len(METRICS) - 1)]
        for v, rs in scoped.items():
            if rs:
                cells = [fmt([r["slate_scope"]["test"].get(m, np.nan) for r in rs]) for m in METRICS[1:]]
                out.append(f"| {v} | {len(rs)} | " + " | ".join(cells) + " |")
        out.append("")
    if baseline in by_variant:
        out += [f"**Paired tests against {baseline}** (test {metric})", "",
                "| variant | Δ mean (over requests) | t-test p (requests) | Wilcoxon p (requests) | "
                "Δ per seed | t-test p (seeds) |", "|---|---|---|---|---|---|"]
        base_seeds = {r["seed"] for r in by_variant[baseline]}
        for v, rs in by_variant.items():
            if v == baseline:
                continue
            seeds = sorted(base_seeds & {r["seed"] for r in rs})
            if not seeds:
                continue
            a = [per_request(arrays, v, s, metric) for s in seeds]
            b = [per_request(arrays, baseline, s, metric) for s in seeds]
            ids = sorted(set.intersection(*[set(d) for d in a + b]))
            va = np.nanmean([[d[i] for i in ids] for d in a], axis=0)
            vb = np.nanmean([[d[i] for i in ids] for d in b], axis=0)
            ok = ~(np.isnan(va) | np.isnan(vb))
            diff = va[ok] - vb[ok]
            t_req = stats.ttest_rel(va[ok], vb[ok]).pvalue
            w_req = stats.wilcoxon(diff[diff != 0]).pvalue if (diff != 0).any() else 1.0
            ma = [np.nanmean(list(d.values())) for d in a]
            mb = [np.nanmean(list(d.values())) for d in b]
            seed_d = np.array(ma) - np.array(mb)
            t_seed = stats.ttest_rel(ma, mb).pvalue if len(seeds) > 1 else float("nan")
            out.append(f"| {v} | {diff.mean():+.4f} (n={ok.sum()}) | {t_req:.3g} | {w_req:.3g} | "
                       f"{', '.join(f'{d:+.4f}' for d in seed_d)} | {t_seed:.3g} |")
        out.append("")
        base_train = np.mean([r["train_sec_per_epoch"] for r in by_variant[baseline]])
        base_infer = np.mean([r["infer_sec_per_list"] for r in by_variant[baseline]])
        out += [f"**Cost of the whole runs** (ratio to {baseline}; runs shared the 2 cores with other jobs, so "
                "indicative only: benchmarks/cost.py measures it properly)", "",
                "| variant | train s/epoch | ratio | inference µs/list | ratio |", "|---|---|---|---|---|"]
        for v, rs in by_variant.items():
            tr = np.mean([r["train_sec_per_epoch"] for r in rs])
            inf = np.mean([r["infer_sec_per_list"] for r in rs])
            out.append(f"| {v} | {tr:.1f} | {tr / base_train:.2f} | {inf * 1e6:.1f} | {inf / base_infer:.2f} |")
        out.append("")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--baseline", default="PRM")
    parser.add_argument("--metric", default="ndcg@6")
    args = parser.parse_args()
    by_dataset = defaultdict(list)
    for spec in args.results:
        with open(spec.partition("@")[0]) as f:
            by_dataset[json.load(f)["runs"][0]["dataset"]].append(spec)
    for paths in by_dataset.values():
        print(report(paths, args.baseline, args.metric))


if __name__ == "__main__":
    main()
