"""Serving a trained pipeline: :class:`Recommender` (Python API), ``recbole-dnr recommend`` (batch
CLI), ``python -m recbole_dnr.serve`` (HTTP service, extra ``[serve]``), and the reranker's
export for model servers (:mod:`.export`). docs/serving.md."""

from recbole_dnr.serve.recommender import Lists, Recommender

__all__ = ["Recommender", "Lists"]
