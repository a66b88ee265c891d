"""A trained two-stage pipeline as recommendations: :class:`Recommender`.

``Recommender.load(model_file)`` rebuilds the run from its checkpoint (config, weights, the
retriever's vectors, the data files' fingerprint) and the dataset's atomic files (the id maps and
each user's history, as at training), or from a bundle folder written by ``save`` (all of it, no
data needed: :mod:`.bundle`). A user the run does not know is served from a given history.
``recommend`` retrieves the top-``candidate_num`` unseen items of the whole catalogue (exact, or
FAISS with ``retriever_search: ann``) and reranks them;
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

from recbole_dnr import protocol
from recbole_dnr.data import create_dataset
from recbole_dnr.data.candidates import ann_index, topk_unseen
from recbole_dnr.data.builder import SERVING_FORMAT
from recbole_dnr.data.cache import source_fingerprint
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.registry import is_reranker
from recbole_dnr.retrieval import topk
from recbole_dnr.serve import bundle, model_import
from recbole_dnr.serve.snapshot import ServingData


@dataclass
class Lists:
    """Scored lists in the order the reranker saw them: ``items [B, n]`` (internal ids), x
    ``[B, n]`` and the reranker's scores ``[B, n]`` (padding: item 0, score -inf)."""

    items: torch.Tensor
    x: torch.Tensor
    scores: torch.Tensor


