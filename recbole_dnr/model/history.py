"""The user state u ``[B, D]`` a reranker reads from the request's history.

The history is ``items [B, H]`` and ``labels [B, H]`` (z of each earlier interaction), left-padded
with 0, oldest to newest (``protocol.history``). ``history_encoder`` picks the reader:

- ``mean``: masked mean of item (+ feedback) embeddings, then Linear + ReLU (order-blind).
- ``gru``: a GRU over the history, its state after the newest item (GRU4Rec's reader).
- ``transformer``: self-attention over item (+ feedback) + recency-position tokens, read at the
  newest slot (SASRec's reader; padding masked, which DiffuRec's public code does not do).

``history_feedback: False`` leaves out the feedback embedding (RecBole's sequence models read
item ids only). An empty history gives u = 0 for the order-aware readers and ReLU(b), a learned
"no history" state, for ``mean``.
"""

import torch
import torch.nn as nn

from recbole_dnr.model.layers import make_dropout


class HistoryReader(nn.Module):
    """Shared part: token embeddings of the history ``[B, H, D]`` and the padding mask ``[B, H]``."""

    def __init__(self, item_embedding, hidden, feedback=True):
        super().__init__()
        self.item_embedding = item_embedding
        self.label_embedding = nn.Embedding(2, hidden) if feedback else None

    def tokens(self, hist_items, hist_labels):
        e = self.item_embedding(hist_items)
        if self.label_embedding is not None:
            e = e + self.label_embedding(hist_labels)
        return e, hist_items > 0


class MeanHistory(HistoryReader):
    """Order-blind: ReLU(W · masked mean of the history tokens) ``[B, D]``."""

    def __init__(self, item_embedding, hidden, config):
        super().__init__(item_embedding, hidden, config["history_feedback"])
        self.out = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, hist_items, hist_labels):
        e, real = self.tokens(hist_items, hist_labels)
        mask = real.float().unsqueeze(-1)
        return self.out((e * mask).sum(1) / mask.sum(1).clamp(min=1))


class GRUHistory(HistoryReader):
    """GRU over the history; the state after the newest item ``[B, D]`` (padding is at the front,
    so it is read first and the state is reset where the real history starts)."""

    def __init__(self, item_embedding, hidden, config):
        super().__init__(item_embedding, hidden, config["history_feedback"])
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.dropout = make_dropout(config["dropout_prob"], config["fast_path"])

    def forward(self, hist_items, hist_labels):
        e, real = self.tokens(hist_items, hist_labels)
        # zero tokens before the history: the GRU's state stays near its start until the first item
        out, last = self.gru(self.dropout(e * real.unsqueeze(-1).float()))
        return last[-1] * real.any(1, keepdim=True).float()


class TransformerHistory(HistoryReader):
    """SASRec's reader: tokens + position by recency, LayerNorm, dropout, ``history_layers``
    post-norm encoder layers with the padding masked; u = the newest slot's output ``[B, D]``.

    ``condition`` (``[B, D]`` or ``[B, H, D]``) is added to every token just before the encoder
    (DiffuRec's denoiser adds its noisy target there)."""

    def __init__(self, item_embedding, hidden, config):
        super().__init__(item_embedding, hidden, config["history_feedback"])
        self.position = nn.Embedding(config["max_history"], hidden)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = make_dropout(config["dropout_prob"], config["fast_path"])
        layer = nn.TransformerEncoderLayer(hidden, config["n_heads"], config["inner_size"], config["dropout_prob"],
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, config["history_layers"], enable_nested_tensor=False)

    def forward(self, hist_items, hist_labels, condition=None):
        e, real = self.tokens(hist_items, hist_labels)
        H = hist_items.shape[1]
        recency = torch.arange(H - 1, -1, -1, device=hist_items.device).clamp(max=self.position.num_embeddings - 1)
        x = self.dropout(self.norm(e + self.position(recency)))
        if condition is not None:
            x = x + (condition.unsqueeze(1) if condition.dim() == 2 else condition)
        # the newest slot of an empty history is padding: unmask it so no row is all-masked (its output
        # is zeroed below), which would give NaN attention
        has = real.any(1)
        pad = torch.cat([~real[:, :-1], (~real[:, -1:]) & has.unsqueeze(1)], 1)  # no in-place op: ONNX export
        h = self.encoder(x, src_key_padding_mask=pad)
        return h[:, -1] * has.unsqueeze(-1).float()


HISTORY_ENCODERS = {"mean": MeanHistory, "gru": GRUHistory, "transformer": TransformerHistory}


def make_history_encoder(config, item_embedding, hidden):
    """The reader ``history_encoder`` names (:data:`HISTORY_ENCODERS`)."""
    return HISTORY_ENCODERS[config["history_encoder"]](item_embedding, hidden, config)
