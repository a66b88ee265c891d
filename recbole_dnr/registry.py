"""Model look-up: ours first, then RecBole's (RecBole-GNN's ``get_model``).

Rerankers live in an explicit registry (a test or a user adds a backbone with
:func:`register_model`, and ``DNR_<Backbone>`` works for it at once); names no class was
registered under go to the *resolvers* the model package registers (``DNR_<X>``, a RecBole model
as a reranker). This floor module imports nothing above it: the models are loaded, on the first
look-up, by the *sources* added with :func:`add_model_source` (``recbole_dnr/__init__`` adds the
built-in model package) and by the entry points of the group ``recbole_dnr.models`` (a
third-party package's rerankers). An unknown name fails with the closest known name and ours,
instead of RecBole's lightgbm import crash. The trainer look-up lives above the models: ``recbole_dnr.trainer``.
"""

import difflib
from importlib import metadata

from recbole_dnr.errors import ModelType, UserInputError
from recbole_dnr.recbole_models import find_recbole_class, recbole_model_names

ENTRY_POINT_GROUP = "recbole_dnr.models"
# User keys that ask for the list pipeline: with one of them a RecBole model name
# (``--model=SASRec --list_mode=slate``) means that model as a reranker of our lists.
LIST_KEYS = ("list_mode", "candidate_num", "slate_size", "score_fusion")
_MODELS = {}
_RESOLVERS = {}  # kind -> fn(name) -> class or None; kinds: "model" (full names), "backbone"
_SOURCES = []  # callables that register models when first needed
_loaded = {"sources": 0, "entry_points": False}


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


def add_model_source(load):
    """``load()`` registers models (imports a package whose classes use :func:`register_model`);
    called once, before the first look-up."""
    _SOURCES.append(load)


def _entry_points():
    found = metadata.entry_points()
    if hasattr(found, "select"):
        return found.select(group=ENTRY_POINT_GROUP)
    return found.get(ENTRY_POINT_GROUP, [])  # Python 3.9


def _ensure_builtin_models():
    while _loaded["sources"] < len(_SOURCES):  # a source added later (a plug-in imported late) runs too
        _loaded["sources"] += 1
        _SOURCES[_loaded["sources"] - 1]()
    if not _loaded["entry_points"]:
        _loaded["entry_points"] = True
        for entry in _entry_points():
            loaded = entry.load()  # a module (importing it registers), a model class, or a function
            if isinstance(loaded, type):
                register_model(loaded)
            elif callable(loaded):
                loaded()


def _resolve(kind, name):
    for fn in _RESOLVERS.get(kind, []):
        cls = fn(name)
        if cls is not None:
            return cls
    return None


def reranker_names():
    _ensure_builtin_models()
    names = sorted(_MODELS)
    backbones = [n for n in names if getattr(_MODELS[n], "is_backbone", False) and _typed(n)
                 and not getattr(_MODELS[n], "trainer_name", None)]  # own phases: not wrappable (get_backbone)
    return names + [f"DNR_{b}" for b in backbones] + ["<RecBole model> with list_mode", "DNR_<RecBole model>"]


def _typed(name):
    # a class sets ``user_facing = False`` when no one types its name (a generic wrapper, an adapter)
    return _MODELS[name].__dict__.get("user_facing", True) if name in _MODELS else True


def user_model_names():
    """The model names of ours a user types: ``--help`` lists them, an unknown name gets the closest."""
    return [n for n in reranker_names() if "<" not in n and _typed(n)]


def _closest_model(name):
    """The known model name closest to ``name`` (any case; ours, RecBole's, ``DNR_<RecBole model>``), or None."""
    recbole = recbole_model_names()
    by_lower = {n.lower(): n for n in [*recbole, *[f"DNR_{r}" for r in recbole], *user_model_names()]}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def get_backbone(name, role=None):
    """Backbone class for DNR: one of ours (PRM, DLCM, ...), else RecBole model ``name`` as a
    reranker. ``role`` names the option that asked (``recbole_model``, ``ranker``) in the error;
    the default is ``DNR_<name>``."""
    _ensure_builtin_models()
    backbone = _MODELS[name] if name in _MODELS else _resolve("backbone", name)
    if not getattr(backbone, "is_backbone", False):
        ours = [n for n in sorted(_MODELS) if getattr(_MODELS[n], "is_backbone", False) and _typed(n)]
        close = _closest_model(name)
        hint = f" Did you mean {close}?" if close and not close.startswith("DNR_") else ""
        raise UserInputError(f"{role or 'DNR_' + name}: '{name}' is not a reranker backbone.{hint} Backbones: {ours}, "
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
    close = _closest_model(model_name)
    hint = f" Did you mean {close}?" if close else ""
    raise UserInputError(
        f"Unknown model '{model_name}'.{hint} recbole_dnr models: {', '.join(user_model_names())}; or any RecBole "
        f"model (SASRec, GRU4Rec, BPR, ...), as RecBole runs it, as a reranker with list_mode, "
        f"or as DNR_<RecBole model>."
    )


def resolve_model(model, given):
    """The class a run's ``model`` (a name or a class) means, given the user's keys ``given``:
    ``DNR`` + ``backbone: X`` is ``DNR_X``; ``RecBoleReranker`` + ``recbole_model: X`` and a RecBole
    model with a list key (:data:`LIST_KEYS`) are that RecBole model as a reranker; else :func:`get_model`."""
    if model == "DNR" and "backbone" in given:
        model = f"DNR_{given['backbone']}"
    if model == "RecBoleReranker":
        if not given.get("recbole_model"):
            raise UserInputError("model RecBoleReranker needs recbole_model: <RecBole model> (e.g. SASRec)")
        return get_backbone(given["recbole_model"], role="recbole_model")
    model_class = model if not isinstance(model, str) else get_model(model)
    if model_class.type != ModelType.RERANK and any(k in given for k in LIST_KEYS):
        return get_backbone(model_class.__name__, role=f"--model={model_class.__name__} with list keys")
    return model_class


def is_reranker(config):
    return config["MODEL_TYPE"] == ModelType.RERANK
