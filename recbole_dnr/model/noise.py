"""Noise generators p_φ(x' | z) of DNR and the distribution-matching loss L_x.

Synthetic scores x' = squash((1 - λ_c) z + λ_c ε), ε from a heuristic base noise u
(``gaussian``: N(0, 1); ``beta``: Beta(0.5, 0.5)) or from the learned generator
ε = u + f_φ(u, z, list statistics of x) (or its ``direct``/``conditioned`` forms, :class:`LearnedNoise`). ``squash`` keeps x' in [0, 1] like x:
``clamp`` (default) or ``minmax`` per list (the DNR group's code).
"""

import torch
import torch.nn as nn

from recbole_dnr.errors import UserInputError


def base_noise(kind, like):
    """u with the shape/device/dtype of ``like``: ``gaussian`` N(0,1) or ``beta`` Beta(0.5,0.5)."""
    if kind == "gaussian":
        return torch.randn_like(like)
    if kind == "beta":
        # Beta(0.5, 0.5) is the arcsine law: sin^2(pi U / 2), U ~ U(0,1), exactly. This is several
        # times cheaper than torch.distributions.Beta (two Gamma draws per element).
        return torch.sin(0.5 * torch.pi * torch.rand_like(like)) ** 2
    raise UserInputError(f"noise must be 'gaussian' or 'beta', got '{kind}'")


def perturb_scores(x, sigma, generator=None):
    """x ``[B, n]`` + σ·N(0, 1), min-max re-normalised per list into [0, 1] (a copy of x for σ = 0):
    the robustness probe's corruption and ``score_train_noise``'s augmentation."""
    if sigma == 0:
        return x.clone()
    noisy = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    lo, hi = noisy.min(1, keepdim=True).values, noisy.max(1, keepdim=True).values
    return (noisy - lo) / (hi - lo).clamp(min=1e-6)


def synthesize(z, eps, lambda_c, squash="clamp"):
    """x' = squash((1 - λ_c) z + λ_c ε) in [0, 1], shape of z ``[B, n]``."""
    raw = (1.0 - lambda_c) * z + lambda_c * eps
    if squash == "clamp":
        return raw.clamp(0.0, 1.0)
    if squash == "minmax":
        lo, hi = raw.min(1, keepdim=True).values, raw.max(1, keepdim=True).values
        return (raw - lo) / (hi - lo).clamp(min=1e-6)
    raise UserInputError(f"noise_squash must be 'clamp' or 'minmax', got '{squash}'")


NOISES = ("gaussian", "beta")  # base noise u
SQUASHES = ("clamp", "minmax")  # how x' is kept in [0, 1]
GENERATOR_FORMS = ("residual", "direct", "conditioned")


class LearnedNoise(nn.Module):
    """f_φ, a 2-layer MLP over [u, z, mean_list(x), std_list(x)] ``[B, n, 4]`` (+ a projection of
    the backbone's candidate state h ``[B, n, D]`` for ``conditioned``). ``generator_form``:

    - ``residual`` (ours): ε = u + f_φ, then x' = squash((1 - λ_c) z + λ_c ε). The last layer
      starts at zero, so at the phase switch the learned generator equals the heuristic one.
    - ``direct`` (the paper: "λ_c set directly to 1"): x' = σ(f_φ) ∈ [0, 1] is the output itself.
    - ``conditioned`` (the DNR group's commented-out generator): ε = u + f_φ(..., W h_i), noise
      that depends on the candidate's and the user's hidden state (h holds both); zero-started.

    The list statistics of the real x let the generator calibrate x' to each list's score range.
    """

    def __init__(self, hidden, form="residual", cond_dim=0, cond_hidden=8):
        super().__init__()
        if form not in GENERATOR_FORMS:
            raise UserInputError(f"generator_form must be one of {list(GENERATOR_FORMS)}, got '{form}'")
        self.form = form
        self.cond = nn.Linear(cond_dim, cond_hidden) if form == "conditioned" else None
        width = 4 + (cond_hidden if self.cond is not None else 0)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        if form != "direct":
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, u, z, x, h=None):
        """ε ``[B, n]`` (residual, conditioned) or x' ``[B, n]`` in [0, 1] (direct)."""
        stats = torch.stack([x.mean(1), x.std(1)], -1).unsqueeze(1).expand(-1, x.shape[1], -1)
        parts = [u.unsqueeze(-1), z.unsqueeze(-1), stats]
        if self.cond is not None:
            parts.append(self.cond(h))
        out = self.mlp(torch.cat(parts, -1)).squeeze(-1)
        return torch.sigmoid(out) if self.form == "direct" else u + out


def soft_histogram(values, bins=20, bandwidth=None):
    """Differentiable histogram of ``values`` (any shape, in [0, 1]) on ``bins`` centres: ``[bins]``.

    Each value spreads over the centres with a Gaussian kernel (width ``bandwidth``, default one bin).
    """
    centres = (torch.arange(bins, device=values.device, dtype=values.dtype) + 0.5) / bins
    bw = bandwidth or 1.0 / bins
    w = torch.exp(-0.5 * ((values.reshape(-1, 1) - centres) / bw) ** 2)
    w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
    return w.mean(0)


def score_kl(x_syn, x_real, bins=20, eps=1e-4):
    """L_x = KL(p(x') || p(x)) between the batch's soft histograms of x' and x (x is detached)."""
    p = soft_histogram(x_syn, bins) + eps
    q = soft_histogram(x_real.detach(), bins) + eps
    p, q = p / p.sum(), q / q.sum()
    return (p * (p / q).log()).sum()
