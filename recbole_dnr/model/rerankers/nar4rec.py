"""NAR4Rec (Ren et al., KDD 2024, "Non-autoregressive Generative Models for Reranking Recommendation"),
our reading: no public code exists and the method section could not be read; parts marked [R]
are reconstructed (docs/models.md)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dnr.fields import LABEL, SCORE, SLATE_MASK
from recbole_dnr.model.generative import NEG_INF, GenerativeReranker, pointer_decode
from recbole_dnr.model.layers import make_transformer_layer
from recbole_dnr.model.rerankers.prm import PRM
from recbole_dnr.options import integer, number, numbers_
from recbole_dnr.registry import register_model


@register_model
class NAR4Rec(PRM, GenerativeReranker):
    """A position × candidate probability matrix for the k = ``slate_size`` slots in one pass,
    contrastive decoding of G sequences, an evaluator picking one.

    - Candidate encoder: PRM's (tokens e_i + PV (+ x) → Transformer) → h ``[B, n, D]``, and the
      per-candidate BCE logit s (L_direct).
    - Position encoder [R]: k learned slot embeddings shared by every request + the user state u,
      ``nar_decoder_layers`` Transformer decoder layers (self-attention over slots, cross-attention
      to the candidate states, padding masked) → h^p ``[B, k, D]``.
    - Matching [R]: P_{j,i} = softmax_i ⟨h^p_j, W g_i⟩/√D over the valid candidates (padding 0),
      g = ``score_feature.late(h, x)``; p(y) = Π_j P_{j,y_j} (non-autoregressive).
    - Training [R]: target y = the slate's items, liked first, then by x (our lists carry no display
      order); U(y) = Σ z ≥ ``nar_utility_threshold``: likelihood −Σ_j log P_{j,y_j}, else sequence
      unlikelihood −Σ_j log(1 − P_{j,y_j}); plus ``nar_cl_weight`` · SimCTG's contrastive loss on
      the normalised candidate vectors (margin ``nar_cl_margin``).
    - Contrastive decoding [R]: for each α in ``nar_alphas`` (G sequences) slot by slot
      y_j = argmax_{v ∉ y_<j, valid} (1 − α) P_{j,v} − α max_{l<j} cos(h_v, h_{y_l}).
    - Evaluator [R, reusing PIER's OCPM]: a Transformer over a sequence's k slot vectors (+ slot
      embedding) → per-slot click logits (BCE against the items' z, on the G decoded sequences,
      weight ``nar_evaluator_weight``); value Σ_j σ(q_j)/log2(j + 2); all G sequences in one
      ``[B·G, k]`` pass; the best is the output (``sequence_scores`` with s for the rest).

    x is read only through ``score_feature`` (candidate tokens with ``early``, g — the matching and
    the evaluator's slots — and the head with ``late``/``weight``). DNR perturbs the per-candidate
    BCE scorer s (``DNR_NAR4Rec``, as ``DNR_PIER``); the generator's and the evaluator's losses are
    added as ``aux_loss`` and are not a likelihood q_θ(z | x).
    """

    options = {
        "nar_decoder_layers": integer("NAR4Rec's position-decoder layers", 1),
        "nar_alphas": numbers_("NAR4Rec's contrastive-decoding weights α in [0, 1], one sequence each", 0, 1),
        "nar_utility_threshold": number("NAR4Rec's liked items for a positive target, >= 0", 0),
        "nar_cl_margin": number("NAR4Rec's SimCTG margin in [0, 2]", 0, 2),
        "nar_cl_weight": number("NAR4Rec's contrastive-loss weight, >= 0", 0),
        "nar_evaluator_weight": number("NAR4Rec's evaluator-BCE weight, >= 0", 0),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = self.hidden_size
        self.slot_embedding = nn.Embedding(self.k, d)
        layer = nn.TransformerDecoderLayer(d, config["n_heads"], config["inner_size"], config["dropout_prob"],
                                           batch_first=True)
        self.position_decoder = nn.TransformerDecoder(layer, num_layers=config["nar_decoder_layers"])
        self.match = nn.Linear(d, d, bias=False)
        eval_layer = make_transformer_layer(d, config["n_heads"], config["inner_size"], config["dropout_prob"],
                                            config["attn_dropout_prob"], config["fast_path"])
        self.evaluator = nn.TransformerEncoder(eval_layer, num_layers=1, enable_nested_tensor=False)
        self.evaluator_slot = nn.Embedding(self.k, d)
        self.evaluator_head = nn.Linear(d, 1)
        self.register_buffer("alphas", torch.tensor([float(a) for a in config["nar_alphas"]]))
        self.register_buffer("slot_discount", 1.0 / torch.log2(torch.arange(self.k, dtype=torch.float) + 2))
        self.threshold, self.cl_margin = config["nar_utility_threshold"], config["nar_cl_margin"]
        self.cl_weight, self.eval_weight = config["nar_cl_weight"], config["nar_evaluator_weight"]

    def position_matrix(self, interaction, h):
        """(log P ``[B, k, n]`` over the valid candidates, g ``[B, n, D]``) from h ``[B, n, D]``."""
        x, valid = interaction[SCORE], interaction[self.ITEM_ID] > 0
        g = self.score_feature.late(h, x)
        slots = self.slot_embedding.weight.unsqueeze(0) + self.user_state(interaction).unsqueeze(1)
        hp = self.position_decoder(slots, g, memory_key_padding_mask=~valid)
        logits = hp @ self.match(g).transpose(1, 2) / g.shape[-1] ** 0.5
        return F.log_softmax(logits.masked_fill(~valid.unsqueeze(1), NEG_INF), -1), g

    def target(self, interaction):
        """(y ``[B, k]`` candidate indices, positive ``[B]``): the slate, liked first then by x; a list
        without a slate uses its top-k by (z, x) as a positive target."""
        x, z = interaction[SCORE], interaction[LABEL]
        slate = interaction[SLATE_MASK].float() if SLATE_MASK in interaction.interaction else torch.zeros_like(z)
        y = (4 * slate + 2 * z + x).topk(self.k, dim=1).indices
        positive = (z.gather(1, y).sum(1) >= self.threshold) | (slate.sum(1) == 0)
        return y, positive

    def generation_loss(self, log_p, y, positive):
        """Sequence likelihood (positives) / unlikelihood (negatives), mean over lists and slots."""
        lp = log_p.gather(2, y.unsqueeze(2)).squeeze(2)  # [B, k]
        unlikely = -torch.log1p(-lp.exp().clamp(max=1 - 1e-6))
        return torch.where(positive.unsqueeze(1), -lp, unlikely).mean()

    def contrastive_loss(self, h, valid):
        """SimCTG: mean over valid pairs i ≠ k of max(0, ρ − 1 + cos(h_i, h_k))."""
        u = F.normalize(h, dim=-1)
        cos = u @ u.transpose(1, 2)
        pair = valid.unsqueeze(1) & valid.unsqueeze(2) & ~torch.eye(h.shape[1], dtype=torch.bool, device=h.device)
        return (F.relu(self.cl_margin - 1 + cos) * pair).sum() / pair.sum().clamp(min=1)

    def decode(self, log_p, h, valid):
        """Contrastive decoding, one sequence per α: ``[B, G, k]`` distinct valid candidate indices."""
        B, k, n = log_p.shape
        G = self.alphas.shape[0]
        p = log_p.exp().repeat_interleave(G, 0)
        u = F.normalize(h, dim=-1)
        sim = (u @ u.transpose(1, 2)).repeat_interleave(G, 0)  # [B·G, n, n]
        alpha = self.alphas.repeat(B).unsqueeze(1)  # row b·G + g has α_g

        def step(r, chosen):
            if r == 0:
                penalty = torch.zeros_like(p[:, 0])
            else:
                penalty = sim.gather(2, chosen.unsqueeze(1).expand(-1, n, -1)).max(2).values
            return (1 - alpha) * p[:, r] - alpha * penalty

        seq, _ = pointer_decode(step, k, valid.repeat_interleave(G, 0))
        return seq.view(B, G, k)

    def evaluate_sequences(self, g, seq):
        """Per-slot click logits ``[B, G, k]`` of the sequences ``seq [B, G, k]`` (one ``[B·G, k]`` pass)."""
        B, G, k = seq.shape
        slots = g.gather(1, seq.reshape(B, G * k, 1).expand(-1, -1, g.shape[-1])).view(B * G, k, -1)
        return self.evaluator_head(self.evaluator(slots + self.evaluator_slot.weight)).view(B, G, k)

    def aux_loss(self, interaction, h):
        """L_gen + nar_cl_weight · L_CL + nar_evaluator_weight · BCE(evaluator on the decoded sequences)."""
        valid = interaction[self.ITEM_ID] > 0
        log_p, g = self.position_matrix(interaction, h)
        y, positive = self.target(interaction)
        with torch.no_grad():
            seq = self.decode(log_p, h, valid)
        B, G, k = seq.shape
        z = interaction[LABEL].gather(1, seq.view(B, -1)).view(B, G, k)
        l_eval = F.binary_cross_entropy_with_logits(self.evaluate_sequences(g, seq), z)
        return (self.generation_loss(log_p, y, positive) + self.cl_weight * self.contrastive_loss(h, valid)
                + self.eval_weight * l_eval)

    def choose(self, interaction):
        """(per-candidate logits s ``[B, n]``, the evaluator's pick of the G decoded sequences ``[B, k]``)."""
        x, valid = interaction[SCORE], interaction[self.ITEM_ID] > 0
        h = self.encode(interaction, x)
        log_p, g = self.position_matrix(interaction, h)
        seq = self.decode(log_p, h, valid)
        value = (torch.sigmoid(self.evaluate_sequences(g, seq)) * self.slot_discount).sum(-1)
        best = value.argmax(1)
        return self.head_logits(h, x), seq[torch.arange(seq.shape[0], device=seq.device), best]
