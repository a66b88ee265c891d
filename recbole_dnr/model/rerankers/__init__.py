"""Our reranker backbones, one file each on :class:`~recbole_dnr.model.abstract_reranker.NeuralReranker`."""

from recbole_dnr.model.rerankers.dcdr import DCDR
from recbole_dnr.model.rerankers.diffurec import DiffuRec
from recbole_dnr.model.rerankers.dlcm import DLCM
from recbole_dnr.model.rerankers.egrerank import EGRerank
from recbole_dnr.model.rerankers.midnn import MiDNN
from recbole_dnr.model.rerankers.mir import MIR
from recbole_dnr.model.rerankers.nar4rec import NAR4Rec
from recbole_dnr.model.rerankers.pier import PIER
from recbole_dnr.model.rerankers.prm import PRM
from recbole_dnr.model.rerankers.setrank import SetRank

__all__ = ["PRM", "DLCM", "MiDNN", "SetRank", "PIER", "MIR", "EGRerank", "NAR4Rec", "DiffuRec", "DCDR"]
