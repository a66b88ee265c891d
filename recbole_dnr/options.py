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

import yaml

from recbole_dnr.errors import UserInputError

INF = math.inf

# key: (kind, low, high, what); kind int | float | bool | int_list | float_list; bounds inclusive (None = no bound)
SPECS = {
    # RecBole's training keys that our trainers use
    "epochs": ("int", 0, None, "training epochs; 0 only for the parameter-free Retriever"),
    "train_batch_size": ("int", 1, None, "lists per training batch"),
    "eval_batch_size": ("int", 1, None, "lists per evaluation batch"),
    "learning_rate": ("float", 0, None, "Adam's step size, > 0"),
    "weight_decay": ("float", 0, None, "L2 weight decay"),
    "stopping_step": ("int", 1, None, "evaluations without improvement before early stopping"),
    "eval_step": ("int", 0, None, "epochs between evaluations (0: none)"),
    "seed": ("int", 0, None, "random seed"),
    "topk": ("int_list", 1, None, "cut-offs k of the metrics"),
    "reproducibility": ("bool", None, None, "deterministic torch kernels"),
    "resume": ("bool", None, None, "continue this run from its last saved epoch (docs/reliability.md)"),
    "resume_state": ("bool", None, None, "write the per-epoch resume state"),
    "download": ("bool", None, None, "fetch a missing dataset named in RecBole's url.yaml"),
    "download_timeout": ("float", 0, None, "seconds without data before a download fails, > 0"),
    # list protocol and retriever
    "candidate_num": ("int", 2, None, "candidates per request"),
    "slate_size": ("int", 1, None, "interactions per request"),
    "label_window": ("int", 1, None, "ratings after a request that define its positives"),
    "valid_slates": ("int", 0, None, "held-out requests per user for validation"),
    "test_slates": ("int", 1, None, "held-out requests per user for test"),
    "max_history": ("int", 1, None, "history items per request"),
    "filler_pool": ("int", 1, None, "retriever top items fillers are drawn from"),
    "crossfit_folds": ("int", 2, None, "folds of the cross-fitted retriever"),
    "retriever_embedding_size": ("int", 1, None, "retriever dimension"),
    "retriever_epochs": ("int", 1, None, "retriever training epochs"),
    "retriever_learning_rate": ("float", 0, None, "retriever step size, > 0"),
    "retriever_batch_size": ("int", 1, None, "retriever batch size"),
    "list_seed": ("int", 0, None, "seed of the list build"),
    "label_threshold": ("float", None, None, "rating from which an item counts as liked"),
    # rerankers
    "hidden_size": ("int", 1, None, "model dimension"),
    "inner_size": ("int", 1, None, "feed-forward dimension"),
    "n_layers": ("int", 1, None, "encoder layers"),
    "n_heads": ("int", 1, None, "attention heads"),
    "dropout_prob": ("float", 0, 1, "dropout probability in [0, 1)"),
    "attn_dropout_prob": ("float", 0, 1, "attention dropout probability in [0, 1)"),
    "history_feedback": ("bool", None, None, "history tokens carry each earlier item's feedback"),
    "history_layers": ("int", 1, None, "layers of the transformer history encoder"),
    "token_norm": ("bool", None, None, "LayerNorm the item embedding and the user state before they meet"),
    "embedding_init_std": ("float", 0, None, "std of the N(0, std) embedding init, > 0 (~ = torch's N(0, 1))"),
    "side_features": ("bool", None, None, "embed the loaded .item/.user fields into e_i and u"),
    "list_context": ("bool", None, None, "run the backbone's list encoder (False: each candidate alone)"),
    "position_embedding": ("bool", None, None, "add the retriever-order position embedding (~ = backbone's choice)"),
    # DNR
    "lambda_c": ("float", 0, 1, "noise share of x' = (1 - lambda_c) z + lambda_c eps, in [0, 1]"),
    "lambda_m": ("float", 0, None, "weight of L_z, >= 0"),
    "lambda_e": ("int", 0, None, "heuristic-noise epochs, >= 0"),
    "lambda_adv": ("float", 0, None, "weight of L_adv, >= 0"),
    "lambda_x": ("float", 0, None, "weight of L_x, >= 0"),
    "generator_hidden_size": ("int", 1, None, "generator MLP width"),
    "generator_learning_rate": ("float", 0, None, "generator step size, > 0"),
    "generator_steps": ("int", 0, None, "φ steps per θ step"),
    "kl_bins": ("int", 2, None, "histogram bins of L_x"),
    "use_learned_generator": ("bool", None, None, "learned noise after lambda_e"),
    "score_train_noise": ("float", 0, None, "σ of the training-time noise on x, >= 0 (0 = off)"),
    # --- EGRerank (model/rerankers/egrerank.py) ---
    "egr_evaluator_epochs": ("int", 1, None, "EGRerank's evaluator epochs before its generator's `epochs`"),
    "egr_rep": ("int", 2, None, "EGRerank's sampled trajectories per list (>= 2: the advantage is relative to the copies)"),
    "egr_gamma": ("float", 0, 1, "EGRerank's reward discount γ in [0, 1]"),
    "egr_clip": ("float", 0, 1, "EGRerank's PPO ratio clip ε in (0, 1)"),
    "egr_entropy_weight": ("float", 0, None, "EGRerank's entropy bonus, >= 0"),
    "egr_generator_learning_rate": ("float", 0, None, "EGRerank's generator step size, > 0"),
    "egr_generator_weight_decay": ("float", 0, None, "EGRerank's generator L2, >= 0"),
    "egr_encoder_layers": ("int_list", 1, None, "EGRerank's generator encoder widths"),
    "egr_decoder_hidden": ("int", 1, None, "EGRerank's generator LSTMCell width"),
    "egr_pointer_layers": ("int_list", 1, None, "EGRerank's pointer MLP widths"),
    # --- end EGRerank ---
    # --- NAR4Rec (model/rerankers/nar4rec.py) ---
    "nar_decoder_layers": ("int", 1, None, "NAR4Rec's position-decoder layers"),
    "nar_alphas": ("float_list", 0, 1, "NAR4Rec's contrastive-decoding weights α in [0, 1], one sequence each"),
    "nar_utility_threshold": ("float", 0, None, "NAR4Rec's liked items for a positive target, >= 0"),
    "nar_cl_margin": ("float", 0, 2, "NAR4Rec's SimCTG margin in [0, 2]"),
    "nar_cl_weight": ("float", 0, None, "NAR4Rec's contrastive-loss weight, >= 0"),
    "nar_evaluator_weight": ("float", 0, None, "NAR4Rec's evaluator-BCE weight, >= 0"),
    # --- end NAR4Rec ---
}
# string options: key -> allowed values; the modules that act on them read their tuples from here
# (corr_sampler's registry maps names to classes: a test checks that it and this list agree)
CHOICES = {
    "list_mode": ("slate", "retrieve"),
    "retriever_fit": ("holdout", "crossfit"),
    "list_order": ("retriever", "shuffled"),
    "eval_positives": ("candidates", "window"),
    "retriever_loader": ("fast", "recbole"),
    "retriever_search": ("exact", "ann"),
    "filler_sampling": ("uniform", "popularity", "retriever"),
    "score_norm": ("minmax", "sigmoid"),
    "score_fusion": ("none", "early", "late", "weight"),
    "noise": ("gaussian", "beta"),
    "generator_form": ("residual", "direct", "conditioned"),
    "corr_mode": ("joint", "alternating"),
    "corr_sampler": ("exact", "uniform"),
    "corr_ranker_loss": ("softmax", "own"),
    "ann_index": ("ivf", "hnsw"),
    "noise_squash": ("clamp", "minmax"),
    "history_encoder": ("mean", "gru", "transformer"),
    "user_interaction": ("add", "product"),
}
_STRICTLY_POSITIVE = {"download_timeout", "embedding_init_std", "learning_rate", "retriever_learning_rate", "generator_learning_rate"}
_BELOW_ONE = {"dropout_prob", "attn_dropout_prob"}
_STRICTLY_POSITIVE |= {"egr_clip", "egr_generator_learning_rate"}  # EGRerank
_BELOW_ONE |= {"egr_clip"}  # EGRerank  # 1 itself would zero every activation

