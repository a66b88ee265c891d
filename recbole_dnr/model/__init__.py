"""Models: reranker bases, backbones (rerankers/: PRM, DLCM, MiDNN, SetRank, PIER, MIR, EGRerank, NAR4Rec,
DiffuRec, DCDR), RecBole's models as rerankers, the Retriever floor, DNR and its noise generators, CoRR."""

from recbole_dnr.model.abstract_reranker import ListBackbone, ListRecommender, NeuralReranker, ScoreFeature
from recbole_dnr.model.corr import CoRR
from recbole_dnr.model.dnr import DNR
from recbole_dnr.model.recbole_reranker import RecBoleReranker
from recbole_dnr.model.rerankers import DCDR, DLCM, PIER, PRM, DiffuRec, MiDNN, SetRank
from recbole_dnr.model.retriever_order import RetrieverOrder

__all__ = ["ListRecommender", "ListBackbone", "NeuralReranker", "ScoreFeature", "PRM", "DLCM", "MiDNN",
           "SetRank", "PIER", "RecBoleReranker", "RetrieverOrder", "DNR", "CoRR"]
