"""Paired tests of two variants: over requests (per-request metrics averaged over common seeds)
and over seeds."""

import warnings

import numpy as np

from recbole_dnr.benchmark.results import per_request_by_seed


def paired(a_runs, b_runs, metric="ndcg@6"):
    """Δ (a - b) over requests (per-request metric averaged over common seeds; t-test, Wilcoxon)
    and over seeds (t-test of the per-seed means)."""
    from scipy import stats

    seeds, a, b = per_request_by_seed(a_runs, b_runs, metric)
    if not seeds:
        return None
    ids = sorted(set.intersection(*[set(d) for d in a + b]))
    with warnings.catch_warnings():  # a request whose metric is undefined in every seed is NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        va = np.nanmean([[d[i] for i in ids] for d in a], axis=0)
        vb = np.nanmean([[d[i] for i in ids] for d in b], axis=0)
    ok = ~(np.isnan(va) | np.isnan(vb))
    diff = va[ok] - vb[ok]
    seed_d = [np.nanmean(list(x.values())) - np.nanmean(list(y.values())) for x, y in zip(a, b)]
    return {
        "delta": float(diff.mean()), "n": int(ok.sum()),
        "t_req": float(stats.ttest_rel(va[ok], vb[ok]).pvalue),
        "w_req": float(stats.wilcoxon(diff[diff != 0]).pvalue) if (diff != 0).any() else 1.0,
        "seed_deltas": seed_d,
        "t_seed": float(stats.ttest_rel([np.nanmean(list(x.values())) for x in a],
                                        [np.nanmean(list(y.values())) for y in b]).pvalue) if len(seeds) > 1
        else float("nan"),
    }
