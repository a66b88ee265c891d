"""What serving needs of a run's dataset, and no more: :class:`ServingData`.

The id maps (external token <-> internal id), each known user's rated items in time order with
their liked flags z (rating >= ``label_threshold``; every rated item is excluded from retrieval,
the last ``max_history`` are the reranker's history) and the items' interaction counts (the
popularity order new users without a history get). It is read from the atomic files when a
checkpoint is loaded, or from a bundle (:mod:`recbole_dnr.serve.bundle`), which needs no data.
"""

import numpy as np
from recbole.data.interaction import Interaction

from recbole_dnr import protocol
from recbole_dnr.data.request_set import RequestSet
from recbole_dnr.errors import UserInputError


class ServingData:
    """Id maps and histories of one run. ``users``, ``items`` ``[rows]`` (internal ids) and ``liked``
    ``[rows]`` (0/1) are the log sorted by (user, time); index 0 of the token arrays is padding."""

    def __init__(self, config, uid_field, iid_field, user_tokens, item_tokens, users, items, liked):
        self.config, self.uid_field, self.iid_field = config, uid_field, iid_field
        self.user_tokens = np.asarray(user_tokens, dtype=object)
        self.item_tokens = np.asarray(item_tokens, dtype=object)
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.liked = np.asarray(liked, dtype=np.int64)
        self.user_ids = {str(t): i for i, t in enumerate(self.user_tokens)}
        self.item_ids = {str(t): i for i, t in enumerate(self.item_tokens)}
        self.first = protocol.user_bounds(self.users)
        self.end = protocol.user_end(self.users) if len(self.users) else np.zeros(0, np.int64)
        counts = np.bincount(self.items, minlength=len(self.item_tokens))
        counts[0] = -1  # padding is never recommended
        # most rated first, ties by item id (a stable order, the same on every host)
        self.popular = np.argsort(-counts, kind="stable")[:len(self.item_tokens) - 1]
        self.counts = counts

    @classmethod
    def from_dataset(cls, dataset, config):
        """From a loaded :class:`~recbole_dnr.data.dataset.ListDataset` (its filtered atomic files)."""
        log = dataset.log_arrays()
        uid, iid = dataset.uid_field, dataset.iid_field
        return cls(config, uid, iid, dataset.field2id_token[uid], dataset.field2id_token[iid], log.users, log.items,
                   (log.ratings >= config["label_threshold"]).astype(np.int64))

    def state(self):
        """The arrays a bundle stores (int32 ids, int8 flags: a quarter of int64's size)."""
        return {"uid_field": self.uid_field, "iid_field": self.iid_field,
                "user_tokens": [str(t) for t in self.user_tokens], "item_tokens": [str(t) for t in self.item_tokens],
                "users": self.users.astype(np.int32), "items": self.items.astype(np.int32),
                "liked": self.liked.astype(np.int8)}

    @classmethod
    def from_state(cls, config, state):
        return cls(config, state["uid_field"], state["iid_field"], state["user_tokens"], state["item_tokens"],
                   state["users"], state["items"], state["liked"])

    def history(self, u):
        """``(items, z)`` of internal user ``u``'s rows, oldest first (empty for a new user, ``u = 0``)."""
        if u <= 0 or u >= len(self.end) or u >= len(self.first) or self.first[u] < 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return self.items[self.first[u]:self.end[u]], self.liked[self.first[u]:self.end[u]]

    # ---------------------------------------------------------------- what a model is built on
    @property
    def user_num(self):
        return len(self.user_tokens)

    @property
    def item_num(self):
        return len(self.item_tokens)

    def num(self, field):
        if field == self.uid_field:
            return self.user_num
        if field == self.iid_field:
            return self.item_num
        raise UserInputError(f"this model reads the field {field!r}, which a serving bundle does not hold: "
                             "serve it from its checkpoint (with the dataset's atomic files)")

    @property
    def dataset_path(self):
        raise UserInputError("this model reads files of its dataset's folder when it is built: serve it from its "
                             "checkpoint (with the dataset's atomic files), not from a bundle")

    @property
    def item_feat(self):
        raise UserInputError("this model embeds side features (side_features: True), which a serving bundle does not "
                             "hold yet: serve it from its checkpoint (with the dataset's atomic files)")

    user_feat = item_feat

    def training_matrix(self, form="coo"):
        raise UserInputError("this model reads the whole training matrix when it is built (a graph model): serve "
                             "it from its checkpoint (with the dataset's atomic files), not from a bundle")

    def model_view(self):
        """An empty :class:`RequestSet` over these ids: what the model is built on."""
        return RequestSet(self, Interaction({}), "serve")