class Recommender:
    """Retriever -> reranker of one trained run. Build it with :meth:`load`."""

    def __init__(self, config, data, model, vectors, model_file):
        self.config, self.data, self.model, self.model_file = config, data, model, model_file
        self.vectors = vectors  # (user [n_users, d], item [n_items, d]) or None (a sequential retriever)
        self.n = config["candidate_num"]
        self.max_history = config["max_history"]
        self.uid, self.iid = data.uid_field, data.iid_field
        self._scorer = None  # None: the eager model (use_scorer)
        self._index = None  # FAISS index (retriever_search: ann), built at the first search

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, model_file, data_path=None, device="cpu", imports=None):
        """The pipeline saved in ``model_file``: a best checkpoint of ``recbole-dnr`` training (which
        reads the dataset's atomic files again), or a bundle folder written by :meth:`save` (which
        needs no data). ``data_path``: the folder holding the atomic files when they moved since
        training (default: where training read them). ``imports``: modules or ``.py`` files to
        import first (those defining a custom model class)."""
        model_import.import_modules(imports)
        if bundle.is_bundle(model_file):
            _, checkpoint, data, vectors = bundle.read(model_file)
            config = checkpoint["config"]
            config["device"] = torch.device(device)
            return cls._assemble(config, data, data.model_view(), checkpoint, vectors, model_file)
        if not os.path.isfile(model_file):
            raise UserInputError(f"model_file {model_file} does not exist: pass the checkpoint a run saved "
                                 "(training prints 'model saved: <path>' last; default folder saved/) or a bundle "
                                 "folder")
        checkpoint = model_import.read(model_file)  # CorruptFileError for a damaged file
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
                                 f"it was trained on; pass data_path=<the folder holding "
                                 f"{config['dataset']}/{config['dataset']}.inter>, "
                                 "or serve a bundle ('recbole-dnr export --bundle=<folder>' where the data is)")
        dataset = create_dataset(config)
        if source_fingerprint(config["data_path"], config["dataset"]) != serving["fingerprint"]:
            raise UserInputError(f"the atomic files in {config['data_path']} differ from those {model_file} was "
                                 "trained on (sizes or contents): pass data_path= of the training data")
        data = ServingData.from_dataset(dataset, config)  # RecBole's raw log, before it becomes tensors
        return cls._assemble(config, data, dataset.model_view(), checkpoint, serving["retriever"], model_file)

    @classmethod
    def _assemble(cls, config, data, view, checkpoint, vectors, model_file):
        """The model built on ``view``, with the weights of ``checkpoint``, and the retriever's ``vectors``."""
        config.model_class.prepare_for_serving(config)
        model = config.model_class(config, view).to(config["device"])
        model.load_state_dict(checkpoint["state_dict"])
        model.load_other_parameter(checkpoint.get("other_parameter"))
        model.eval()
        own = getattr(model, "retriever", None)
        if own is not None and hasattr(own, "embeddings"):  # CoRR: its trained retriever retrieves
            vectors = own.embeddings()
            vectors = None if isinstance(vectors, dict) else tuple(v.detach().cpu() for v in vectors)
        return cls(config, data, model, vectors, model_file)

    def save(self, path):
        """Write this pipeline as a bundle folder ``path`` that :meth:`load` serves with no dataset:
        config and weights, the retriever's vectors, the id maps and each known user's history."""
        return bundle.write(self, path)

    # ---------------------------------------------------------------- ids
    @property
    def user_ids(self):
        """The external ids of the users this run knows (those ``recommend`` accepts without a history), in id order."""
        return [str(t) for t in self.data.user_tokens[1:]]

    def user_index(self, user, new_ok=False):
        """Internal id of ``user``; 0 for a user the run does not know when ``new_ok`` (a history is given)."""
        token = str(user)
        u = self.data.user_ids.get(token, 0)
        if u == 0 and not new_ok:
            raise UserInputError(f"unknown user '{user}': not a {self.uid} of {self.config['dataset']} (after its "
                                 "filters); a new user is served from the history you pass for it (histories: its item ids, "
                                 "or [] for the most rated items)")
        return u

    def item_index(self, items, what="item_ids"):
        out = []
        for item in items:
            token = str(item)
            if self.data.item_ids.get(token, 0) == 0:
                raise UserInputError(f"{what}: unknown item '{item}': not an {self.iid} of {self.config['dataset']} "
                                     "(after its filters)")
            out.append(self.data.item_ids[token])
        return np.asarray(out, dtype=np.int64)

    def item_tokens(self, ids):
        return [str(t) for t in self.data.item_tokens[np.asarray(ids)]]

    # ---------------------------------------------------------------- histories
    def _history(self, u, given):
        """``(items, z)`` int64 of the history of internal user ``u``: ``given`` (external item ids,
        or ``(item ids, liked flags)``) or the user's rows of the dataset."""
        if given is None:
            return self.data.history(u)
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

    def _queries(self, users, histories):
        """The retriever's query per request, as ``(table [U, d], rows [B])``: a known user's vector;
        a new user's (``users == 0``) is the mean of its liked history items' vectors (of all its
        history items if none is liked), the usual fold-in of a matrix-factorisation retriever."""
        self._require_vectors()
        new = np.flatnonzero(users == 0)
        if len(new) == 0:
            return self.vectors[0], users
        folded = []
        for r in new:
            items, z = histories[r]
            if len(items) == 0:
                raise UserInputError("a new user with an empty history has no retriever query: pass its history, "
                                     "or scores= (the retriever's logits) to rerank")
            liked = items[z > 0] if (z > 0).any() else items
            folded.append(self.vectors[1][torch.as_tensor(liked)].mean(0))
        rows = users.copy()
        rows[new] = len(self.vectors[0]) + np.arange(len(new))
        return torch.cat([self.vectors[0], torch.stack(folded).to(self.vectors[0].dtype)]), rows

    def _logits(self, users, cand, queries=None):
        """The loaded retriever's logits <p_u, q_i> ``[B, n]`` of candidates ``cand``; ``queries``:
        :meth:`_queries`' ``(table, rows)`` (default: the users' own vectors)."""
        self._require_vectors()
        table, rows = queries if queries is not None else (self.vectors[0], users)
        return topk.score_pairs(table, self.vectors[1], rows, cand)

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
        queries = self._queries(users, hist)
        cand = self.retrieve(users, hist, queries)
        return self.batch(users, cand, self._logits(users, cand, queries), hist)

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

    def retrieve(self, users, histories, queries=None):
        """Top-``candidate_num`` items per internal user ``[B]``, none of its history ``[B, n]``;
        ``queries`` as in :meth:`_logits`."""
        self._require_vectors()
        table, rows = queries if queries is not None else (self.vectors[0], users)
        excl = [h[0] for h in histories]
        lo = np.cumsum([0] + [len(e) for e in excl])
        flat = np.concatenate(excl) if excl else np.zeros(0, np.int64)
        query = table[torch.as_tensor(np.asarray(rows, dtype=np.int64))]
        if self.config["retriever_search"] == "ann" and self._index is None:
            self._index = ann_index(self.config, self.vectors[1])  # built once, at the first request
        return topk_unseen(self.config, query, self.vectors[1], lo[:-1], lo[1:], flat, self.n, index=self._index)

    # ---------------------------------------------------------------- public API
    def recommend(self, user_ids, k=6, with_scores=False, histories=None):
        """Top-``k`` external item ids per user (best first): retrieve ``candidate_num`` unseen items,
        rerank them. ``histories``: per user, ``None`` (the dataset's rows), a list of item ids, or
        ``(item ids, liked flags)``; the history is also what is excluded from retrieval. A user the
        run does not know is served from its given history; with an empty one (``[]``) it gets the
        most rated items of the dataset (their counts as scores). ``with_scores``: ``(item, score)``
        pairs."""
        if isinstance(user_ids, (str, int)):
            raise UserInputError("user_ids must be a list of user ids, e.g. ['196']")
        if not 1 <= int(k) <= self.n:
            raise UserInputError(f"k must be between 1 and candidate_num ({self.n}), got {k}")
        if len(user_ids) == 0:
            return []
        users, hist = self._users(user_ids, histories)
        popular = [u == 0 and len(h[0]) == 0 for u, h in zip(users, hist)]  # a new user, no history
        out = [self._popular(int(k), with_scores) if p else None for p in popular]
        rows = [r for r, p in enumerate(popular) if not p]
        if rows:
            users, hist = users[rows], [hist[r] for r in rows]
            queries = self._queries(users, hist)
            cand = self.retrieve(users, hist, queries)
            lists = self.score_lists(users, cand, self._logits(users, cand, queries), hist)
            for r, row in zip(rows, self._top(lists, int(k), with_scores)):
                out[r] = row
        return out

    def _popular(self, k, with_scores):
        """The ``k`` most rated items of the dataset (a new user without history: no retriever query)."""
        ids = self.data.popular[:k]
        tokens = self.item_tokens(ids)
        return [(t, float(self.data.counts[i])) for t, i in zip(tokens, ids)] if with_scores else tokens

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
            queries = self._queries(users, hist)
            t1 = time.perf_counter()
            cand = self.retrieve(users, hist, queries)
            t2 = time.perf_counter()
            batch = self.batch(users, cand, self._logits(users, cand, queries), hist)
            t3 = time.perf_counter()
            with torch.no_grad():
                self.model.predict(batch.to(self.config["device"]))
            t4 = time.perf_counter()
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                stages[name].append(seconds)
        return {name: 1000 * float(np.median(v)) for name, v in stages.items()}

    def _users(self, user_ids, histories):
        """Internal ids ``[B]`` (0: a user the run does not know, who brings a history) and histories."""
        if histories is not None and len(histories) != len(user_ids):
            raise UserInputError(f"histories: {len(histories)} entries for {len(user_ids)} users")
        given = [None] * len(user_ids) if histories is None else list(histories)
        users = np.array([self.user_index(u, new_ok=g is not None) for u, g in zip(user_ids, given)], dtype=np.int64)
        return users, [self._history(u, g) for u, g in zip(users, given)]

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
        u, hist = self._users([user_id], None if history is None else [history])
        if scores is None:
            logits = self._logits(u, cand[None], self._queries(u, hist))
        else:
            logits = np.asarray(scores, dtype=np.float32)[None]
            if logits.shape != (1, len(cand)) or not np.isfinite(logits).all():
                raise UserInputError(f"scores: {len(item_ids)} finite numbers expected (one per item), got "
                                     f"{np.asarray(scores).shape[0] if np.ndim(scores) else scores}")
        return self.score_lists(u, cand[None], logits, hist)

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
