"""Kept for code written against recbole_dnr 0.1 (``from recbole_dnr.utils import register_model``):
the names now live in :mod:`recbole_dnr.errors`, :mod:`recbole_dnr.registry`, :mod:`recbole_dnr.trainer` and
:mod:`recbole_dnr.recbole_models`. Nothing inside the package imports this module."""

from recbole_dnr.errors import ModelType, UserInputError  # noqa: F401
from recbole_dnr.recbole_models import recbole_class, recbole_model_names  # noqa: F401
from recbole_dnr.registry import get_backbone, get_model, is_reranker, register_model, reranker_names  # noqa: F401
from recbole_dnr.trainer import get_trainer  # noqa: F401
