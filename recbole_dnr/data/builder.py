"""The list builder: trains the retriever (and a cross-fit's fold retrievers) on a
:class:`~recbole_dnr.data.dataset.ListDataset`'s training period, builds every request's candidate
list, caches the lists and their statistics, retrieves lists anew for a trainable retriever (CoRR)
and gives a checkpoint its serving snapshot (protocol: docs/protocol.md).

A split's batch is an ``Interaction`` with, per request: ``user_id [B]``, candidates
``item_id [B, n]``, retriever scores x ``score [B, n]`` in [0, 1], feedback z ``label [B, n]``,
``slate_mask [B, n]``, history ``history_item [B, H]``, ``history_label [B, H]``,
``history_len [B]``, ``request_id [B]``.
"""

import contextlib
import json
import logging
import os

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import set_color

from recbole_dnr import protocol, storage
from recbole_dnr.data import cache, statistics
from recbole_dnr.data.candidates import candidate_lists, shuffle_candidates
from recbole_dnr.data.request_set import RequestSet
from recbole_dnr.errors import UserInputError
from recbole_dnr.evaluator.metrics import list_auc
from recbole_dnr.evaluator.retrieval import retrieval_ndcg
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.retrieval import recbole_retriever
from recbole_dnr.version import VERSION

SERVING_FORMAT = 1  # layout of ListBuilder.serving_state in a checkpoint
SPLIT_NAMES = ["train", "valid", "test"]


