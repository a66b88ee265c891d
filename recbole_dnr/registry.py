"""Model and trainer look-up: ours first, then RecBole's (RecBole-GNN's ``get_model``/``get_trainer``).

Rerankers live in an explicit registry (a test or a user adds a backbone with
:func:`register_model`, and ``DNR_<Backbone>`` works for it at once); names no class was
registered under go to the *resolvers* the model package registers (``DNR_<X>``, a RecBole model
as a reranker). The built-in models are found by importlib, as RecBole and RecBole-GNN find theirs,
so this floor module imports nothing above it. An unknown name fails with every known name instead
of RecBole's lightgbm import crash.
"""

import importlib

from recbole_dnr.errors import ModelType, UserInputError
from recbole_dnr.recbole_models import find_recbole_class, recbole_model_names

_MODELS = {}
_RESOLVERS = {}  # kind -> fn(name) -> class or None; kinds: "model" (full names), "backbone"


def register_model(cls):
    """Class decorator: make ``cls`` resolvable by :func:`model_name` (and ``DNR_<name>`` if it is
    a backbone)."""
    _MODELS[model_name(cls)] = cls
    return cls


def model_name(cls):
    """The name a model class goes by in configs, logs and results: its ``registry_name`` where it
    sets one (``RetrieverOrder`` is ``Retriever``), else its class name."""
    return cls.__dict__.get("registry_name", cls.__name__)


def register_resolver(kind, fn):
    """``fn(name)`` -> a class or None, asked for names no class was registered under; ``kind`` is
    ``model`` (any model name, e.g. ``DNR_<X>``) or ``backbone`` (a reranker backbone, e.g. a
    RecBole model as reranker)."""
    _RESOLVERS.setdefault(kind, []).append(fn)


def _ensure_builtin_models():
    importlib.import_module("recbole_dnr.model")  # registers our models and the resolvers


def _resolve(kind, name):
    for fn in _RESOLVERS.get(kind, []):
        cls = fn(name)
        if cls is not None:
            return cls
    return None


def reranker_names():
    _ensure_builtin_models()
    names = sorted(_MODELS)
    backbones = [n for n in names if getattr(_MODELS[n], "is_backbone", False) and n != "RecBoleReranker"
                 and not getattr(_MODELS[n], "trainer_name", None)]  # own phases: not wrappable (get_backbone)
    return names + [f"DNR_{b}" for b in backbones] + ["<RecBole model> with list_mode", "DNR_<RecBole model>"]


def get_backbone(name, role=None):
    """Backbone class for DNR: one of ours (PRM, DLCM, ...), else RecBole model ``name`` as a
    reranker. ``role`` names the option that asked (``recbole_model``, ``ranker``) in the error;
    the default is ``DNR_<name>``."""
    _ensure_builtin_models()
    backbone = _MODELS[name] if name in _MODELS else _resolve("backbone", name)
    if not getattr(backbone, "is_backbone", False):
        ours = [n for n in sorted(_MODELS) if getattr(_MODELS[n], "is_backbone", False)]
        raise UserInputError(f"{role or 'DNR_' + name}: '{name}' is not a reranker backbone. Backbones: {ours}, "
                             f"or any RecBole model name (e.g. SASRec, GRU4Rec, Caser, BPR).")
    own = getattr(backbone, "trainer_name", None)
    if own:  # e.g. EGRerank's PPO phase: a wrapper's trainer would train only its per-candidate scorer
        raise UserInputError(f"{role or 'DNR_' + name}: '{name}' trains in phases of its own ({own}) that a wrapper's "
                             f"trainer does not run, so its generator would stay untrained; use --model={name} alone")
    return backbone


def get_model(model_name):
    """Model class for ``model_name``: our registry, then the resolvers (``DNR_<Backbone>``), then RecBole's."""
    _ensure_builtin_models()
    if model_name in _MODELS:
        return _MODELS[model_name]
    cls = _resolve("model", model_name) or find_recbole_class(model_name)
    if cls is not None:
        return cls
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
