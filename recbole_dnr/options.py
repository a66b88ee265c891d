"""Type and range checks of the options a run relies on, and warnings for unknown (mistyped) keys.

Checked when the :class:`~recbole_dnr.config.Config` is built, before any data is read: a wrong
value fails with the option's name, the value given and what is allowed, instead of a traceback
from deep inside RecBole or torch minutes later.
"""

import difflib
import functools
import math
import numbers
import os
from typing import NamedTuple

import yaml

from recbole_dnr.errors import UserInputError


class Option(NamedTuple):
    """An option's spec: ``kind`` int | float | bool | int_list | float_list | choice; ``lo``/``hi`` bounds (None =
    none), inclusive unless ``open_lo``/``open_hi``; ``choices`` the allowed strings of a choice."""

    kind: str
    what: str = ""
    lo: object = None
    hi: object = None
    open_lo: bool = False
    open_hi: bool = False
    choices: tuple = ()


def integer(what, lo=None, hi=None):
    return Option("int", what, lo, hi)


def integers(what, lo=None):
    """A list of integers (a single integer is read as a list of one)."""
    return Option("int_list", what, lo)


def numbers_(what, lo=None, hi=None):
    """A list of numbers (a single number is read as a list of one)."""
    return Option("float_list", what, lo, hi)


def number(what, lo=None, hi=None, open_lo=False, open_hi=False):
    return Option("float", what, lo, hi, open_lo, open_hi)


def flag(what):
    return Option("bool", what)


def choice(*allowed):
    return Option("choice", choices=tuple(allowed))


# The pipeline's keys (training loop, list protocol, retriever). A model's own keys are declared by
# its class (``options = {...}``, merged along the class hierarchy by ``option_specs``).
OPTIONS = {
    # RecBole's training keys that our trainers use
    "epochs": integer("training epochs; 0 only for the parameter-free Retriever", 0),
    "train_batch_size": integer("lists per training batch", 1),
    "eval_batch_size": integer("lists per evaluation batch", 1),
    "learning_rate": number("Adam's step size, > 0", 0, open_lo=True),
    "weight_decay": number("L2 weight decay", 0),
    "stopping_step": integer("evaluations without improvement before early stopping", 1),
    "eval_step": integer("epochs between evaluations (0: none)", 0),
    "seed": integer("random seed", 0),
    "topk": integers("cut-offs k of the metrics", 1),
    "reproducibility": flag("deterministic torch kernels"),
    "resume": flag("continue this run from its last saved epoch (docs/reliability.md)"),
    "resume_state": flag("write the per-epoch resume state"),
    "download": flag("fetch a missing dataset named in RecBole's url.yaml"),
    "download_timeout": number("seconds without data before a download fails, > 0", 0, open_lo=True),
    # list protocol and retriever
    "candidate_num": integer("candidates per request", 2),
    "slate_size": integer("interactions per request", 1),
    "label_window": integer("ratings after a request that define its positives", 1),
    "valid_slates": integer("held-out requests per user for validation", 0),
    "test_slates": integer("held-out requests per user for test", 1),
    "max_history": integer("history items per request", 1),
    "filler_pool": integer("retriever top items fillers are drawn from", 1),
    "crossfit_folds": integer("folds of the cross-fitted retriever", 2),
    "retriever_embedding_size": integer("retriever dimension", 1),
    "retriever_epochs": integer("retriever training epochs", 1),
    "retriever_learning_rate": number("retriever step size, > 0", 0, open_lo=True),
    "retriever_batch_size": integer("retriever batch size", 1),
    "list_seed": integer("seed of the list build", 0),
    "label_threshold": number("rating from which an item counts as liked"),
    "list_mode": choice("slate", "retrieve"),
    "retriever_fit": choice("holdout", "crossfit"),
    "list_order": choice("retriever", "shuffled"),
    "eval_positives": choice("candidates", "window"),
    "retriever_loader": choice("fast", "recbole"),
    "retriever_search": choice("exact", "ann"),
    "filler_sampling": choice("uniform", "popularity", "retriever"),
    "score_norm": choice("minmax", "sigmoid"),
    "ann_index": choice("ivf", "hnsw"),
}

# keys RecBole or our launcher put in a config that no yaml declares
EXTRA_KNOWN = {"model", "dataset", "config_files", "local_rank", "world_size", "nproc", "offset", "ip", "port",
               "single_spec", "device", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "ranker", "backbone",
               "extra_keys"}  # extra_keys: the keys of the user's own that unknown_keys lets through


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def model_options(model_class, cfg):
    """The options ``model_class`` declares (its ``option_specs(cfg)``); none for a class without
    (RecBole's own models)."""
    specs = getattr(model_class, "option_specs", None)
    return specs(cfg) if specs is not None else {}


def check(cfg, model_class=None):
    """Raise :class:`UserInputError` on the first option of ``cfg`` (a dict-like) whose type or
    range is wrong: the pipeline's keys, and those ``model_class`` declares; options absent from
    ``cfg`` are not checked."""
    for key, spec in {**OPTIONS, **model_options(model_class, cfg)}.items():
        if key in cfg and cfg[key] is not None:
            check_value(key, spec, cfg[key])
    _check_together(cfg, model_class)


