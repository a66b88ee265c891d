"""Models: reranker bases, backbones (PRM, DLCM), the Retriever floor, DNR and its noise generators."""

from recbole_dnr.model.abstract_reranker import ListRecommender, NeuralReranker, ScoreFeature
from recbole_dnr.model.dlcm import DLCM
from recbole_dnr.model.dnr import DNR
from recbole_dnr.model.prm import PRM
from recbole_dnr.model.retriever import Retriever

__all__ = ["ListRecommender", "NeuralReranker", "ScoreFeature", "PRM", "DLCM", "Retriever", "DNR"]
