"""DLCM (Ai et al., SIGIR 2018, "Learning a Deep Listwise Context Model for Ranking Refinement")."""

import torch
import torch.nn as nn

from recbole_dnr.model.abstract_reranker import NeuralReranker
from recbole_dnr.registry import register_model


@register_model
class DLCM(NeuralReranker):
    """A GRU reads the list in the retriever's order; each output is gated by the final state
    (the list context), as in LibRerank's DLCM: h_i ⊙ tanh(W s_n)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.gru = nn.GRU(self.hidden_size, self.hidden_size, batch_first=True)
        self.context = nn.Linear(self.hidden_size, self.hidden_size)

    def encode_list(self, tokens):
        out, last = self.gru(tokens)
        return out * torch.tanh(self.context(last[-1])).unsqueeze(1)
