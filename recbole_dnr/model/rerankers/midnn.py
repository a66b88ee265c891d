"""miDNN (Zhuang, Ou & Wang, IJCAI 2018, "Globally Optimized Mutual Influence Aware Ranking in E-Commerce Search")."""

import torch
import torch.nn as nn

from recbole_dnr.model.abstract_reranker import NeuralReranker
from recbole_dnr.options import integers
from recbole_dnr.registry import register_model


@register_model
class MiDNN(NeuralReranker):
    """Per-candidate MLP over the candidate's features and their list-global extension.

    Global feature extension (the paper's Eq. for f'): f'_i = (f_i - min_j f_j) / (max_j f_j - min_j f_j),
    per feature over the list; h_i = MLP([f_i ; f'_i]) with ReLU + dropout (``midnn_layers``),
    projected to ``hidden_size`` for the shared head. The features f_i ``[B, n, D]`` are our
    candidate tokens (LibRerank's miDNN takes raw item features; ours are learned embeddings).
    """

    options = {"midnn_layers": integers("hidden widths of the MLP", 1)}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        dims = [2 * self.hidden_size] + list(config["midnn_layers"]) + [self.hidden_size]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(config["dropout_prob"])]
        self.mlp = nn.Sequential(*layers[:-1])  # no dropout on the last layer's output

    def encode_list(self, tokens):
        lo = tokens.min(1, keepdim=True).values
        hi = tokens.max(1, keepdim=True).values
        extended = (tokens - lo) / (hi - lo).clamp(min=1e-6)
        return self.mlp(torch.cat([tokens, extended], -1))
