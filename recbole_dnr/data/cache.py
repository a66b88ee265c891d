"""Where built lists are cached: the key of everything that determines them, and the file paths
(the lists, and the retrievers' vectors beside them)."""

import hashlib
import json
import os

from recbole_dnr import storage
from recbole_dnr.retrieval import recbole_retriever

CACHE_VERSION = 2
PROTOCOL_KEYS = [
    "list_mode", "candidate_num", "slate_size", "label_threshold", "max_history", "valid_slates",
    "test_slates", "filler_sampling", "filler_pool", "label_window", "retriever_fit", "crossfit_folds",
    "score_norm", "drop_no_positive_eval", "user_inter_num_interval", "item_inter_num_interval",
    "load_col", *recbole_retriever.RETRIEVER_KEYS,
]


def list_seed(config):
    """Seed of everything that builds the lists (retriever, fillers, folds): ``list_seed``, else
    ``seed``. Fixing ``list_seed`` varies only the reranker across ``seed`` s."""
    return config["list_seed"] if config["list_seed"] is not None else config["seed"]


def source_fingerprint(data_path, dataset_name):
    """``[(file name, size, sha256)]`` of the dataset's atomic files in ``data_path``."""
    # content, not mtime: a re-copied, unchanged data folder (new mtimes) keeps its lists
    files = sorted(f for f in os.listdir(data_path) if f.startswith(dataset_name + "."))
    return [(f, os.path.getsize(os.path.join(data_path, f)), storage.file_digest(os.path.join(data_path, f)))
            for f in files]


def cache_key(config, dataset_name, fingerprint):
    """Hash of everything that determines the lists: data files, protocol, retriever, seed."""
    keys = set(PROTOCOL_KEYS) | set(config.parameters["Dataset"])  # RecBole's loading/filtering keys
    payload = {k: config[k] for k in sorted(keys - {"seed", "list_seed"})}
    payload["list_seed"] = list_seed(config)
    payload.update({k: config[k] for k, old in recbole_retriever.LATER_KEYS.items() if config[k] != old})
    payload.update(dataset=dataset_name, files=fingerprint, version=CACHE_VERSION)
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def lists_path(config, dataset_name, key):
    """``<checkpoint_dir>/lists/<dataset>-<key>.pth``."""
    return os.path.join(config["checkpoint_dir"], "lists", f"{dataset_name}-{key}.pth")


def beside(path, tag):
    """A file cached beside the lists ``path``: ``<dataset>-<key>-<tag>.pth``."""
    return path[:-len(".pth")] + f"-{tag}.pth"
