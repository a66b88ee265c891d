"""PIER (Shi et al. 2023, "PIER: Permutation-Level Interest-Based End-to-End Re-ranking Framework
in E-commerce"), a smaller CPU version; no official code exists."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE
from recbole_dnr.model.generative import GenerativeReranker
from recbole_dnr.model.layers import make_transformer_layer
from recbole_dnr.model.rerankers.prm import PRM
from recbole_dnr.options import integer, number
from recbole_dnr.registry import register_model


@register_model
class PIER(PRM, GenerativeReranker):
    """Generator (FPSM) proposes top-k permutations, a context-aware evaluator (OCPM) picks one.

    Implemented (k = ``slate_size``, M = ``pier_permutations``, m = ``pier_selected``):

    - candidate encoder h ``[B, n, D]`` and per-candidate logit s_i: PRM's (trained by L_direct);
    - permutations ``[B, M, k]``: ordered k-subsets of the top-``pier_top`` candidates by s; row 0
      is the greedy top-k, the other M-1 are random (fixed at init for evaluation, redrawn per
      batch in training), as GoalRank's 31 random permutations;
    - FPSM: permutation embedding e_π = W [h_π1; ...; h_πk] ``[B, M, D]`` (order-aware), user
      interest u = W_u PV(history) ``[B, D]``; SimHash codes sign(R e_π), sign(R u) with fixed
      random hyperplanes R ``[bits, D]``; the m-1 permutations whose codes agree most with u's
      (Hamming) are kept, plus the greedy one. Trained with the hinge
      max(0, margin - cos(u, e_best) + cos(u, e_worst)) over the M permutations ranked by the DCG
      of their labels (GoalRank: margin 0.5, weight 0.1);
    - OCPM: a bidirectional Transformer over each kept permutation's k items (+ slot embedding)
      gives per-slot click logits q ``[B, m, k]`` (BCE against the items' z); the permutation's
      value is Σ_j σ(q_j) / log2(j + 2), and the best one is the output.

    ``predict`` gives a score per candidate so list metrics and DNR apply: the chosen
    permutation's items come first in its order (max_i s_i + k - j), the others keep s_i
    (``GenerativeReranker.score``; PRM's encoder, the generative base's scoring).

    Differs from the paper: no item side features or time-aware interest attention (u is our
    history encoder's PV); permutations drawn from the top-``pier_top`` by s rather than the
    paper's full-space sampling; e_π is a linear map of the concatenated slot vectors instead of
    the paper's position-decayed attention; SimHash with 64 bits; OCPM has one Transformer layer
    and no "omnidirectional" separate forward/backward attention; labels of a permutation's items
    are the logged z (offline data has no counterfactual context feedback).
    """

    options = {
        "pier_permutations": integer("permutations proposed per request", 1),
        "pier_top": integer("permutations are drawn from the top pier_top candidates", 1),
        "pier_selected": integer("permutations kept by SimHash for the evaluator", 1),
        "pier_hash_bits": integer("SimHash code length", 1),
        "pier_hinge_margin": number("FPSM hinge margin, >= 0", 0),
        "pier_hinge_weight": number("weight of the FPSM hinge, >= 0", 0),
        "pier_evaluator_weight": number("weight of the OCPM click BCE, >= 0", 0),
    }

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        k, top, n = cfg["slate_size"], cfg["pier_top"], cfg["candidate_num"]
        keep, perms = cfg["pier_selected"], cfg["pier_permutations"]
        if not k <= top <= n or not 1 <= keep <= perms:
            raise UserInputError(
                f"PIER needs slate_size <= pier_top <= candidate_num and 1 <= pier_selected <= pier_permutations; "
                f"got {k}, {top}, {n}, {keep}, {perms}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d, self.k = self.hidden_size, config["slate_size"]
        self.n_perm, self.top, self.n_keep = config["pier_permutations"], config["pier_top"], config["pier_selected"]
        self.margin, self.hinge_weight = config["pier_hinge_margin"], config["pier_hinge_weight"]
        self.eval_weight = config["pier_evaluator_weight"]
        self.perm_proj = nn.Linear(self.k * d, d)
        self.user_proj = nn.Linear(d, d)
        self.register_buffer("hyperplanes", torch.randn(config["pier_hash_bits"], d))
        self.register_buffer("patterns", self._draw_patterns())
        self.slot_embedding = nn.Embedding(self.k, d)
        layer = make_transformer_layer(d, config["n_heads"], config["inner_size"], config["dropout_prob"],
                                       config["attn_dropout_prob"], config["fast_path"])
        self.evaluator = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.evaluator_head = nn.Linear(d, 1)
        self.register_buffer("slot_discount", 1.0 / torch.log2(torch.arange(self.k, dtype=torch.float) + 2))

    def _draw_patterns(self):
        """``[M, k]`` positions into the top-``pier_top`` list: row 0 greedy, the rest random."""
        rand = torch.rand(self.n_perm - 1, self.top, device=self.hyperplanes.device).argsort(1)[:, :self.k]
        return torch.cat([torch.arange(self.k, device=rand.device)[None], rand])

    def permutations(self, s):
        """Candidate indices ``[B, M, k]`` of the permutations proposed from scores s ``[B, n]``."""
        top = s.topk(self.top, dim=1).indices
        patterns = self._draw_patterns() if self.training else self.patterns
        return top[:, patterns]

    def user_interest(self, interaction):
        return self.user_proj(self.history_encoder(interaction[HISTORY_ITEM], interaction[HISTORY_LABEL]))

    def slots(self, g, idx):
        """Slot vectors ``[B, M, k, D]`` of permutations idx ``[B, M, k]`` from g ``[B, n, D]``."""
        B, M, k = idx.shape
        return g.gather(1, idx.reshape(B, M * k, 1).expand(-1, -1, g.shape[-1])).view(B, M, k, -1)

    def simhash_keep(self, u, e):
        """Indices ``[B, m]`` of the kept permutations: greedy (0) + the m-1 others whose SimHash
        codes agree most with the user's (ties to the lower index)."""
        agree = ((e @ self.hyperplanes.T > 0) == (u @ self.hyperplanes.T > 0).unsqueeze(1)).sum(-1)
        M = e.shape[1]
        rank = agree[:, 1:] * M - torch.arange(1, M, device=e.device)  # exact ints: stable tie-break
        others = rank.topk(self.n_keep - 1, dim=1).indices + 1
        return torch.cat([torch.zeros_like(others[:, :1]), others], 1)

    def evaluate_permutations(self, slots):
        """OCPM per-slot click logits ``[B, m, k]`` for slot vectors ``[B, m, k, D]``."""
        B, m, k, d = slots.shape
        t = (slots + self.slot_embedding.weight).view(B * m, k, d)
        return self.evaluator_head(self.evaluator(t)).view(B, m, k)

    def _propose(self, interaction, h):
        x = interaction[SCORE]
        g = self.score_feature.late(h, x)  # what the head reads: the evaluator sees x the same way
        s = self.head_logits(h, x)
        idx = self.permutations(s.detach())
        slots = self.slots(g, idx)
        e = self.perm_proj(slots.flatten(2))
        return s, idx, slots, e

    def aux_loss(self, interaction, h):
        """pier_evaluator_weight · BCE(OCPM) + pier_hinge_weight · FPSM hinge."""
        _, idx, slots, e = self._propose(interaction, h)
        B = idx.shape[0]
        z = interaction[LABEL].gather(1, idx.view(B, -1)).view(idx.shape)
        u = self.user_interest(interaction)
        keep = self.simhash_keep(u, e)
        rows = torch.arange(B, device=idx.device)[:, None]
        q = self.evaluate_permutations(slots[rows, keep])
        l_eval = F.binary_cross_entropy_with_logits(q, z[rows, keep])
        dcg = (z * self.slot_discount).sum(-1)
        best, worst = dcg.argmax(1), dcg.argmin(1)
        cos = F.cosine_similarity(u.unsqueeze(1), e, dim=-1)
        r = rows.squeeze(1)
        hinge = F.relu(self.margin - cos[r, best] + cos[r, worst]) * (dcg[r, best] > dcg[r, worst])
        return self.eval_weight * l_eval + self.hinge_weight * hinge.mean()

    def choose(self, interaction):
        """(per-candidate logits s ``[B, n]``, chosen permutation ``[B, k]`` of candidate indices)."""
        x = interaction[SCORE]
        s, idx, slots, e = self._propose(interaction, self.encode(interaction, x))
        keep = self.simhash_keep(self.user_interest(interaction), e)
        rows = torch.arange(idx.shape[0], device=idx.device)[:, None]
        value = (torch.sigmoid(self.evaluate_permutations(slots[rows, keep])) * self.slot_discount).sum(-1)
        best = keep.gather(1, value.argmax(1, keepdim=True)).squeeze(1)
        return s, idx[rows.squeeze(1), best]
