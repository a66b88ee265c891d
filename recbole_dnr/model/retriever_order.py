"""The x-only floor (``--model=Retriever``): the candidates in the retriever's order, by x alone."""

from recbole_dnr.fields import SCORE
from recbole_dnr.model.abstract_reranker import ListRecommender
from recbole_dnr.registry import register_model


@register_model
class RetrieverOrder(ListRecommender):
    """No parameters: ``predict`` returns x ``[B, n]``. Every reranker must beat it.

    Registered as ``Retriever``: the name every config, grid and result table uses."""

    registry_name = "Retriever"
    trainable = False

    def calculate_loss(self, interaction):
        raise RuntimeError("the Retriever floor has nothing to train")

    def predict(self, interaction):
        return interaction[SCORE]