class ListBuilder:
    """Builds (or loads) the train/valid/test :class:`RequestSet` s of one ``ListDataset``; each
    split it returns carries it as ``split.lists``, so what was built with the lists (``stats``,
    the holdout retriever's vectors) travels with them."""

    def __init__(self, dataset):
        self.dataset, self.config = dataset, dataset.config
        self.stats = {}
        self._fingerprint = None
        self._holdout_vectors = None

    @property
    def list_seed(self):
        return cache.list_seed(self.config)

    # ------------------------------------------------------------------ cache
    def source_fingerprint(self):
        """``[(file name, size, sha256)]`` of the dataset's atomic files (hashed once per builder)."""
        if self._fingerprint is None:
            self._fingerprint = cache.source_fingerprint(self.config["data_path"], self.dataset.dataset_name)
        return self._fingerprint

    def cache_key(self):
        return cache.cache_key(self.config, self.dataset.dataset_name, self.source_fingerprint())

    def cache_path(self):
        return cache.lists_path(self.config, self.dataset.dataset_name, self.cache_key())

    def retriever_path(self):
        """The holdout retriever's vectors, cached beside the lists."""
        return cache.beside(self.cache_path(), "retriever")

    # ------------------------------------------------------------------ build
    def build(self):
        """``[train, valid, test]`` :class:`RequestSet` s, from the cache when ``list_cache`` holds them."""
        logger = logging.getLogger()
        self._check_options()
        self.dataset.log_arrays()
        path = self.cache_path()
        with storage.file_lock(path) if self.config["list_cache"] else contextlib.nullcontext():
            # a second run building the same lists waits here, then reads what the first one wrote
            blob = storage.load_cache(path) if self.config["list_cache"] else None
            if blob is not None:
                logger.info(set_color("Loading cached candidate lists", "green") + f": {path}")
            else:
                blob = self._build_lists()
                if self.config["list_cache"]:
                    storage.save(blob, path)
                    logger.info(set_color("Saved candidate lists", "green") + f": {path}")
        self.stats = blob["stats"]
        logger.info(set_color("List statistics", "pink") + f": {json.dumps(self.stats)}")
        splits = blob["splits"]
        if self.config["list_order"] == "shuffled":
            splits = {name: shuffle_candidates(split, self.list_seed) for name, split in splits.items()}
            logger.info(set_color("list_order: shuffled", "yellow") + ": candidates in a random order fixed per "
                        "request (position carries no retriever information)")
        return [RequestSet(self.dataset, Interaction(splits[name]), name, lists=self) for name in SPLIT_NAMES]

    def _check_options(self):
        """Fail on a mistyped option before minutes of retriever training, not after."""
        # string choices and retriever_model were checked with the config (options.check)
        cfg, ds = self.config, self.dataset
        if cfg["eval_positives"] == "window" and cfg["list_mode"] != "retrieve":
            raise UserInputError("eval_positives: window counts the label window's liked items the retriever missed; "
                                 "it needs list_mode: retrieve (slate lists hold every positive)")
        if cfg["list_mode"] == "slate" and cfg["candidate_num"] < cfg["slate_size"]:
            raise UserInputError(f"candidate_num ({cfg['candidate_num']}) must be >= slate_size ({cfg['slate_size']})")
        n_items = ds.item_num - 1  # RecBole's id 0 is padding
        if cfg["candidate_num"] > n_items:
            raise UserInputError(f"{ds.dataset_name} has {n_items} items after filtering (item_inter_num_interval "
                                 f"{cfg['item_inter_num_interval']}); candidate_num is "
                                 f"{cfg['candidate_num']}: lower candidate_num, or relax the item filter")
        if cfg["retriever_search"] == "ann":
            from recbole_dnr.retrieval import ann

            ann.ann_settings(cfg)
            ann.require_faiss()

    def _build_lists(self):
        cfg, ds = self.config, self.dataset
        logger = logging.getLogger()
        _, users, items, ratings, _ = ds.log_arrays()
        z_log = (ratings >= cfg["label_threshold"]).astype(np.int64)
        starts, splits, req_users = ds.request_layout()
        if len(starts) == 0:
            raise UserInputError(f"{ds.dataset_name}: no user has {cfg['slate_size']} interactions after filtering")
        train_rows = ds.training_period_mask()
        logger.info(set_color("Requests", "pink") + f": {len(starts)} ({np.bincount(splits, minlength=3).tolist()} "
                    f"train/valid/test), retriever training rows: {int(train_rows.sum())}")
        lists = self._score_lists(starts, splits, train_rows)
        h_items, h_labels, h_len = protocol.history(items, z_log, users, starts, cfg["max_history"])
        has_pos = lists["label"].sum(1) > 0
        has_neg = (lists["label"] == 0).any(1)
        out, stats = {}, statistics.dataset_stats(cfg, ds.dataset_name, users, items, starts, splits)
        for s, name in enumerate(SPLIT_NAMES):
            keep = splits == s
            stats.update(statistics.missing_label_counts(name, keep, has_pos, has_neg))
            if s != protocol.TRAIN and cfg["drop_no_positive_eval"]:
                keep &= has_pos
            idx = np.flatnonzero(keep)
            out[name] = {
                ds.uid_field: torch.as_tensor(req_users[idx]),
                ds.iid_field: torch.as_tensor(lists["items"][idx]),
                SCORE: torch.as_tensor(lists["x"][idx], dtype=torch.float32),
                LABEL: torch.as_tensor(lists["label"][idx], dtype=torch.float32),
                SLATE_MASK: torch.as_tensor(lists["slate"][idx], dtype=torch.bool),
                HISTORY_ITEM: torch.as_tensor(h_items[idx]),
                HISTORY_LABEL: torch.as_tensor(h_labels[idx]),
                HISTORY_LEN: torch.as_tensor(h_len[idx]),
                REQUEST_ID: torch.as_tensor(idx),
            }
            stats.update(statistics.split_stats(name, out[name][SCORE], out[name][LABEL], lists["recall"][idx]))
        return {"splits": out, "stats": stats}

    def _score_lists(self, starts, splits, train_rows):
        """Every request's candidates, x, z, slate mask and recall (:func:`candidate_lists`), each
        scored by a retriever that never saw its request."""
        cfg = self.config
        # (request ids, retriever rows, retriever seed) per retriever: holdout scores every list with
        # one retriever; crossfit scores each fold of training lists with one that never saw it.
        # The first job scores every list (crossfit then overwrites the training lists): its filler
        # draws thus do not depend on retriever_fit, so valid/test lists are the same under both.
        jobs = [(np.arange(len(starts)), train_rows, self.list_seed)]
        if cfg["retriever_fit"] == "crossfit":
            train_req = np.flatnonzero(splits == protocol.TRAIN)
            fold = np.random.default_rng(self.list_seed).integers(cfg["crossfit_folds"], size=len(train_req))
            for k in range(cfg["crossfit_folds"]):
                held = train_req[fold == k]
                keep = train_rows.copy()
                keep[(starts[held][:, None] + np.arange(cfg["slate_size"])).ravel()] = False
                jobs.append((held, keep, self.list_seed + k + 1))
        lists = None
        for k, (req, rows, seed) in enumerate(jobs):
            embs = self.train_retriever(rows, seed)
            if k == 0:  # the independent retriever, for CoRR, the retrieval metrics and serving
                self._holdout_vectors = embs
                if cfg["list_cache"]:
                    storage.save(embs, self.retriever_path())
            part = candidate_lists(cfg, self.dataset.log_arrays(), self.dataset.item_num, self.list_seed, embs, req,
                                   starts, train_rows, seed=k)
            if lists is None:
                lists = {key: np.zeros((len(starts),) + v.shape[1:], v.dtype) for key, v in part.items()}
            for key in lists:
                lists[key][req] = part[key]
        return lists

    # ------------------------------------------------------------------ retrievers
    def train_retriever(self, rows=None, seed=None, config=None):
        """The vectors of a retriever trained on the sorted-log rows ``rows`` (bool ``[rows]``; default:
        the training period) with ``seed`` (default: the list seed) and ``config``'s retriever keys."""
        ds = self.dataset
        log = ds.log_arrays()
        rows = ds.training_period_mask() if rows is None else rows
        starts, _, req_users = ds.request_layout()
        return recbole_retriever.train_retriever(config or self.config, ds, log, (starts, req_users), log.order[rows],
                                                 self.list_seed if seed is None else seed)

    def retriever_embeddings(self):
        """Vectors of the independent retriever (``(user, item)``, or ``{"request", "item"}`` for a
        sequential one), fitted on the whole training period with the list seed (the holdout
        retriever of the lists), cached beside them."""
        if self._holdout_vectors is not None:
            return self._holdout_vectors
        path = self.retriever_path()
        embs = storage.load_cache(path)
        if embs is None:
            embs = self.train_retriever()
            storage.save(embs, path)
        self._holdout_vectors = embs
        return embs

    def retrieve_split(self, split, vectors):
        """The requests of ``split`` (a :class:`RequestSet`) with candidate lists retrieved anew
        by a retriever's ``vectors`` (``(user, item)``, or a sequential one's ``{"request", "item"}``;
        list mode ``retrieve``): top-n unseen items in retriever order,
        x, labels of the label window; history unchanged. The result carries
        ``retriever_metrics`` (per request: recall@n and NDCG@n of the window's positives, and the AUC
        of x over the retrieved list, NaN where the list lacks a positive or a negative)."""
        cfg, ds = self.config, self.dataset
        if cfg["list_mode"] != "retrieve":
            raise UserInputError("retrieving lists anew needs list_mode: retrieve")
        starts, _, _ = ds.request_layout()
        req = split.inter[REQUEST_ID].numpy()
        part = candidate_lists(cfg, ds.log_arrays(), ds.item_num, self.list_seed, vectors, req, starts, None,
                               seed=0, with_n_pos=True)
        inter = dict(split.inter.interaction)
        inter.update({ds.iid_field: torch.as_tensor(part["items"]),
                      SCORE: torch.as_tensor(part["x"], dtype=torch.float32),
                      LABEL: torch.as_tensor(part["label"], dtype=torch.float32),
                      SLATE_MASK: torch.as_tensor(part["slate"], dtype=torch.bool)})
        n = part["label"].shape[1]
        ndcg = retrieval_ndcg(part["label"], part["n_pos"])
        if cfg["list_order"] == "shuffled":
            inter = shuffle_candidates(inter, self.list_seed)
        out = split.view(Interaction(inter))
        auc, defined = list_auc(inter[SCORE], inter[LABEL])  # how x orders what it retrieved (recall: what it found)
        out.retriever_metrics = {f"recall@{n}": torch.as_tensor(part["recall"]), f"ndcg@{n}": torch.as_tensor(ndcg),
                                 "auc": torch.where(defined, auc.double(), torch.nan),
                                 "has_positive": torch.as_tensor(part["n_pos"] > 0)}
        return out

    # ------------------------------------------------------------------ serving
    def serving_state(self):
        """What a checkpoint carries so that :class:`recbole_dnr.serve.Recommender` can serve the
        model without retraining: the retriever's vectors (those that scored the valid/test lists),
        the data files' fingerprint and their absolute folder."""
        vectors = self.retriever_embeddings()
        two_tower = not isinstance(vectors, dict)  # a sequential retriever's queries are per request
        return {"format": SERVING_FORMAT, "version": VERSION, "retriever": tuple(vectors) if two_tower else None,
                "retriever_kind": "two_tower" if two_tower else "sequential",
                "fingerprint": self.source_fingerprint(), "data_path": os.path.abspath(self.config["data_path"])}
