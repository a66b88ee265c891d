"""The retriever stage: a RecBole model trained as the retriever (``recbole_retriever``), exact and
approximate top-k over its vectors (``topk``, ``ann``), and the retriever as a trainable stage for
CoRR (Huang et al. WWW 2023): retriever models, negative samplers over the retriever's
distribution, and the sampled-softmax / distillation losses. ``recbole_dnr.data`` builds candidate
lists from whatever retriever vectors it is handed."""

from recbole_dnr.retrieval.losses import distillation_kl, sampled_softmax_loss
from recbole_dnr.retrieval.mf import MFRetriever
from recbole_dnr.retrieval.sampler import ExactSoftmaxSampler, UniformSampler, get_sampler
from recbole_dnr.retrieval.sequential import SequentialRetriever

__all__ = ["MFRetriever", "SequentialRetriever", "ExactSoftmaxSampler", "UniformSampler", "get_sampler", "sampled_softmax_loss",
           "distillation_kl"]
