"""List-wise dataset: RecBole loads and filters the atomic files; we cut requests, run the
retriever stage and build per-request candidate lists (protocol: docs/protocol.md).

A batch is an ``Interaction`` with, per request: ``user_id [B]``, candidates ``item_id [B, n]``,
retriever scores x ``score [B, n]`` in [0, 1], feedback z ``label [B, n]``, ``slate_mask [B, n]``,
history ``history_item [B, H]``, ``history_label [B, H]``, ``history_len [B]``, ``request_id [B]``.
"""

import contextlib
import hashlib
import json
import logging
import os

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.data.interaction import Interaction
from recbole.utils import set_color

from recbole_dnr import protocol, storage
from recbole_dnr.data.candidates import candidate_lists, shuffle_candidates
from recbole_dnr.data.request_set import RequestSet
from recbole_dnr.errors import UserInputError
from recbole_dnr.evaluator.metrics import list_auc
from recbole_dnr.evaluator.retrieval import retrieval_ndcg
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.retrieval import recbole_retriever
from recbole_dnr.version import VERSION

CACHE_VERSION = 2
SERVING_FORMAT = 1  # layout of ListDataset.serving_state in a checkpoint
PROTOCOL_KEYS = [
    "list_mode", "candidate_num", "slate_size", "label_threshold", "max_history", "valid_slates",
    "test_slates", "filler_sampling", "filler_pool", "label_window", "retriever_fit", "crossfit_folds",
    "score_norm", "drop_no_positive_eval", "user_inter_num_interval", "item_inter_num_interval",
    "load_col", *recbole_retriever.RETRIEVER_KEYS,
]
SPLIT_NAMES = ["train", "valid", "test"]


