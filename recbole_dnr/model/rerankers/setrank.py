"""SetRank (Pang et al., SIGIR 2020, "SetRank: Learning a Permutation-Invariant Ranking Model for
Information Retrieval")."""

from recbole_dnr.model.rerankers.prm import PRM
from recbole_dnr.registry import register_model


@register_model
class SetRank(PRM):
    """Stacked multi-head self-attention blocks (MSAB, Eqs. 4-6: MHSA + residual + LayerNorm + rFF)
    over the candidates with **no position input**, so each candidate's score does not depend on
    the order of the list (permutation equivariance); trained with the attention rank loss (Eq. 9,
    ``list_loss: attention_rank`` in SetRank.yaml; ``bce`` is the option beside it).

    Same encoder as PRM, without the position embedding of the retriever's order. Not implemented:
    the induced blocks (IMSAB) and the paper's initial-ranking position encodings (SetRank_init).
    """

    uses_position = False
