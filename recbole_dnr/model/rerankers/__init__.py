"""Our reranker backbones, one file each on :class:`~recbole_dnr.model.abstract_reranker.NeuralReranker`."""

from recbole_dnr.model.rerankers.dlcm import DLCM
from recbole_dnr.model.rerankers.egrerank import EGRerank
from recbole_dnr.model.rerankers.midnn import MiDNN
from recbole_dnr.model.rerankers.nar4rec import NAR4Rec
from recbole_dnr.model.rerankers.pier import PIER
from recbole_dnr.model.rerankers.prm import PRM
from recbole_dnr.model.rerankers.setrank import SetRank

__all__ = ["PRM", "DLCM", "MiDNN", "SetRank", "PIER", "EGRerank", "NAR4Rec"]
