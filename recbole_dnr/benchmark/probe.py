"""Test-time robustness probe (issue 8; the DNR reviewers' question): evaluate a trained model
with its test x corrupted, x + σ·N(0, 1) re-normalised per list, and report its metrics per σ.
If DNR's claim holds, DNR_X degrades more slowly than X when x is noisier than in training."""

import torch
from recbole.data.interaction import Interaction

from recbole_dnr.data.dataloader import ListDataLoader
from recbole_dnr.data.dataset import SCORE, RequestSet


def corrupt_scores(x, sigma, generator):
    """x ``[R, n]`` + σ·N(0, 1), min-max re-normalised per list into [0, 1]; σ = 0 returns a copy of x."""
    if sigma == 0:
        return x.clone()
    noisy = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    lo, hi = noisy.min(1, keepdim=True).values, noisy.max(1, keepdim=True).values
    return (noisy - lo) / (hi - lo).clamp(min=1e-6)


def with_scores(split, x):
    """A copy of a split (:class:`RequestSet`) whose x is ``x``; the stored split is untouched."""
    return RequestSet(split.parent, Interaction({**split.inter.interaction, SCORE: x}), split.phase)


def score_corruption_probe(config, trainer, test_loader, sigmas, seed):
    """{σ: test metrics} of the trained model (current weights) on corrupted x. The noise depends
    on ``seed`` and σ's index only, so every model of a grid sees the same corrupted lists."""
    split = test_loader._dataset
    out = {}
    for i, sigma in enumerate(sigmas):
        g = torch.Generator().manual_seed(int(seed) * 1009 + i)
        loader = ListDataLoader(config, with_scores(split, corrupt_scores(split.inter[SCORE], float(sigma), g)),
                                config["eval_batch_size"])
        out[str(sigma)] = {k: float(v) for k, v in trainer.evaluate(loader, load_best_model=False).items()}
    return out
