"""Base of the generative rerankers: models that output a sequence of k candidates, not one score each.

A generator-evaluator reranker (PIER, EGRerank, NAR4Rec, DCDR) keeps, beside its generator, a
per-candidate scorer s = ``head_logits(h, x)`` ``[B, n]``: the BCE scorer L_direct trains and the
part DNR wraps (the generator's own objective is not a likelihood q_θ(z | x)). Our evaluator sorts
one score per candidate, so a generated sequence becomes scores by :func:`sequence_scores`: the
generated items first, in their order, the others by s (AUC over the whole list stays meaningful).
Decoding at evaluation is deterministic (:func:`pointer_decode` greedy); sampling is for training.
"""

import torch
import torch.nn as nn
from recbole.data.interaction import Interaction

from recbole_dnr.fields import LABEL, SCORE, SLATE_MASK
from recbole_dnr.model.abstract_reranker import NeuralReranker
from recbole_dnr.model.layers import make_transformer_layer

NEG_INF = float("-inf")


def sequence_scores(s, seq, valid=None):
    """Scores ``[B, n]`` that sort the generated ``seq [B, k]`` (candidate indices) first, in order.

    Generated rank r gets max_j s_j + (k − r), so the k are strictly ordered and above every other
    candidate, which keeps its own s_i (no ties among the rest); padding (``valid`` False) gets −∞.
    """
    if valid is not None:
        s = s.masked_fill(~valid, NEG_INF)
    k = seq.shape[1]
    lead = s.max(1, keepdim=True).values + torch.arange(k, 0, -1, device=s.device, dtype=s.dtype)
    return s.scatter(1, seq, lead)


def pointer_decode(step_logits, k, valid, sample=False, generator=None):
    """k distinct candidates ``[B, k]`` and their log-probabilities ``[B, k]``, one step at a time.

    ``step_logits(r, chosen)`` gives the logits ``[B, n]`` of step r given the indices chosen so far
    ``[B, r]``; candidates already chosen and padding (``valid [B, n]`` False) are masked with −∞ at
    every step, so padding is never generated (each list needs k valid candidates). ``sample``:
    draw from the softmax (training; ``generator`` for a fixed stream), else argmax (evaluation).
    """
    B, n = valid.shape
    taken, slots = ~valid, torch.arange(n, device=valid.device)
    chosen, logps = [], []
    for r in range(k):
        logits = step_logits(r, torch.stack(chosen, 1) if chosen else valid.new_zeros((B, 0), dtype=torch.long))
        logp = torch.log_softmax(logits.masked_fill(taken, NEG_INF), dim=-1)
        if sample:
            pick = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        else:
            pick = logp.argmax(-1)
        chosen.append(pick)
        logps.append(logp.gather(1, pick[:, None]).squeeze(1))
        taken = taken | (slots == pick[:, None])  # not scatter with a bool value: the ONNX tracer rejects it
    return torch.stack(chosen, 1), torch.stack(logps, 1)


def mlp(dims, last_activation=True):
    """Linear + ReLU layers through ``dims`` (``[in, ..., out]``); no ReLU after the last with
    ``last_activation: False``."""
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*(layers if last_activation else layers[:-1]))


def gather_lists(interaction, seq, item_field):
    """The ``B·G`` lists ``seq [B, G, k]`` (candidate indices) make, as one batch of k candidates each.

    Per-candidate fields (items, x, z, slate mask) are gathered along the sequence; every other
    field (user, history, ...) is repeated G times per request with ``repeat_interleave``, so copy g
    of request b is row b·G + g (LibRerank tiles its copies along the feature axis instead, which
    scrambles lists). One evaluator pass then scores every sequence: ``[B·G, k]``.
    """
    B, G, k = seq.shape
    per_candidate = {item_field, SCORE, LABEL, SLATE_MASK}
    out = {}
    for key, value in interaction.interaction.items():
        if key in per_candidate:
            out[key] = value.gather(1, seq.reshape(B, G * k)).reshape(B * G, k)
        else:
            out[key] = value.repeat_interleave(G, dim=0)
    return Interaction(out)


class GenerativeReranker(NeuralReranker):
    """A backbone whose evaluation order is a generated sequence of k = ``slate_size`` candidates.

    Subclasses implement :meth:`choose`: ``(s [B, n], seq [B, k])`` with s the per-candidate logits
    (``head_logits``) and seq the chosen candidate indices, deterministic when not training.
    ``score`` turns them into per-candidate scores (:func:`sequence_scores`).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.k = config["slate_size"]

    def choose(self, interaction):
        """(per-candidate logits s ``[B, n]``, generated candidate indices ``[B, k]``)."""
        raise NotImplementedError

    def score(self, interaction):
        s, seq = self.choose(interaction)
        return sequence_scores(s, seq, interaction[self.ITEM_ID] > 0)


def gather_slots(g, idx):
    """Vectors ``[B, M, k, D]`` of the candidates idx ``[B, M, k]`` from g ``[B, n, D]``."""
    B, M, k = idx.shape
    return g.gather(1, idx.reshape(B, M * k, 1).expand(-1, -1, g.shape[-1])).view(B, M, k, -1)


class SlateEvaluator(nn.Module):
    """A sequence evaluator: per-slot click logits ``[B, M, k]`` of M candidate slates ``[B, M, k, D]``
    (slot embedding + one bidirectional Transformer layer + a linear head), and a slate's value
    Σ_j σ(q_j) / log2(j + 2)."""

    def __init__(self, k, hidden, n_heads, inner, dropout, attn_dropout, fast_path):
        super().__init__()
        self.slot_embedding = nn.Embedding(k, hidden)
        layer = make_transformer_layer(hidden, n_heads, inner, dropout, attn_dropout, fast_path)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, 1)
        self.register_buffer("discount", 1.0 / torch.log2(torch.arange(k, dtype=torch.float) + 2), persistent=False)

    def forward(self, slots):
        B, M, k, d = slots.shape
        return self.head(self.encoder((slots + self.slot_embedding.weight).view(B * M, k, d))).view(B, M, k)

    def value(self, logits):
        """``[B, M, k] -> [B, M]``: the DCG of the predicted click probabilities."""
        return (torch.sigmoid(logits) * self.discount).sum(-1)
