"""Diffusion processes: Gaussian over vectors (DiffuRec), swap noise over permutations (DCDR).

Gaussian (DDPM with an x₀-predicting denoiser), as DiffuRec uses it.

Forward: q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I), ᾱ_t = Π_{s≤t} (1 − β_s), steps t = 0..T−1.
Reverse: x_{t−1} = c₁(t) x̂₀ + c₂(t) x_t (+ σ_t ε), the DDPM posterior mean with
c₁ = β_t √ᾱ_{t−1} / (1 − ᾱ_t), c₂ = (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t) (ᾱ_{−1} = 1, so the last step
returns x̂₀) and DiffuRec's "fixed large" variance σ_t² = β_t (the posterior variance at t = 1 for
t = 0, where no noise is added). :meth:`GaussianDiffusion.respaced` keeps S of the T steps
(guided-diffusion's respacing): the same ᾱ at the kept steps, fewer denoiser passes.
"""

import math

import torch
import torch.nn as nn


def trunc_lin_betas(T):
    """DiffuRec's ``trunc_lin``: linear from 0.01 + 1e-4·(1000/T) to 0.01 + 0.02·(1000/T) ``[T]``
    (T = 32: 0.013125 → 0.635); capped at 0.999, which binds only for T ≤ 20."""
    scale = 1000.0 / T
    return torch.linspace(0.01 + 1e-4 * scale, 0.01 + 0.02 * scale, T, dtype=torch.float64).clamp(max=0.999)


def linear_betas(T):
    """DDPM's linear schedule rescaled to T steps: 1e-4·(1000/T) → 0.02·(1000/T) ``[T]`` (capped at 0.999)."""
    scale = 1000.0 / T
    return torch.linspace(1e-4 * scale, 0.02 * scale, T, dtype=torch.float64).clamp(max=0.999)


BETA_SCHEDULES = {"trunc_lin": trunc_lin_betas, "linear": linear_betas}


def timestep_embedding(t, dim):
    """Sinusoidal embedding ``[B] -> [B, dim]`` (cos then sin, periods up to 10⁴; guided-diffusion's)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().unsqueeze(1) * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], 1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], 1) if dim % 2 else emb


class GaussianDiffusion(nn.Module):
    """Schedule tensors of S steps (buffers, not saved: they follow from the config).

    ``timesteps [S]``: the denoiser's step index of each kept step (0..S−1 unless respaced).
    """

    def __init__(self, betas, timesteps=None):
        super().__init__()
        betas = betas.double()
        S = betas.shape[0]
        abar = torch.cumprod(1 - betas, 0)
        prev = torch.cat([abar.new_ones(1), abar[:-1]])
        post_var = betas * (1 - prev) / (1 - abar)
        first = post_var[1:2] if S > 1 else betas[:1]
        buffers = {"betas": betas, "alphas_cumprod": abar,
                   "coef_x0": betas * prev.sqrt() / (1 - abar), "coef_xt": (1 - prev) * (1 - betas).sqrt() / (1 - abar),
                   "log_variance": torch.log(torch.cat([first, betas[1:]]))}
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)
        self.register_buffer("timesteps", torch.arange(S) if timesteps is None else timesteps.long(), persistent=False)

    @property
    def steps(self):
        return self.betas.shape[0]

    def q_sample(self, x0, t, noise):
        """x_t ``[B, D]`` from x₀ ``[B, D]``, steps t ``[B]`` and ε ``[B, D]``."""
        abar = self.alphas_cumprod[t].unsqueeze(1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def posterior_mean(self, x0_hat, x_t, i):
        """Mean of x_{t−1} given x̂₀ and x_t at kept step i (an int)."""
        return self.coef_x0[i] * x0_hat + self.coef_xt[i] * x_t

    def respaced(self, steps):
        """The same process on ``steps`` evenly spread of these steps (the first and last kept)."""
        if steps >= self.steps:
            return self
        keep = torch.linspace(0, self.steps - 1, steps, dtype=torch.float64).round().long()
        abar = self.alphas_cumprod.double()[keep]
        betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])
        return GaussianDiffusion(betas, self.timesteps[keep])

    def reverse(self, denoise, x_T, noise=None):
        """x̂₀ ``[B, D]`` by the reverse chain from x_T; ``denoise(x_t, t [B]) -> x̂₀``; ``noise(shape)``
        draws the σ_t ε terms (None: the mean chain, deterministic)."""
        x = x_T
        for i in reversed(range(self.steps)):
            x0_hat = denoise(x, self.timesteps[i].expand(x.shape[0]))
            x = self.posterior_mean(x0_hat, x, i)
            if noise is not None and i > 0:
                x = x + torch.exp(0.5 * self.log_variance[i]) * noise(x.shape)
        return x


# --------------------------------------------------------------- discrete: swap noise over permutations
def swap_betas(T, start=0.05, end=0.5):
    """Per-step swap probability β_t ``[T]``, linear from ``start`` to ``end`` (DCDR's schedule, our reading)."""
    return torch.linspace(start, end, T)


def swap_noise(perm, t, betas, generator=None):
    """x_t ``[B, n]``: t ``[B]`` (0..T) steps of swap noise on the permutations ``perm [B, n]``.

    At step s every position, with probability β_s, is swapped with a uniformly drawn position (the
    swaps applied one after another), so every x_t is a permutation of ``perm``; at t = 0 it is perm.
    """
    B, n = perm.shape
    out = perm.clone()
    rows = torch.arange(B, device=perm.device)
    for s in range(int(t.max()) if t.numel() else 0):
        hit = (torch.rand(B, n, generator=generator, device=perm.device) < betas[s]) & (t > s).unsqueeze(1)
        partner = torch.randint(0, n, (B, n), generator=generator, device=perm.device)
        for j in range(n):
            m, b = hit[:, j], partner[:, j]
            va, vb = out[:, j].clone(), out[rows, b]
            out[rows, b] = torch.where(m, va, vb)
            out[:, j] = torch.where(m, vb, va)
    return out
