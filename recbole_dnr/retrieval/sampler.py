"""Negative samplers over the catalogue, returning log q of every draw (for the logQ correction).

CoRR draws the ranker's negatives from the retriever's own distribution over items,
q(i | u) ∝ exp(s_re(u, i)), so the ranker trains on the items it will see at inference. The
authors' code approximates that with an inverted multi-index sampler; on our catalogues (a few
thousand items) we draw from it exactly: one softmax over the allowed items per request. A
sampler is pluggable (``corr_sampler``); ``uniform`` is the independent pipeline's distribution.
"""

import torch

from recbole_dnr.errors import UserInputError

NEG_INF = float("-inf")


def exclusion_mask(n_items, lo, hi, log_items, extra=None):
    """Bool ``[B, n_items]``, True where an item may be drawn: not the padding item 0, not an
    item of the log rows ``lo[b] .. hi[b]-1`` (what the user rated before the request), not an
    item of ``extra [B, m]`` (0 = none)."""
    B = len(lo)
    allowed = torch.ones(B, n_items, dtype=torch.bool)
    allowed[:, 0] = False
    lens = (hi - lo).clamp(min=0)
    if int(lens.sum()):
        row = torch.repeat_interleave(torch.arange(B), lens)
        start = torch.repeat_interleave(lo, lens)
        offs = torch.arange(int(lens.sum())) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
        allowed[row, log_items[start + offs]] = False
    if extra is not None:
        allowed.scatter_(1, extra, False)
        allowed[:, 0] = False  # extra's padding wrote item 0
    return allowed


class NegativeSampler:
    """``sample(logits [B, I], allowed [B, I], k, generator) -> (items [B, k], log_q [B, k],
    log_q_all [B, I])``: k draws with replacement per row, log q of each, and log q of every item
    (-inf where not allowed), so the positives' log q can be read too."""

    def log_q(self, logits, allowed):
        raise NotImplementedError

    def sample(self, logits, allowed, k, generator=None):
        log_q_all = self.log_q(logits.detach(), allowed)
        if not bool(allowed.any(1).all()):
            raise UserInputError("a request has no item left to sample as a negative (every item is excluded)")
        items = torch.multinomial(log_q_all.exp(), k, replacement=True, generator=generator)
        return items, log_q_all.gather(1, items), log_q_all


class ExactSoftmaxSampler(NegativeSampler):
    """q(i | u) = softmax over the allowed items of s_re(u, i) / T (``corr_sampler_temperature``)."""

    def __init__(self, temperature=1.0):
        if temperature <= 0:
            raise UserInputError(f"corr_sampler_temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def log_q(self, logits, allowed):
        return torch.log_softmax((logits / self.temperature).masked_fill(~allowed, NEG_INF), dim=1)


class UniformSampler(NegativeSampler):
    """q(i | u) uniform over the allowed items (random negatives, as an independent ranker gets)."""

    def log_q(self, logits, allowed):
        n = allowed.sum(1, keepdim=True).clamp(min=1).float()
        return torch.where(allowed, -torch.log(n), torch.full_like(logits, NEG_INF))


SAMPLERS = {"exact": ExactSoftmaxSampler, "uniform": UniformSampler}


def get_sampler(config):
    name = config["corr_sampler"]
    if name not in SAMPLERS:
        raise UserInputError(f"corr_sampler must be one of {sorted(SAMPLERS)}, got '{name}'")
    if name == "exact":
        return ExactSoftmaxSampler(config["corr_sampler_temperature"])
    return UniformSampler()
