"""A trained two-stage pipeline as recommendations: :class:`Recommender`.

``Recommender.load(model_file)`` rebuilds the run from its checkpoint alone (config, weights, the
retriever's vectors, the data files' fingerprint); the dataset's atomic files give the id maps and
each user's history, as at training. ``recommend`` retrieves the top-``candidate_num`` unseen items
of the whole catalogue (exact, or FAISS with ``retriever_search: ann``) and reranks them;
``rerank`` reorders candidates the caller brings. Both present a list to the reranker exactly as
training did: in retriever order (x descending, ties by item id), x = ``score_norm`` of the
retriever's logits over the list, history = the last ``max_history`` interactions (z = rating >=
``label_threshold``), left-padded.
"""

import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_dnr import protocol, storage
from recbole_dnr.data import create_dataset
from recbole_dnr.data.candidates import ann_index, topk_unseen
from recbole_dnr.data.builder import SERVING_FORMAT
from recbole_dnr.data.cache import source_fingerprint
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.registry import is_reranker
from recbole_dnr.retrieval import topk


@dataclass
class Lists:
    """Scored lists in the order the reranker saw them: ``items [B, n]`` (internal ids), x
    ``[B, n]`` and the reranker's scores ``[B, n]`` (padding: item 0, score -inf)."""

    items: torch.Tensor
    x: torch.Tensor
    scores: torch.Tensor


