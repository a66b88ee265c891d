"""MIR (Xi et al., SIGIR 2022, "Multi-Level Interaction Reranking with User Behavior History")."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL
from recbole_dnr.model.abstract_reranker import NeuralReranker
from recbole_dnr.model.layers import make_dropout
from recbole_dnr.options import choice, flag, integer, integers
from recbole_dnr.registry import register_model

_MASKED = -1e9  # not -inf: an all-masked row (empty history) gives a finite softmax, zeroed after


@register_model
class MIR(NeuralReranker):
    """Candidates (a set) meet the user's ordered history (a list) at item and feature level.

    With t ``[B, L, D]`` the candidate tokens (no position: MIR reads a set), e the history tokens
    (item + feedback embedding) ``[B, H, D]``:

    - intra-set: one-head attention over the candidates, V = [t; Att(t)] ``[B, L, 2D]``;
    - intra-list: a BiLSTM (``mir_lstm_hidden`` per direction) over the real history, oldest to
      newest, Q = [LSTM(e); e] ``[B, H, 2h + D]``;
    - set-to-list: affinity C = Q W_b Vᵀ (+ e_h W_fi e_cᵀ over the raw item embeddings,
      ``mir_feature_level``) ``[B, H, L]``, time decay C ← tanh(C ⊙ exp(∓θ_u T) + C) with T the
      recency (0 = newest) and θ_u ≥ 0 from the history summary; co-attention gives
      v = softmax(tanh(P_v + P_q C)) V and q = softmax(tanh(P_q + P_v Cᵀ)) Q;
    - final MLP (``mir_mlp``) on [t; v; q] to ``[B, L, D]``, then the shared head.

    x reads only through ``score_feature`` (early: into t, so into every level; late/weight: at
    the head); DNR wraps it as any backbone (its L_direct head is the BCE head DNR perturbs).

    Differs from the paper: ``mir_time_decay: decay`` (default) uses exp(-θ T), so the newest
    history counts most; the official code's exp(+θ T) (``official``) grows with age.
    ``mir_slot_projection: shared`` (default) projects P_v, P_q with one column repeated L times
    (as ReChorus's port), which keeps MIR permutation-equivariant over candidates; the official
    per-slot columns (``official``) tie the projection to slot positions. Padding is masked in the
    LSTM, the affinity and both softmaxes (the official code masks none of the history).
    LayerNorm before the MLP (the official "batch norm" never leaves inference mode); θ_u from
    the history (no user profile here) through softplus, not ReLU, so it cannot die at 0; the
    one-field feature-level conv reduces to the bilinear e_h W_fi e_cᵀ.
    """

    uses_position = False
    options = {
        "mir_lstm_hidden": integer("MIR's BiLSTM width per direction", 1),
        "mir_mlp": integers("MIR's final MLP widths", 1),
        "mir_decay_hidden": integer("width of MIR's time-decay MLP", 1),
        "mir_feature_level": flag("MIR's feature-level affinity term"),
        "mir_time_decay": choice("decay", "official"),
        "mir_slot_projection": choice("shared", "official"),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d, lstm = self.hidden_size, config["mir_lstm_hidden"]
        v_dim, q_dim = 2 * d, 2 * lstm + d
        self.attn = nn.ModuleList([nn.Linear(d, d) for _ in range(3)])  # Q, K, V of the intra-set attention
        self.attn_dropout = make_dropout(config["dropout_prob"], config["fast_path"])
        self.forward_lstm = nn.LSTM(d, lstm, batch_first=True)
        self.backward_lstm = nn.LSTM(d, lstm, batch_first=True)
        self.affinity = nn.Linear(v_dim, q_dim, bias=False)  # W_b
        self.feature_affinity = nn.Linear(d, d, bias=False) if config["mir_feature_level"] else None  # W_fi
        self.decay_sign = -1.0 if config["mir_time_decay"] == "decay" else 1.0
        self.decay = nn.Sequential(nn.Linear(q_dim, config["mir_decay_hidden"]), nn.ReLU(),
                                   nn.Linear(config["mir_decay_hidden"], 1), nn.Softplus())
        columns = 1 if config["mir_slot_projection"] == "shared" else self.n_candidates
        self.proj_v, self.proj_q = nn.Linear(v_dim, columns), nn.Linear(q_dim, columns)
        dims = [d + v_dim + q_dim] + list(config["mir_mlp"])
        layers = [nn.LayerNorm(dims[0])]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(), make_dropout(config["dropout_prob"], config["fast_path"])]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], d))

    def encode(self, interaction, x):
        """h ``[B, L, D]``; x ``[B, L]`` only through ``score_feature.early`` (in the tokens)."""
        tokens = self.candidate_tokens(interaction, x)
        if not self.list_context:
            return tokens
        items, hist = interaction[self.ITEM_ID], interaction[HISTORY_ITEM]
        real_c, real_h = items > 0, hist > 0
        V = self.intra_set(tokens, real_c)
        e, _ = self.history_encoder.tokens(hist, interaction[HISTORY_LABEL])
        Q = self.intra_list(self.dropout(e), real_h)
        C = self.affinity_matrix(Q, V, hist, items)
        C = self.time_decay(C, Q, real_h)
        v, q = self.co_attention(C, V, Q, real_c, real_h)
        return self.mlp(torch.cat([tokens, v, q], -1))

    def intra_set(self, t, real):
        """V = [t; Att(t)] ``[B, L, 2D]``; padded candidates are neither keys nor outputs."""
        q, k, v = (layer(t) for layer in self.attn)
        logits = (q @ k.transpose(1, 2) / math.sqrt(self.hidden_size)).masked_fill(~real.unsqueeze(1), _MASKED)
        a = self.attn_dropout(logits.softmax(-1)) @ v
        return torch.cat([t, a], -1) * real.unsqueeze(-1)

    def intra_list(self, e, real):
        """Q = [forward LSTM; backward LSTM; e] ``[B, H, 2h + D]``, zero on padded slots.

        Each direction reads the real items first (moved to the front by a scatter), so neither
        the padding nor its amount changes an output; the outputs are moved back to their slots."""
        ones = real.long()  # ONNX's CumSum takes no bool
        n = ones.sum(1, keepdim=True)
        rank = ones.cumsum(1) - 1  # 0-based rank of a real slot, oldest first
        pad_rank = (1 - ones).cumsum(1) - 1
        forward_slot = torch.where(real, rank, n + pad_rank)
        backward_slot = torch.where(real, n - 1 - rank, n + pad_rank)
        outs = []
        for lstm, slot in ((self.forward_lstm, forward_slot), (self.backward_lstm, backward_slot)):
            index = slot.unsqueeze(-1)
            packed = torch.zeros_like(e).scatter(1, index.expand_as(e), e)
            out, _ = lstm(packed)
            outs.append(out.gather(1, index.expand(-1, -1, out.shape[-1])))
        return torch.cat(outs + [e], -1) * real.unsqueeze(-1)

    def affinity_matrix(self, Q, V, hist, items):
        """C = Q W_b Vᵀ (+ e_h W_fi e_cᵀ) ``[B, H, L]``; zero where a slot is padding."""
        C = Q @ self.affinity(V).transpose(1, 2)
        if self.feature_affinity is not None:  # item 0 embeds to zero (padding_idx): padding adds 0
            C = C + self.item_embedding(hist) @ self.feature_affinity(self.item_embedding(items)).transpose(1, 2)
        return C

    def time_decay(self, C, Q, real):
        """C ← tanh(C ⊙ exp(±θ_u T) + C); T ``[B, H]`` = real items newer than the slot (0 = newest)."""
        mask = real.unsqueeze(-1)
        summary = (Q * mask).sum(1) / mask.sum(1).clamp(min=1)
        theta = self.decay(summary)  # [B, 1], >= 0
        ones = real.long()
        T = (ones.sum(1, keepdim=True) - ones.cumsum(1)) * ones
        # the clamp keeps the official sign finite (exp(+θT) grows without bound); decay never reaches it
        factor = torch.exp((self.decay_sign * theta * T).clamp(max=30.0)).unsqueeze(-1)
        return torch.tanh(C * factor + C) * mask

    def co_attention(self, C, V, Q, real_c, real_h):
        """(v ``[B, L, 2D]``, q ``[B, L, 2h + D]``) from C ``[B, H, L]``."""
        L = V.shape[1]
        P_v = self.proj_v(V).expand(-1, -1, L)  # [B, L, L]: shared = one column repeated L times
        P_q = self.proj_q(Q).transpose(1, 2).expand(-1, L, -1)  # [B, L, H]
        H_v = torch.tanh(P_v + P_q @ C).masked_fill(~real_c.unsqueeze(1), _MASKED)
        H_q = torch.tanh(P_q + P_v @ C.transpose(1, 2)).masked_fill(~real_h.unsqueeze(1), _MASKED)
        v = self.attn_dropout(H_v.softmax(-1)) @ V
        q = self.attn_dropout(H_q.softmax(-1)) @ Q * real_h.any(1).view(-1, 1, 1)  # empty history: q = 0
        return v, q