# keys RecBole or our launcher put in a config that no yaml declares
EXTRA_KNOWN = {"model", "dataset", "config_files", "local_rank", "world_size", "nproc", "offset", "ip", "port",
               "single_spec", "device", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "ranker", "backbone"}


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check(cfg):
    """Raise :class:`UserInputError` on the first option of ``cfg`` (a dict-like) whose type or
    range is wrong; options absent from ``cfg`` are not checked."""
    for key, (kind, lo, hi, what) in SPECS.items():
        if key not in cfg or cfg[key] is None:
            continue
        value = cfg[key]
        listed = kind in ("int_list", "float_list")
        values = value if listed else [value]
        if listed and isinstance(value, numbers.Real) and not isinstance(value, bool):
            values = [value]
        ok = isinstance(values, (list, tuple)) and len(values) > 0
        for v in values if ok else []:
            if kind == "bool":
                ok = isinstance(v, bool)
            elif kind in ("int", "int_list"):
                ok = _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
            else:
                ok = (_is_number(v) and math.isfinite(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
                      and not (key in _STRICTLY_POSITIVE and v <= 0) and not (key in _BELOW_ONE and v >= 1))
            if not ok:
                break
        if not ok:
            raise UserInputError(f"{key}={value!r}: expected {_describe(key, kind, lo, hi)} ({what})")
    for key, allowed in CHOICES.items():
        if key in cfg and cfg[key] is not None and cfg[key] not in allowed:
            close = difflib.get_close_matches(str(cfg[key]), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UserInputError(f"{key}={cfg[key]!r}: expected one of {', '.join(allowed)}{hint}")
    _check_together(cfg)


def _check_together(cfg):
    """Options whose allowed values depend on each other."""
    if cfg.get("epochs") == 0 and cfg.get("model") != "Retriever":
        raise UserInputError(f"epochs=0: {cfg.get('model')} has parameters to train; set epochs >= 1")
    if (cfg.get("score_train_noise") or 0) > 0 and str(cfg.get("model", "")).startswith("DNR"):
        raise UserInputError(f"score_train_noise={cfg['score_train_noise']}: it is a baseline for DNR (a plain backbone "
                             f"trained on noisy x); {cfg['model']} trains on its own synthetic x'. Set "
                             "score_train_noise: 0, or use the backbone alone (e.g. --model=PRM)")
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


def _describe(key, kind, lo, hi):
    name = {"int": "an integer", "float": "a number", "bool": "True or False",
            "int_list": "a list of integers", "float_list": "a list of numbers"}[kind]
    if key in _STRICTLY_POSITIVE:
        return f"{name} > 0"
    if key in _BELOW_ONE:
        return f"{name} in [0, 1)"
    if lo is not None and hi is not None:
        return f"{name} in [{lo}, {hi}]"
    if lo is not None:
        return f"{name} >= {lo}"
    return name


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
    """Warnings for the keys of ``given`` that no yaml (ours or RecBole's, any model), RecBole
    category or launcher declares, each with the closest known key."""
    known = set(known) | EXTRA_KNOWN
    notes = []
    for key in sorted(set(given) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        notes.append(f"unknown option {key!r} is ignored by recbole_dnr and RecBole{hint}")
    return notes