def _in_range(v, spec):
    return ((spec.lo is None or (v > spec.lo if spec.open_lo else v >= spec.lo))
            and (spec.hi is None or (v < spec.hi if spec.open_hi else v <= spec.hi)))


def check_value(key, spec, value):
    """Raise :class:`UserInputError` naming ``key``, ``value`` and what ``spec`` allows, unless it fits."""
    if spec.kind == "choice":
        if value not in spec.choices:
            close = difflib.get_close_matches(str(value), spec.choices, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UserInputError(f"{key}={value!r}: expected one of {', '.join(spec.choices)}{hint}")
        return
    listed = spec.kind in ("int_list", "float_list")
    values = value if listed and isinstance(value, (list, tuple)) else [value]
    ok = isinstance(values, (list, tuple)) and len(values) > 0
    for v in values if ok else []:
        if spec.kind == "bool":
            ok = isinstance(v, bool)
        elif spec.kind in ("int", "int_list"):
            ok = _is_int(v) and _in_range(v, spec)
        else:
            ok = _is_number(v) and math.isfinite(v) and _in_range(v, spec)
        if not ok:
            break
    if not ok:
        raise UserInputError(f"{key}={value!r}: expected {_describe(spec)} ({spec.what})")


def _check_together(cfg, model_class):
    """Options whose allowed values depend on each other."""
    if cfg.get("epochs") == 0 and getattr(model_class, "trainable", True):
        raise UserInputError(f"epochs=0: {cfg.get('model')} has parameters to train; set epochs >= 1")
    if cfg.get("resume") and cfg.get("resume_state") is False:
        raise UserInputError("resume: True continues from the per-epoch resume state, which resume_state: False "
                             "turns off: set resume_state: True")
    n, size = cfg.get("candidate_num"), cfg.get("slate_size")
    topk = cfg.get("topk")
    if n is not None and topk is not None:
        ks = [topk] if isinstance(topk, numbers.Integral) else list(topk)
        if max(ks) > n:
            raise UserInputError(f"topk={topk!r}: every cut-off must be <= candidate_num ({n}): a list has {n} items")
    if (cfg.get("filler_sampling") == "retriever" and cfg.get("list_mode", "slate") == "slate"
            and n is not None and size is not None and cfg.get("filler_pool") is not None
            and cfg["filler_pool"] < n - size):
        raise UserInputError(f"filler_pool={cfg['filler_pool']}: fillers are drawn from the retriever's top "
                             f"filler_pool items and each list needs candidate_num - slate_size = {n - size}; "
                             f"set filler_pool >= {n - size}")


def _describe(spec):
    name = {"int": "an integer", "float": "a number", "bool": "True or False",
            "int_list": "a list of integers", "float_list": "a list of numbers"}[spec.kind]
    allowed = bounds(spec)
    return f"{name} {allowed}" if allowed else name


def bounds(spec):
    """What a numeric ``spec`` allows, e.g. ``>= 2``, ``in [0, 1)``, ``> 0``; "" when unbounded."""
    lo, hi = spec.lo, spec.hi
    if lo is not None and hi is not None:
        return f"in {'(' if spec.open_lo else '['}{lo}, {hi}{')' if spec.open_hi else ']'}"
    if lo is not None:
        return f"{'>' if spec.open_lo else '>='} {lo}"
    if hi is not None:
        return f"{'<' if spec.open_hi else '<='} {hi}"
    return ""


@functools.lru_cache(maxsize=None)
def declared_keys(*folders):
    """Every key of every yaml under ``folders`` (a key of another model is not a typo), except
    ``experiments/``: those files set options declared elsewhere, so a typo in one is still caught."""
    keys = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "experiments"]
            for name in files:
                if name.endswith(".yaml"):
                    with open(os.path.join(root, name), encoding="utf-8") as f:
                        loaded = yaml.safe_load(f)
                    if isinstance(loaded, dict):
                        keys |= set(map(str, loaded))
    return frozenset(keys)


def unknown_keys(given, known):
    """Notes for the keys of ``given`` that no yaml (ours or RecBole's, any model), RecBole category
    or launcher declares. A key close to a known one is a typo that would train minutes with the
    default: a :class:`UserInputError` naming the closest key, unless ``extra_keys`` lists it."""
    extra = given.get("extra_keys") or []
    if isinstance(extra, str):  # --extra_keys=my_key
        extra = [extra]
    known = set(known) | EXTRA_KNOWN | set(map(str, extra))
    notes, typos = [], []
    for key in sorted(set(given) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        if close:
            typos.append(f"unknown option {key!r}: did you mean {close[0]}?")
        else:
            notes.append(f"unknown option {key!r} is read by neither recbole_dnr nor RecBole")
    if typos:
        keys = ", ".join(repr(t.split("'")[1]) for t in typos)
        raise UserInputError("; ".join(typos) + f" (a key of your own: list it in extra_keys, "
                             f"e.g. --extra_keys=\"[{keys}]\")")
    return notes
