"""Choosing between a searched config and the default it started from, on valid only (issue 37).

A search of a few trials can end below the default config (ml-100k: SASRec-none's and Caser-none's best
trials; ml-1m-u1to2999: DNR_SASRec's); reporting the search's best anyway would compare a contender
below its own starting point. So the default counts as one more candidate: for each variant ``X``
with a twin ``X<suffix>`` trained on the same seeds, the one with the higher mean valid NDCG@6 over
those seeds stands for ``X`` (a tie keeps ``X``). Test metrics never enter the choice.
"""

import numpy as np


def choose(valid, suffix="@default"):
    """``{X: X or X+suffix}`` for every ``X`` whose twin ran on the same, non-empty set of seeds.

    valid: ``{variant: {seed: valid metric}}``; variants without a complete twin are left out (their
    choice waits until both sides have landed)."""
    chosen = {}
    for name, tuned in valid.items():
        twin = valid.get(name + suffix)
        if name.endswith(suffix) or not tuned or not twin or set(tuned) != set(twin):
            continue
        chosen[name] = name + suffix if np.mean(list(twin.values())) > np.mean(list(tuned.values())) else name
    return chosen


def valid_by_seed(by_variant, metric="ndcg@6"):
    """``{variant: {seed: valid metric}}`` from ``{variant: [cell records]}``."""
    return {v: {r["seed"]: r["valid"][metric] for r in rs if metric in (r.get("valid") or {})}
            for v, rs in by_variant.items()}
