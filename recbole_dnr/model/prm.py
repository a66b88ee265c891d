"""PRM (Pei et al., RecSys 2019, "Personalized Re-ranking for Recommendation")."""

import torch.nn as nn

from recbole_dnr.model.abstract_reranker import NeuralReranker
from recbole_dnr.utils import register_model


@register_model
class PRM(NeuralReranker):
    """Self-attention over the whole candidate list (no causal mask, as in the paper).

    Token = item embedding + personalised vector (history encoder) + position of the retriever's
    order (+ x, see ``score_fusion``); a Transformer encoder models candidate interactions.
    Defaults (properties/model/PRM.yaml): hidden 128, 2 layers, 4 heads, dropout 0.1.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        layer = nn.TransformerEncoderLayer(
            d_model=self.hidden_size,
            nhead=config["n_heads"],
            dim_feedforward=config["inner_size"],
            dropout=config["dropout_prob"],
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=config["n_layers"], enable_nested_tensor=False)

    def encode_list(self, tokens):
        return self.encoder(tokens)
