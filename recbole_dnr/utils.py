"""Registries: model and trainer look-up (ours first, then RecBole's), and our ModelType.

Mirrors RecBole-GNN's ``utils.get_model``/``get_trainer``, with two differences:
rerankers live in an explicit registry (so a test or a user can add a backbone with
:func:`register_model` and ``DNR_<Backbone>`` works for it at once), and an unknown name
fails with the list of known names instead of RecBole's lightgbm import crash.
"""

import importlib
import importlib.util
import os
import re
from enum import Enum

import recbole


class UserInputError(ValueError):
    """A mistake in what the user asked for (model, dataset, option, file): the message says what
    is wrong and how to fix it; the command line prints it without a traceback."""


class ModelType(Enum):
    """Plug-in model types; values are disjoint from RecBole's ``ModelType`` (1..6)."""

    RERANK = 8


_MODELS = {}
_DNR_CLASSES = {}
_RECBOLE_SUBMODULES = [
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
]


def register_model(cls):
    """Class decorator: make ``cls`` resolvable by name (and ``DNR_<name>`` if it is a backbone)."""
    _MODELS[cls.__name__] = cls
    return cls


def _ensure_builtin_models():
    importlib.import_module("recbole_dnr.model")


def reranker_names():
    _ensure_builtin_models()
    names = sorted(_MODELS)
    backbones = [n for n in names if getattr(_MODELS[n], "is_backbone", False) and n != "RecBoleReranker"]
    return names + [f"DNR_{b}" for b in backbones] + ["<RecBole model> with list_mode", "DNR_<RecBole model>"]


def recbole_model_names():
    """RecBole's model names, read from its package layout (no import of lightgbm/xgboost)."""
    root = os.path.join(os.path.dirname(recbole.__file__), "model")
    names = []
    for sub in _RECBOLE_SUBMODULES:
        folder = os.path.join(root, sub)
        for f in os.listdir(folder):
            if f.endswith(".py") and not f.startswith("_"):
                with open(os.path.join(folder, f), encoding="utf-8") as src:
                    found = re.findall(r"^class (\w+)\(", src.read(), flags=re.M)
                names += [c for c in found if c.lower() == f[:-3]]
    return sorted(names)


def recbole_class(model_name):
    """RecBole's model class ``model_name`` (never ours); a clear error if RecBole has none."""
    for sub in _RECBOLE_SUBMODULES:
        path = f"recbole.model.{sub}.{model_name.lower()}"
        if importlib.util.find_spec(path) is not None:
            module = importlib.import_module(path)
            if hasattr(module, model_name):
                return getattr(module, model_name)
    raise UserInputError(f"RecBole has no model '{model_name}'. RecBole models: {', '.join(recbole_model_names())}.")


def get_backbone(name, role=None):
    """Backbone class for DNR: one of ours (PRM, DLCM, ...), else RecBole model ``name`` as a
    reranker (:mod:`recbole_dnr.model.recbole_reranker`). ``role`` names the option that asked
    (``recbole_model``, ``ranker``) in the error; the default is ``DNR_<name>``."""
    _ensure_builtin_models()
    if name in _MODELS:
        backbone = _MODELS[name]
    else:
        from recbole_dnr.model.recbole_reranker import recbole_reranker_class

        try:
            backbone = recbole_reranker_class(name)
        except UserInputError:
            backbone = None
    if not getattr(backbone, "is_backbone", False):
        ours = [n for n in sorted(_MODELS) if getattr(_MODELS[n], "is_backbone", False)]
        raise UserInputError(f"{role or 'DNR_' + name}: '{name}' is not a reranker backbone. Backbones: {ours}, "
                             f"or any RecBole model name (e.g. SASRec, GRU4Rec, Caser, BPR).")
    return backbone


def _dnr_class(backbone_name):
    if backbone_name not in _DNR_CLASSES:
        from recbole_dnr.model.dnr import DNR

        get_backbone(backbone_name)
        _DNR_CLASSES[backbone_name] = type(
            f"DNR_{backbone_name}", (DNR,), {"backbone_name": backbone_name, "__module__": DNR.__module__}
        )
    return _DNR_CLASSES[backbone_name]


def get_model(model_name):
    """Model class for ``model_name``: our registry, then ``DNR_<Backbone>``, then RecBole's."""
    _ensure_builtin_models()
    if model_name in _MODELS:
        return _MODELS[model_name]
    if model_name.startswith("DNR_"):
        return _dnr_class(model_name[len("DNR_"):])
    for sub in _RECBOLE_SUBMODULES:
        path = f"recbole.model.{sub}.{model_name.lower()}"
        if importlib.util.find_spec(path) is not None:
            return getattr(importlib.import_module(path), model_name)
    raise UserInputError(
        f"Unknown model '{model_name}'. recbole_dnr models: {', '.join(reranker_names())}. "
        f"RecBole models: {', '.join(recbole_model_names())}."
    )


def get_trainer(model_type, model_name, model_class=None):
    """Trainer class: ``<Model>Trainer`` in recbole_dnr.trainer, the list trainer for rerankers
    (``model_class.trainer_name``), else RecBole's choice."""
    trainer_module = importlib.import_module("recbole_dnr.trainer")
    if model_type == ModelType.RERANK:
        model_class = model_class or get_model(model_name)
        return getattr(trainer_module, getattr(model_class, "trainer_name", "ListTrainer"))
    if hasattr(trainer_module, model_name + "Trainer"):
        return getattr(trainer_module, model_name + "Trainer")
    from recbole.utils import get_trainer as recbole_get_trainer

    return trainer_module.with_trusted_checkpoints(recbole_get_trainer(model_type, model_name))


def is_reranker(config):
    return config["MODEL_TYPE"] == ModelType.RERANK