class Recommender:
    """Retriever -> reranker of one trained run. Build it with :meth:`load`."""

    def __init__(self, config, dataset, model, vectors, model_file):
        self.config, self.dataset, self.model, self.model_file = config, dataset, model, model_file
        self.vectors = vectors  # (user [n_users, d], item [n_items, d]) or None (a sequential retriever)
        self.n = config["candidate_num"]
        self.max_history = config["max_history"]
        self.uid, self.iid = dataset.uid_field, dataset.iid_field
        self._user_ids = dataset.field2token_id[self.uid]
        self._item_ids = dataset.field2token_id[self.iid]
        self._user_tokens = dataset.field2id_token[self.uid]
        self._item_tokens = dataset.field2id_token[self.iid]
        log = dataset.log_arrays()
        self._log_items = log.items
        self._log_z = (log.ratings >= config["label_threshold"]).astype(np.int64)
        self._first = protocol.user_bounds(log.users)
        self._end = protocol.user_end(log.users)
        self._scorer = None  # None: the eager model (use_scorer)
        self._index = None  # FAISS index (retriever_search: ann), built at the first search

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, model_file, data_path=None, device="cpu"):
        """The pipeline saved in ``model_file`` (a best checkpoint of ``recbole-dnr`` training).
        ``data_path``: the folder holding the dataset's atomic files when they moved since training
        (default: where training read them)."""
        if not os.path.isfile(model_file):
            raise UserInputError(f"model_file {model_file} does not exist: pass the checkpoint a run saved "
                                 "(training prints 'model saved: <path>' last; default folder saved/)")
        checkpoint = storage.load(model_file)  # CorruptFileError for a damaged file
        serving = checkpoint.get("serving") if isinstance(checkpoint, dict) else None
        config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
        if serving is None or config is None or "state_dict" not in checkpoint:
            raise UserInputError(f"{model_file} is not a servable recbole_dnr checkpoint (no serving data): it was "
                                 "written by another recbole_dnr version, by RecBole's own trainer, or is a resume "
                                 "state; retrain the model with this version")
        if serving.get("format") != SERVING_FORMAT:
            raise UserInputError(f"{model_file} holds serving data of format {serving.get('format')} (written by "
                                 f"recbole_dnr {serving.get('version', '?')}); this recbole_dnr reads format "
                                 f"{SERVING_FORMAT}: retrain, or load it with the version that wrote it")
        if not is_reranker(config):
            raise UserInputError(f"{model_file} is a RecBole model ({config['model']}), not a reranker of lists")
        if data_path is not None:  # as training took it (the folder above <dataset>/), or <dataset>/ itself
            nested = os.path.join(data_path, config["dataset"])
            data_path = data_path if os.path.isfile(os.path.join(data_path, f"{config['dataset']}.inter")) else nested
        config["data_path"] = data_path or serving["data_path"]
        config["device"] = torch.device(device)
        config["show_progress"] = False
        inter = os.path.join(config["data_path"], f"{config['dataset']}.inter")
        if not os.path.isfile(inter):
            raise UserInputError(f"{inter} not found: the model reads histories and id maps from the atomic files "
                                 f"it was trained on; pass data_path=<the folder holding {config['dataset']}/{config['dataset']}.inter>")
        dataset = create_dataset(config)
        if source_fingerprint(config["data_path"], config["dataset"]) != serving["fingerprint"]:
            raise UserInputError(f"the atomic files in {config['data_path']} differ from those {model_file} was "
                                 "trained on (sizes or contents): pass data_path= of the training data")
        dataset.log_arrays()  # RecBole's raw log, before it becomes tensors
        if config["model"] == "CoRR":
            config["corr_retriever_init"] = "scratch"  # the weights come from the checkpoint: nothing to fit
        model = config.model_class(config, dataset.model_view()).to(config["device"])
        model.load_state_dict(checkpoint["state_dict"])
        model.load_other_parameter(checkpoint.get("other_parameter"))
        model.eval()
        vectors = serving["retriever"]
        own = getattr(model, "retriever", None)
        if own is not None and hasattr(own, "embeddings"):  # CoRR: its trained retriever retrieves
            vectors = own.embeddings()
            vectors = None if isinstance(vectors, dict) else tuple(v.detach().cpu() for v in vectors)
        return cls(config, dataset, model, vectors, model_file)

    # ---------------------------------------------------------------- ids
    @property
    def user_ids(self):
        """The external ids of the users this run knows (those ``recommend`` accepts), in id order."""
        return [str(t) for t in self._user_tokens[1:]]

    def user_index(self, user):
        token = str(user)
        if token not in self._user_ids or self._user_ids[token] == 0:
            raise UserInputError(f"unknown user '{user}': not a {self.uid} of {self.config['dataset']} (after "
                                 "its filters)")
        return self._user_ids[token]

    def item_index(self, items, what="item_ids"):
        out = []
        for item in items:
            token = str(item)
            if token not in self._item_ids or self._item_ids[token] == 0:
                raise UserInputError(f"{what}: unknown item '{item}': not an {self.iid} of {self.config['dataset']} "
                                     "(after its filters)")
            out.append(self._item_ids[token])
        return np.asarray(out, dtype=np.int64)

    def item_tokens(self, ids):
        return [str(t) for t in self._item_tokens[np.asarray(ids)]]

    # ---------------------------------------------------------------- histories
    def _history(self, u, given):
        """``(items, z)`` int64 of the history of internal user ``u``: ``given`` (external item ids,
        or ``(item ids, liked flags)``) or the user's rows of the dataset."""
        if given is None:
            if u >= len(self._end) or u >= len(self._first) or self._first[u] < 0:
                return np.zeros(0, np.int64), np.zeros(0, np.int64)
            return self._log_items[self._first[u]:self._end[u]], self._log_z[self._first[u]:self._end[u]]
        if isinstance(given, dict):
            items, liked = given.get("items", []), given.get("liked")
        elif isinstance(given, tuple) and len(given) == 2:
            items, liked = given
        else:
            items, liked = given, None
        ids = self.item_index(items, what="history")
        z = np.ones(len(ids), np.int64) if liked is None else np.asarray(liked, dtype=np.int64)
        if len(z) != len(ids):
            raise UserInputError(f"history: {len(ids)} items but {len(z)} liked flags")
        return ids, z

    def _history_block(self, histories):
        """Left-padded ``[B, H]`` items and z, and lengths ``[B]``: the last ``max_history`` of each."""
        H = self.max_history
        items = np.zeros((len(histories), H), np.int64)
        z = np.zeros((len(histories), H), np.int64)
        length = np.zeros(len(histories), np.int64)
        for r, (h_items, h_z) in enumerate(histories):
            m = min(H, len(h_items))
            if m:
                items[r, H - m:], z[r, H - m:] = h_items[-m:], h_z[-m:]
            length[r] = m
        return items, z, length

    # ---------------------------------------------------------------- scoring
    def _require_vectors(self):
        if self.vectors is None:
            raise UserInputError(f"this run's retriever ({self.config['retriever_model']}) is sequential: its "
                                 "query is per request and is not in the checkpoint; pass the retriever's scores")

    def _logits(self, users, cand):
        """The loaded retriever's logits <p_u, q_i> ``[B, n]`` of candidates ``cand``."""
        self._require_vectors()
        return topk.score_pairs(self.vectors[0], self.vectors[1], users, cand)

    def batch(self, users, cand, logits, histories):
        """The reranker's input for lists ``cand [B, m]`` (internal ids, 0 = padding at the end) with
        retriever logits ``[B, m]``: each list in retriever order, x = ``score_norm`` over its real
        items, the last ``max_history`` of each history, as in training. An :class:`Interaction`."""
        logits = np.asarray(logits, dtype=np.float32)  # the training lists' x came from float32 logits
        items, xs = self._ordered(cand, logits)
        h_items, h_z, h_len = self._history_block(histories)
        return Interaction({
            self.uid: torch.as_tensor(np.asarray(users, dtype=np.int64)),
            self.iid: torch.as_tensor(items),
            SCORE: torch.as_tensor(xs),
            LABEL: torch.zeros(items.shape, dtype=torch.float32),
            SLATE_MASK: torch.zeros(items.shape, dtype=torch.bool),
            HISTORY_ITEM: torch.as_tensor(h_items),
            HISTORY_LABEL: torch.as_tensor(h_z),
            HISTORY_LEN: torch.as_tensor(h_len),
            REQUEST_ID: torch.zeros(len(items), dtype=torch.long),
        })

    def batch_tensors(self, user_ids, histories=None):
        """The batch ``recommend(user_ids)`` hands the reranker (retrieved lists): an :class:`Interaction`."""
        users, hist = self._users(user_ids, histories)
        cand = self.retrieve(users, hist)
        return self.batch(users, cand, self._logits(users, cand), hist)

    def use_scorer(self, scorer):
        """Score lists with ``scorer(batch) -> [B, n]`` (e.g. an exported reranker) instead of the
        eager model; ``None`` restores the model."""
        self._scorer = scorer

    @torch.no_grad()
    def score_lists(self, users, cand, logits, histories):
        """:class:`Lists` of :meth:`batch`'s lists with the reranker's scores (padding: -inf)."""
        batch = self.batch(users, cand, logits, histories)
        if self._scorer is None:
            scores = self.model.predict(batch.to(self.config["device"])).float().cpu()
        else:
            scores = torch.as_tensor(self._scorer(batch)).float()
        items = batch[self.iid]
        return Lists(items, batch[SCORE], scores.masked_fill(items == 0, -torch.inf))

    def _ordered(self, cand, logits):
        """Lists in retriever order with x = ``score_norm`` over each list's real items."""
        norm = self.config["score_norm"]
        if (cand > 0).all():  # full lists (recommend): one vectorised pass
            zero = np.zeros_like(cand)
            items, x, _, _ = protocol.order_by_score(cand, topk.normalise(logits, norm), zero, zero)
            return items, x.astype(np.float32)
        items = np.zeros(cand.shape, np.int64)
        xs = np.zeros(cand.shape, np.float32)
        for r in range(len(cand)):
            keep = cand[r] > 0
            c, zero = cand[r][keep][None], np.zeros((1, int(keep.sum())), np.int64)
            c, x, _, _ = protocol.order_by_score(c, topk.normalise(logits[r][keep][None], norm), zero, zero)
            items[r, :c.shape[1]], xs[r, :c.shape[1]] = c[0], x[0]
        return items, xs

    def retrieve(self, users, histories):
        """Top-``candidate_num`` items per internal user ``[B]``, none of its history ``[B, n]``."""
        self._require_vectors()
        excl = [h[0] for h in histories]
        lo = np.cumsum([0] + [len(e) for e in excl])
        flat = np.concatenate(excl) if excl else np.zeros(0, np.int64)
        query = self.vectors[0][torch.as_tensor(np.asarray(users, dtype=np.int64))]
        if self.config["retriever_search"] == "ann" and self._index is None:
            self._index = ann_index(self.config, self.vectors[1])  # built once, at the first request
        return topk_unseen(self.config, query, self.vectors[1], lo[:-1], lo[1:], flat, self.n, index=self._index)

    # ---------------------------------------------------------------- public API
    def recommend(self, user_ids, k=6, with_scores=False, histories=None):
        """Top-``k`` external item ids per user (best first): retrieve ``candidate_num`` unseen items,
        rerank them. ``histories``: per user, ``None`` (the dataset's rows), a list of item ids, or
        ``(item ids, liked flags)``; the history is also what is excluded from retrieval.
        ``with_scores``: ``(item, reranker score)`` pairs."""
        if isinstance(user_ids, (str, int)):
            raise UserInputError("user_ids must be a list of user ids, e.g. ['196']")
        if not 1 <= int(k) <= self.n:
            raise UserInputError(f"k must be between 1 and candidate_num ({self.n}), got {k}")
        if len(user_ids) == 0:
            return []
        users, hist = self._users(user_ids, histories)
        cand = self.retrieve(users, hist)
        lists = self.score_lists(users, cand, self._logits(users, cand), hist)
        return self._top(lists, int(k), with_scores)

    def timings(self, user_ids, repeat=50, histories=None):
        """Where :meth:`recommend`'s time goes for ``user_ids`` (one batch): the median over ``repeat``
        runs of each stage, in ms: ``users`` (ids and histories), ``retrieve`` (top-``candidate_num``
        unseen), ``lists`` (x and the reranker's batch), ``rerank`` (the model) and ``total``."""
        if repeat < 1:
            raise UserInputError(f"repeat must be at least 1, got {repeat}")
        stages = {"users": [], "retrieve": [], "lists": [], "rerank": [], "total": []}
        for _ in range(repeat):
            t0 = time.perf_counter()
            users, hist = self._users(user_ids, histories)
            t1 = time.perf_counter()
            cand = self.retrieve(users, hist)
            t2 = time.perf_counter()
            batch = self.batch(users, cand, self._logits(users, cand), hist)
            t3 = time.perf_counter()
            with torch.no_grad():
                self.model.predict(batch.to(self.config["device"]))
            t4 = time.perf_counter()
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                stages[name].append(seconds)
        return {name: 1000 * float(np.median(v)) for name, v in stages.items()}

    def _users(self, user_ids, histories):
        if histories is not None and len(histories) != len(user_ids):
            raise UserInputError(f"histories: {len(histories)} entries for {len(user_ids)} users")
        users = np.array([self.user_index(u) for u in user_ids], dtype=np.int64)
        return users, [self._history(u, None if histories is None else histories[r]) for r, u in enumerate(users)]

    def rerank(self, user_id, item_ids, scores=None, with_scores=False, history=None):
        """``item_ids`` (external) reordered by the reranker, best first. ``scores``: the retriever's
        logits for them (default: from the loaded retriever); ``history`` as in :meth:`recommend`."""
        lists = self.score(user_id, item_ids, scores, history)
        return self._top(lists, len(item_ids), with_scores)[0]

    def score(self, user_id, item_ids, scores=None, history=None):
        """:class:`Lists` of one request (``[1, m]``) as the reranker saw it: ``item_ids`` in retriever order."""
        if isinstance(item_ids, (str, int)) or len(item_ids) == 0:
            raise UserInputError("item_ids must be a non-empty list of item ids")
        if len(item_ids) > self.n:
            raise UserInputError(f"item_ids: {len(item_ids)} candidates; the model was trained on lists of "
                                 f"candidate_num = {self.n}: pass at most {self.n}")
        cand = self.item_index(item_ids)
        if len(set(cand.tolist())) != len(cand):
            raise UserInputError("item_ids: an item appears twice")
        u = np.array([self.user_index(user_id)])
        if scores is None:
            logits = self._logits(u, cand[None])
        else:
            logits = np.asarray(scores, dtype=np.float32)[None]
            if logits.shape != (1, len(cand)) or not np.isfinite(logits).all():
                raise UserInputError(f"scores: {len(item_ids)} finite numbers expected (one per item), got "
                                     f"{np.asarray(scores).shape[0] if np.ndim(scores) else scores}")
        return self.score_lists(u, cand[None], logits, [self._history(u[0], history)])

    def _top(self, lists, k, with_scores):
        order = torch.sort(lists.scores, dim=1, descending=True, stable=True).indices[:, :k]
        out = []
        for r in range(len(order)):
            items = lists.items[r, order[r]]
            keep = items > 0
            tokens = self.item_tokens(items[keep].numpy())
            if with_scores:
                vals = lists.scores[r, order[r]][keep].tolist()
                out.append([(t, float(s)) for t, s in zip(tokens, vals)])
            else:
                out.append(tokens)
        return out
