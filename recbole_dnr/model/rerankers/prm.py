"""PRM (Pei et al., RecSys 2019, "Personalized Re-ranking for Recommendation")."""

import torch.nn as nn

from recbole_dnr.model.abstract_reranker import NeuralReranker
from recbole_dnr.model.layers import make_transformer_layer
from recbole_dnr.registry import register_model


@register_model
class PRM(NeuralReranker):
    """Self-attention over the whole candidate list (no causal mask, as in the paper).

    Token = item embedding + personalised vector (history encoder) + position of the retriever's
    order (+ x, see ``score_fusion``); a Transformer encoder models candidate interactions.
    Defaults (properties/model/PRM.yaml): hidden 128, 2 layers, 4 heads, dropout 0.1 (also on the
    attention weights: ``attn_dropout_prob``).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        layer = make_transformer_layer(self.hidden_size, config["n_heads"], config["inner_size"],
                                       config["dropout_prob"], config["attn_dropout_prob"], config["fast_path"])
        self.encoder = nn.TransformerEncoder(layer, num_layers=config["n_layers"], enable_nested_tensor=False)

    def encode_list(self, tokens):
        return self.encoder(tokens)