class ListDataset(Dataset):
    """RecBole ``Dataset`` whose :meth:`build` returns train/valid/test :class:`RequestSet` s."""

    def __init__(self, config):
        super().__init__(config)
        self.stats = {}

    @property
    def list_seed(self):
        """Seed of everything that builds the lists (retriever, fillers, folds): ``list_seed``,
        else ``seed``. Fixing ``list_seed`` varies only the reranker across ``seed`` s."""
        return self.config["list_seed"] if self.config["list_seed"] is not None else self.config["seed"]

    # ------------------------------------------------------------------ cache
    def source_fingerprint(self):
        """``[(file name, size, sha256)]`` of the dataset's atomic files."""
        # content, not mtime: a re-copied, unchanged data folder (new mtimes) keeps its lists; hashed once
        # per dataset object (cache_key is asked for the lists, the retriever file and the probes)
        if getattr(self, "_fingerprint", None) is None:
            path = self.config["data_path"]
            files = sorted(f for f in os.listdir(path) if f.startswith(self.dataset_name + "."))
            self._fingerprint = [(f, os.path.getsize(os.path.join(path, f)), storage.file_digest(os.path.join(path, f)))
                                 for f in files]
        return self._fingerprint

    def cache_key(self):
        """Hash of everything that determines the lists: data files, protocol, retriever, seed."""
        keys = set(PROTOCOL_KEYS) | set(self.config.parameters["Dataset"])  # RecBole's loading/filtering keys
        payload = {k: self.config[k] for k in sorted(keys - {"seed", "list_seed"})}
        payload["list_seed"] = self.list_seed
        payload.update({k: self.config[k] for k, old in recbole_retriever.LATER_KEYS.items() if self.config[k] != old})
        payload.update(dataset=self.dataset_name, files=self.source_fingerprint(), version=CACHE_VERSION)
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha1(blob).hexdigest()[:16]

    def cache_path(self):
        return os.path.join(self.config["checkpoint_dir"], "lists", f"{self.dataset_name}-{self.cache_key()}.pth")

    # ------------------------------------------------------------------ build
    def build(self):
        logger = logging.getLogger()
        self._check_options()
        self.log_arrays()
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
        return [RequestSet(self, Interaction(splits[name]), name) for name in SPLIT_NAMES]

    def training_matrix(self, form="coo"):
        """Binary user-item matrix of the log rows before each user's first valid/test slate."""
        import scipy.sparse as sp

        _, users, items, _, _ = self.log_arrays()
        rows = self.training_period_mask()
        m = sp.coo_matrix((np.ones(int(rows.sum()), dtype=np.float64), (users[rows], items[rows])),
                          shape=(self.user_num, self.item_num))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m.asformat(form)

    def log_arrays(self):
        """The log sorted by (user, time), a :class:`~recbole_dnr.protocol.SortedLog`: ``order``
        (original row ids), users, items, ratings, times.

        Read from the DataFrame, before RecBole converts it to float32 tensors: float32 holds
        Unix timestamps only to 64 s, which would reorder close ratings (and leak a later rating
        into an earlier request's history).
        """
        if getattr(self, "_sorted_log", None) is None:
            f = self.inter_feat
            if isinstance(f, Interaction):
                raise RuntimeError("ListDataset needs the raw DataFrame log; build() must run first")
            users = f[self.uid_field].to_numpy().astype(np.int64)
            items = f[self.iid_field].to_numpy().astype(np.int64)
            ratings = f[self.config["RATING_FIELD"]].to_numpy(dtype=np.float64)
            times = f[self.config["TIME_FIELD"]].to_numpy(dtype=np.float64)
            order = protocol.sort_log(users, times)
            self._sorted_log = protocol.SortedLog(order, users[order], items[order], ratings[order], times[order])
            self._change_feat_format()  # RecBole's build() does this first, too
        return self._sorted_log

    def _check_options(self):
        """Fail on a mistyped option before minutes of retriever training, not after."""
        # string choices and retriever_model were checked with the config (options.check)
        if self.config["eval_positives"] == "window" and self.config["list_mode"] != "retrieve":
            raise UserInputError("eval_positives: window counts the label window's liked items the retriever missed; "
                                 "it needs list_mode: retrieve (slate lists hold every positive)")
        if self.config["list_mode"] == "slate" and self.config["candidate_num"] < self.config["slate_size"]:
            raise UserInputError(f"candidate_num ({self.config['candidate_num']}) must be >= slate_size "
                                 f"({self.config['slate_size']})")
        n_items = self.item_num - 1  # RecBole's id 0 is padding
        if self.config["candidate_num"] > n_items:
            raise UserInputError(f"{self.dataset_name} has {n_items} items after filtering (item_inter_num_interval "
                                 f"{self.config['item_inter_num_interval']}); candidate_num is "
                                 f"{self.config['candidate_num']}: lower candidate_num, or relax the item filter")
        if self.config["retriever_search"] == "ann":
            from recbole_dnr.retrieval import ann

            ann.ann_settings(self.config)
            ann.require_faiss()

    def _build_lists(self):
        cfg = self.config
        logger = logging.getLogger()
        order, users, items, ratings, _ = self.log_arrays()
        z_log = (ratings >= cfg["label_threshold"]).astype(np.int64)
        starts, splits, req_users = self.request_layout()
        if len(starts) == 0:
            raise UserInputError(f"{self.dataset_name}: no user has {cfg['slate_size']} interactions after filtering")
        train_rows = self.training_period_mask()
        logger.info(set_color("Requests", "pink") + f": {len(starts)} ({np.bincount(splits, minlength=3).tolist()} "
                    f"train/valid/test), retriever training rows: {int(train_rows.sum())}")

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
            embs = self._train_retriever(order[rows], seed)
            if k == 0:  # the independent retriever, for CoRR, the retrieval metrics and serving
                self._holdout_vectors = embs
                if cfg["list_cache"]:
                    storage.save(embs, self._retriever_path())
            part = candidate_lists(cfg, self.log_arrays(), self.item_num, self.list_seed, embs, req, starts, train_rows,
                                   seed=k)
            if lists is None:
                lists = {key: np.zeros((len(starts),) + v.shape[1:], v.dtype) for key, v in part.items()}
            for key in lists:
                lists[key][req] = part[key]

        h_items, h_labels, h_len = protocol.history(items, z_log, users, starts, cfg["max_history"])
        has_pos = lists["label"].sum(1) > 0
        has_neg = (lists["label"] == 0).any(1)
        out, stats = {}, self._dataset_stats(users, items, starts, splits)
        for s, name in enumerate(SPLIT_NAMES):
            keep = splits == s
            # kept: a list without a positive (or a negative) trains and scores nothing list-wise
            # (its metrics are undefined and skipped); drop_no_positive_eval removes them from valid/test
            stats[f"{name}_lists_no_positive"] = int((keep & ~has_pos).sum())
            stats[f"{name}_lists_no_negative"] = int((keep & ~has_neg).sum())
            if s != protocol.TRAIN and cfg["drop_no_positive_eval"]:
                keep &= has_pos
            idx = np.flatnonzero(keep)
            out[name] = {
                self.uid_field: torch.as_tensor(req_users[idx]),
                self.iid_field: torch.as_tensor(lists["items"][idx]),
                SCORE: torch.as_tensor(lists["x"][idx], dtype=torch.float32),
                LABEL: torch.as_tensor(lists["label"][idx], dtype=torch.float32),
                SLATE_MASK: torch.as_tensor(lists["slate"][idx], dtype=torch.bool),
                HISTORY_ITEM: torch.as_tensor(h_items[idx]),
                HISTORY_LABEL: torch.as_tensor(h_labels[idx]),
                HISTORY_LEN: torch.as_tensor(h_len[idx]),
                REQUEST_ID: torch.as_tensor(idx),
            }
            x = out[name][SCORE]
            y = out[name][LABEL]
            auc, defined = list_auc(x, y)
            stats[f"{name}_lists"] = len(idx)
            stats[f"{name}_positives_per_list"] = round(float(y.sum(1).mean()) if len(idx) else 0.0, 3)
            stats[f"{name}_retriever_auc"] = round(float(auc[defined].mean()) if defined.any() else float("nan"), 4)
            stats[f"{name}_retriever_recall"] = round(float(lists["recall"][idx].mean()) if len(idx) else 0.0, 4)
        return {"splits": out, "stats": stats}

    def _dataset_stats(self, users, items, starts, splits):
        owners = users[starts]
        n_user = int(users.max()) + 1 if len(users) else 0
        per_split = [np.bincount(owners[splits == s], minlength=n_user) for s in (protocol.VALID, protocol.TEST)]
        with_lists = np.bincount(owners, minlength=n_user) > 0
        short = with_lists & ((per_split[0] < self.config["valid_slates"]) | (per_split[1] < self.config["test_slates"]))
        return {
            "dataset": self.dataset_name,
            "users": int(len(np.unique(users))),
            "items": int(len(np.unique(items))),
            "interactions": int(len(users)),
            "lists": int(len(starts)),
            "list_mode": self.config["list_mode"],
            "retriever_fit": self.config["retriever_fit"],
            # fewer rows than slate_size: history for nobody, rows only feed the retriever
            "users_without_lists": int(len(np.unique(users)) - with_lists.sum()),
            # fewer than 3 (valid + test + 1) slates: fewer held-out slates than asked (protocol.cut_requests)
            "users_short_holdout": int(short.sum()),
            "users_without_test": int((with_lists & (per_split[1] == 0)).sum()),
        }

    # ------------------------------------------------------------------ a trainable retriever (CoRR)
    def request_layout(self):
        """``(starts, splits, users)`` of every request (request id = index), cut from the sorted log."""
        if getattr(self, "_layout", None) is None:
            _, users, _, _, _ = self.log_arrays()
            cfg = self.config
            self._layout = protocol.cut_requests(users, cfg["slate_size"], cfg["valid_slates"], cfg["test_slates"])
        return self._layout

    def retriever_embeddings(self):
        """Vectors of the independent retriever (``(user, item)``, or ``{"request", "item"}`` for a
        sequential one), fitted on the whole training period with the list seed (the holdout
        retriever of the lists), cached beside them."""
        if getattr(self, "_holdout_vectors", None) is not None:
            return self._holdout_vectors
        path = self._retriever_path()
        embs = storage.load_cache(path)
        if embs is not None:
            self._holdout_vectors = embs
            return embs
        embs = self._train_retriever(self.log_arrays().order[self.training_period_mask()], self.list_seed)
        storage.save(embs, path)
        self._holdout_vectors = embs
        return embs

    def serving_state(self):
        """What a checkpoint carries so that :class:`recbole_dnr.serve.Recommender` can serve the
        model without retraining: the retriever's vectors (those that scored the valid/test lists),
        the data files' fingerprint and their absolute folder."""
        vectors = self.retriever_embeddings()
        two_tower = not isinstance(vectors, dict)  # a sequential retriever's queries are per request
        return {"format": SERVING_FORMAT, "version": VERSION, "retriever": tuple(vectors) if two_tower else None,
                "retriever_kind": "two_tower" if two_tower else "sequential",
                "fingerprint": self.source_fingerprint(), "data_path": os.path.abspath(self.config["data_path"])}

    def model_view(self):
        """An empty :class:`RequestSet`: what a model is built on when no lists are needed (serving)."""
        return RequestSet(self, Interaction({}), "serve")

    def _train_retriever(self, rows, seed):
        starts, _, req_users = self.request_layout()
        return recbole_retriever.train_retriever(self.config, self, self.log_arrays(), (starts, req_users), rows, seed)

    def _retriever_path(self):
        return self.cache_path()[:-len(".pth")] + "-retriever.pth"

    def sorted_log_items(self):
        """Item of every row of the (user, time)-sorted log ``[rows]`` (int64 tensor)."""
        return torch.as_tensor(self.log_arrays()[2])

    def window_positives(self, request_ids):
        """Liked items of each request's label window ``[R, label_window]`` (0 = none): every
        positive the retriever should have found, retrieved or not."""
        items, liked = self._label_window(self.request_layout()[0][np.asarray(request_ids)])
        return torch.as_tensor(np.where(liked, items, 0))

    def window_positive_count(self, request_ids):
        """Distinct liked items in each request's label window ``[R]`` (int64 tensor)."""
        return torch.as_tensor(protocol.distinct_nonzero(self.window_positives(request_ids).numpy()))

    def training_period_mask(self):
        """Bool ``[rows]`` over the sorted log: the rows before each user's first valid/test slate
        (what a retriever may be trained on)."""
        starts, splits, _ = self.request_layout()
        return protocol.training_rows(self.log_arrays()[1], starts, splits)

    def _label_window(self, starts):
        return protocol.label_window(self.log_arrays(), starts, self.config["label_window"], self.config["label_threshold"])

    def prior_rows(self, request_ids):
        """``(lo, hi) [R]``: the sorted-log rows of each request's user before the request
        (what a retriever must not return)."""
        _, users, _, _, _ = self.log_arrays()
        starts = self.request_layout()[0][np.asarray(request_ids)]
        return torch.as_tensor(protocol.user_bounds(users)[users[starts]]), torch.as_tensor(starts)

    def retrieve_split(self, split, vectors):
        """The requests of ``split`` (a :class:`RequestSet`) with candidate lists retrieved anew
        by a retriever's ``vectors`` (``(user, item)``, or a sequential one's ``{"request", "item"}``;
        list mode ``retrieve``): top-n unseen items in retriever order,
        x, labels of the label window; history unchanged. The result carries
        ``retriever_metrics`` (per request: recall@n and NDCG@n of the window's positives, and the AUC
        of x over the retrieved list, NaN where the list lacks a positive or a negative)."""
        if self.config["list_mode"] != "retrieve":
            raise UserInputError("retrieving lists anew needs list_mode: retrieve")
        starts, _, _ = self.request_layout()
        req = split.inter[REQUEST_ID].numpy()
        part = candidate_lists(self.config, self.log_arrays(), self.item_num, self.list_seed, vectors, req, starts, None,
                               seed=0, with_n_pos=True)
        inter = dict(split.inter.interaction)
        inter.update({self.iid_field: torch.as_tensor(part["items"]),
                      SCORE: torch.as_tensor(part["x"], dtype=torch.float32),
                      LABEL: torch.as_tensor(part["label"], dtype=torch.float32),
                      SLATE_MASK: torch.as_tensor(part["slate"], dtype=torch.bool)})
        n = part["label"].shape[1]
        ndcg = retrieval_ndcg(part["label"], part["n_pos"])
        if self.config["list_order"] == "shuffled":
            inter = shuffle_candidates(inter, self.list_seed)
        out = RequestSet(self, Interaction(inter), split.phase)
        auc, defined = list_auc(inter[SCORE], inter[LABEL])  # how x orders what it retrieved (recall: what it found)
        out.retriever_metrics = {f"recall@{n}": torch.as_tensor(part["recall"]), f"ndcg@{n}": torch.as_tensor(ndcg),
                                 "auc": torch.where(defined, auc.double(), torch.nan),
                                 "has_positive": torch.as_tensor(part["n_pos"] > 0)}
        return out

