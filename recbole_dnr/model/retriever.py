"""The ``Retriever`` floor: rank the candidates by the retriever's score x alone."""

from recbole_dnr.fields import SCORE
from recbole_dnr.model.abstract_reranker import ListRecommender
from recbole_dnr.registry import register_model


@register_model
class Retriever(ListRecommender):
    """No parameters: ``predict`` returns x ``[B, n]``. Every reranker must beat it."""

    def calculate_loss(self, interaction):
        raise RuntimeError("Retriever has nothing to train")

    def predict(self, interaction):
        return interaction[SCORE]
