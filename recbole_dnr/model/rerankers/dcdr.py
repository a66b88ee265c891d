"""DCDR (Lin et al., WWW 2024 companion, "Discrete Conditional Diffusion for Reranking in
Recommendation"; Kuaishou), permutation-level variant (DCDR-P). No public code exists: the
forward process, the denoiser, the losses and the beam decoding below are our reading of the paper."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import LABEL, SCORE, SLATE_MASK
from recbole_dnr.model.diffusion import swap_betas, swap_noise
from recbole_dnr.model.generative import GenerativeReranker, SlateEvaluator, gather_slots, pointer_decode
from recbole_dnr.model.layers import make_transformer_layer
from recbole_dnr.model.rerankers.prm import PRM
from recbole_dnr.options import integer, number
from recbole_dnr.registry import register_model

NEG_INF = float("-inf")
DISLIKED, LIKED, NOT_SHOWN = 0, 1, 2  # the per-slot conditions c_j


@register_model
class DCDR(PRM, GenerativeReranker):
    """Discrete conditional diffusion over the list: from the retriever's order towards a list whose
    shown slots get the desired responses.

    - Candidate encoder h ``[B, n, D]`` and per-candidate logit s_i: PRM's (L_direct). s is the part
      ``DNR_DCDR`` wraps (x' reaches it through ``score_fusion``); the denoiser reads h.
    - Target x₀ (a permutation of the n candidates): the shown items first (the slate; in retrieve
      mode the liked items), then the others, each group in the retriever's order (the slate's logged
      time order is not in our batches); condition c_j = the response of x₀'s slot j (liked /
      disliked) for shown slots, "not shown" after them.
    - Forward process: ``dcdr_steps`` T steps of swap noise, β_t linear ``dcdr_beta_start`` →
      ``dcdr_beta_end`` (``model/diffusion.py``: every x_t stays a permutation).
    - Denoiser: slot token j = h of x_t's candidate at j + slot + step(t) + condition(c_j) embeddings
      → ``dcdr_layers`` Transformer layers → o_j; p(x₀ slot j = candidate i) = softmax_i(⟨W o_j, h_i⟩/√D)
      (padding candidates masked on the k shown slots). Loss: the mean over slots of −log p(x₀ | x_t, c),
      t uniform in 1..T, weighted ``dcdr_denoiser_weight``.
    - Evaluator: :class:`SlateEvaluator` over a list's top k, per-slot BCE against z on the noised
      lists x_t (weight ``dcdr_evaluator_weight``).
    - Inference: c = liked on the k shown slots. Start x = the retriever's order (x descending),
      told it is at step ``dcdr_start_step`` T'; T' reverse steps of beam search, ``dcdr_beam`` K
      beams. A beam's proposals: itself, the denoiser's greedy top k (distinct, then the rest in the
      beam's order) and its K best single transpositions; each scored by log p_θ(x₀ = proposal | beam),
      duplicates dropped, the K best kept. A request stops early once its best list does not change.
      The evaluator picks among the final beams; its top k come first in the scores, the others
      keep s_i (``GenerativeReranker.score``). Deterministic; a request's result does not depend on
      its batch.

    Our reading of the paper (no code, no readable method section): the swap-noise kernel, the
    x₀-parameterised pointer denoiser, the proposal set of the beam search and the likelihood it
    ranks by, the evaluator's form. The token-level variant (DCDR-T) is not implemented.
    """

    options = {
        "dcdr_steps": integer("swap-noise diffusion steps T", 1),
        "dcdr_start_step": integer("step T' the retriever's order is taken to be at (reverse steps at inference)", 1),
        "dcdr_beam": integer("beams kept per reverse step", 1),
        "dcdr_layers": integer("Transformer layers of the denoiser", 1),
        "dcdr_beta_start": number("swap probability per position at the first step, in [0, 1]", 0, 1),
        "dcdr_beta_end": number("swap probability per position at the last step, in [0, 1]", 0, 1),
        "dcdr_denoiser_weight": number("weight of the denoiser's cross-entropy, >= 0", 0),
        "dcdr_evaluator_weight": number("weight of the evaluator's BCE, >= 0", 0),
    }
    export_blocker = ("its beam decoding stops early on the data (a Python loop exit) and drops duplicate lists, "
                      "which a traced graph cannot express")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d, n = self.hidden_size, self.n_candidates
        self.T, self.T_start, self.beam = config["dcdr_steps"], config["dcdr_start_step"], config["dcdr_beam"]
        if not 1 <= self.T_start <= self.T or self.k >= n:
            raise UserInputError(f"DCDR needs 1 <= dcdr_start_step <= dcdr_steps and slate_size < candidate_num; "
                                 f"got {self.T_start}, {self.T}, {self.k}, {n}")
        self.register_buffer("betas", swap_betas(self.T, config["dcdr_beta_start"], config["dcdr_beta_end"]),
                             persistent=False)
        self.slot_embedding = nn.Embedding(n, d)
        self.step_embedding = nn.Embedding(self.T + 1, d)
        self.condition_embedding = nn.Embedding(3, d)
        layer = make_transformer_layer(d, config["n_heads"], config["inner_size"], config["dropout_prob"],
                                       config["attn_dropout_prob"], config["fast_path"])
        self.denoiser = nn.TransformerEncoder(layer, num_layers=config["dcdr_layers"], enable_nested_tensor=False)
        self.pointer = nn.Linear(d, d)
        self.slate_evaluator = SlateEvaluator(self.k, d, config["n_heads"], config["inner_size"],
                                              config["dropout_prob"], config["attn_dropout_prob"], config["fast_path"])
        self.denoiser_weight, self.evaluator_weight = config["dcdr_denoiser_weight"], config["dcdr_evaluator_weight"]
        # fixed weights hashing a permutation to one number (duplicate lists in the beam)
        self.register_buffer("hash_weights", torch.randn(n, generator=torch.Generator().manual_seed(0),
                                                         dtype=torch.float64), persistent=False)

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        lo, hi = cfg.get("dcdr_beta_start"), cfg.get("dcdr_beta_end")
        if lo is not None and hi is not None and lo > hi:
            raise UserInputError(f"dcdr_beta_start={lo} > dcdr_beta_end={hi}: the swap probability grows with t")

    # ------------------------------------------------------------------ lists and conditions
    def target(self, interaction):
        """x₀ ``[B, n]`` (candidate indices) and its conditions c ``[B, n]`` (see the class docstring)."""
        items, x, z = interaction[self.ITEM_ID], interaction[SCORE], interaction[LABEL]
        valid = items > 0
        slate = interaction[SLATE_MASK].bool() if SLATE_MASK in interaction.interaction else torch.zeros_like(valid)
        shown = torch.where(slate.any(1, keepdim=True), slate, z > 0) & valid
        x0 = torch.argsort(shown * 2.0 + x - 10.0 * (~valid), dim=1, descending=True, stable=True)
        c = torch.where(shown.gather(1, x0), z.gather(1, x0).long(), NOT_SHOWN)
        return x0, c

    def start(self, interaction):
        """The retriever's order ``[B, n]`` (x descending, padding last)."""
        x, valid = interaction[SCORE], interaction[self.ITEM_ID] > 0
        return torch.argsort(x - 10.0 * (~valid), dim=1, descending=True, stable=True)

    def desired(self, B, device):
        c = torch.full((B, self.n_candidates), NOT_SHOWN, dtype=torch.long, device=device)
        c[:, :self.k] = LIKED
        return c

    # ------------------------------------------------------------------ denoiser
    def pointer_logprobs(self, h, perm, t, c, valid):
        """log p(x₀ slot j = candidate i | x_t = perm, t, c) ``[B, n, n]`` (slot, candidate)."""
        d = h.shape[-1]
        tokens = h.gather(1, perm.unsqueeze(-1).expand(-1, -1, d)) + self.slot_embedding.weight \
            + self.step_embedding(t).unsqueeze(1) + self.condition_embedding(c)
        logits = self.pointer(self.denoiser(tokens)) @ h.transpose(1, 2) / math.sqrt(d)
        shown = torch.arange(perm.shape[1], device=h.device) < self.k
        return torch.log_softmax(logits.masked_fill(shown[None, :, None] & ~valid[:, None, :], NEG_INF), -1)

    def aux_loss(self, interaction, h):
        """dcdr_denoiser_weight · −log p(x₀ | x_t, c) + dcdr_evaluator_weight · evaluator BCE."""
        valid = interaction[self.ITEM_ID] > 0
        x0, c = self.target(interaction)
        B = x0.shape[0]
        t = torch.randint(1, self.T + 1, (B,), device=x0.device)
        xt = swap_noise(x0, t, self.betas)
        logp = self.pointer_logprobs(h, xt, t, c, valid).gather(2, x0.unsqueeze(-1)).squeeze(-1)
        shown = xt[:, None, :self.k]
        q = self.slate_evaluator(gather_slots(h, shown)).squeeze(1)
        l_eval = F.binary_cross_entropy_with_logits(q, interaction[LABEL].gather(1, xt[:, :self.k]))
        return -self.denoiser_weight * logp.mean() + self.evaluator_weight * l_eval

    # ------------------------------------------------------------------ beam decoding
    def proposals(self, logp, perm, valid):
        """Lists ``[M, 2 + K, n]`` proposed from each beam ``perm [M, n]`` given its ``logp [M, n, n]``."""
        M, n = perm.shape
        greedy, _ = pointer_decode(lambda r, chosen: logp[:, r], self.k, valid)
        in_greedy = (perm.unsqueeze(-1) == greedy.unsqueeze(1)).any(-1)
        rest = perm.gather(1, torch.argsort(in_greedy.long(), dim=1, stable=True)[:, :n - self.k])
        # gain of transposing slots a < b: log p(a holds perm_b) + log p(b holds perm_a) − the current two
        cross = logp.gather(2, perm.unsqueeze(1).expand(-1, n, -1))  # [M, a, b] = log p(slot a holds perm_b)
        keep = cross.diagonal(dim1=1, dim2=2)
        gain = cross + cross.transpose(1, 2) - keep.unsqueeze(2) - keep.unsqueeze(1)
        upper = torch.ones(n, n, dtype=torch.bool, device=perm.device).triu(1)
        best = gain.masked_fill(~upper, NEG_INF).flatten(1).topk(self.beam, dim=1).indices
        a, b = best // n, best % n
        swapped = perm.unsqueeze(1).repeat(1, self.beam, 1)
        pa, pb = swapped.gather(2, a.unsqueeze(-1)), swapped.gather(2, b.unsqueeze(-1))
        swapped = swapped.scatter(2, a.unsqueeze(-1), pb).scatter(2, b.unsqueeze(-1), pa)
        return torch.cat([perm.unsqueeze(1), torch.cat([greedy, rest], 1).unsqueeze(1), swapped], 1)

    def decode(self, interaction, h):
        """Final beams ``[B, K, n]``, their scores ``[B, K]`` (−∞: a duplicate) and the reverse steps run."""
        valid = interaction[self.ITEM_ID] > 0
        B, n = valid.shape
        beams, scores = self.start(interaction).unsqueeze(1), h.new_zeros(B, 1)
        c = self.desired(B, h.device)
        done = torch.zeros(B, dtype=torch.bool, device=h.device)
        steps = 0
        for t in range(self.T_start, 0, -1):
            K = beams.shape[1]
            flat, rep_valid = beams.reshape(B * K, n), valid.repeat_interleave(K, 0)
            logp = self.pointer_logprobs(h.repeat_interleave(K, 0), flat, torch.full((B * K,), t, device=h.device),
                                         c.repeat_interleave(K, 0), rep_valid)
            props = self.proposals(logp, flat, rep_valid)  # [B·K, P, n]
            P = props.shape[1]
            ll = logp.unsqueeze(1).expand(-1, P, -1, -1).gather(3, props.unsqueeze(-1)).squeeze(-1).sum(-1)
            props, ll = props.view(B, K * P, n), ll.view(B, K * P)
            order = ll.argsort(dim=1, descending=True, stable=True)
            props, ll = props.gather(1, order.unsqueeze(-1).expand(-1, -1, n)), ll.gather(1, order)
            key = props.double() @ self.hash_weights
            earlier = torch.ones(K * P, K * P, dtype=torch.bool, device=h.device).tril(-1)
            dup = ((key.unsqueeze(2) == key.unsqueeze(1)) & earlier).any(2)
            ll = ll.masked_fill(dup, NEG_INF)
            top = ll.topk(min(self.beam, K * P), dim=1)
            new_beams = props.gather(1, top.indices.unsqueeze(-1).expand(-1, -1, n))
            new_scores = top.values
            stop = (new_beams[:, 0] == beams[:, 0]).all(1)
            if done.any():  # stopped requests keep their beams
                new_beams = torch.where(done[:, None, None], beams, new_beams)
                new_scores = torch.where(done[:, None], scores, new_scores)
            beams, scores, done = new_beams, new_scores, done | stop
            steps += 1
            if bool(done.all()):
                break
        return beams, scores, steps

    def choose(self, interaction):
        """(per-candidate logits s ``[B, n]``, the evaluator's pick among the final beams, its top k ``[B, k]``)."""
        x = interaction[SCORE]
        h = self.encode(interaction, x)
        s = self.head_logits(h, x)
        beams, scores, _ = self.decode(interaction, h)
        shown = beams[:, :, :self.k]
        value = self.slate_evaluator.value(self.slate_evaluator(gather_slots(h, shown)))
        pick = value.masked_fill(torch.isinf(scores), NEG_INF).argmax(1)
        return s, shown[torch.arange(shown.shape[0], device=shown.device), pick]
