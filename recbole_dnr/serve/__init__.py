"""Serving a trained pipeline: :class:`Recommender` (Python API), ``recbole-dnr recommend`` (batch
CLI), ``recbole-dnr serve`` (HTTP service, extra ``[serve]``), ``recbole-dnr export`` (a bundle
that serves with no dataset), and the reranker's export for model servers (:mod:`.export`).
docs/serving.md."""

from recbole_dnr.serve.recommender import Lists, Recommender

__all__ = ["Recommender", "Lists"]
