"""What serving needs of a run's dataset, and no more: :class:`ServingData`.

The id maps (external token <-> internal id), each known user's rated items in time order with
their liked flags z (rating >= ``label_threshold``; every rated item is excluded from retrieval,
the last ``max_history`` are the reranker's history), the items' interaction counts (the
popularity order new users without a history get) and the side features loaded (``load_col``'s
.item/.user fields, one row per id: a model looks them up by id). It is read from the atomic files
when a checkpoint is loaded, or from a bundle (:mod:`recbole_dnr.serve.bundle`), which needs no data.
"""

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureType

from recbole_dnr import protocol
from recbole_dnr.data.request_set import RequestSet
from recbole_dnr.errors import UserInputError


class ServingData:
    """Id maps and histories of one run. ``users``, ``items`` ``[rows]`` (internal ids) and ``liked``
    ``[rows]`` (0/1) are the log sorted by (user, time); index 0 of the token arrays is padding."""

    def __init__(self, config, uid_field, iid_field, user_tokens, item_tokens, users, items, liked, features=None):
        self.config, self.uid_field, self.iid_field = config, uid_field, iid_field
        # {"item" | "user": {"types": {field: FeatureType}, "nums": {field: vocabulary size},
        #  "columns": {field (id field too): [ids, ...] tensor}}}
        self.features = features or {}
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
                   (log.ratings >= config["label_threshold"]).astype(np.int64), _features(dataset))

    def state(self):
        """The arrays a bundle stores (int32 ids, int8 flags: a quarter of int64's size)."""
        return {"uid_field": self.uid_field, "iid_field": self.iid_field,
                "user_tokens": [str(t) for t in self.user_tokens], "item_tokens": [str(t) for t in self.item_tokens],
                "users": self.users.astype(np.int32), "items": self.items.astype(np.int32),
                "liked": self.liked.astype(np.int8),
                "features": _retyped(self.features, lambda t: t.value)}

    @classmethod
    def from_state(cls, config, state):
        if config["side_features"] and "features" not in state:
            raise UserInputError("this bundle of a side_features model was written by a recbole_dnr that did not "
                                 "keep the feature tables: export it again from its checkpoint")
        features = _retyped(state.get("features", {}), FeatureType)
        return cls(config, state["uid_field"], state["iid_field"], state["user_tokens"], state["item_tokens"],
                   state["users"], state["items"], state["liked"], features)

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
        for part in self.features.values():
            if field in part["nums"]:
                return part["nums"][field]
        raise UserInputError(f"this model reads the field {field!r}, which a serving bundle does not hold: "
                             "serve it from its checkpoint (with the dataset's atomic files)")

    @property
    def dataset_path(self):
        raise UserInputError("this model reads files of its dataset's folder when it is built: serve it from its "
                             "checkpoint (with the dataset's atomic files), not from a bundle")

    @property
    def field2type(self):
        types = {self.uid_field: FeatureType.TOKEN, self.iid_field: FeatureType.TOKEN}
        for part in self.features.values():
            types.update(part["types"])
        return types

    def _feature_table(self, source):
        part = self.features.get(source)
        return None if part is None else Interaction(dict(part["columns"]))

    @property
    def item_feat(self):
        """The loaded item features (an ``Interaction``, row = item id), or None."""
        return self._feature_table("item")

    @property
    def user_feat(self):
        """The loaded user features (an ``Interaction``, row = user id), or None."""
        return self._feature_table("user")

    def get_item_feature(self):
        """As RecBole's ``Dataset.get_item_feature``: the features, or the ids alone when none is loaded."""
        return self._feature_table_or_ids("item", self.iid_field, self.item_num)

    def get_user_feature(self):
        """As RecBole's ``Dataset.get_user_feature``: the features, or the ids alone when none is loaded."""
        return self._feature_table_or_ids("user", self.uid_field, self.user_num)

    def _feature_table_or_ids(self, source, id_field, num):
        table = self._feature_table(source)
        return Interaction({id_field: torch.arange(num)}) if table is None else table

    def training_matrix(self, form="coo"):
        raise UserInputError("this model reads the whole training matrix when it is built (a graph model): serve "
                             "it from its checkpoint (with the dataset's atomic files), not from a bundle")

    def model_view(self):
        """An empty :class:`RequestSet` over these ids: what the model is built on."""
        return RequestSet(self, Interaction({}), "serve")


def _features(dataset):
    """The side features ``dataset`` loaded, as :class:`ServingData` keeps them (``{}`` when none)."""
    view, out = dataset.model_view(), {}
    for source, id_field in (("item", dataset.iid_field), ("user", dataset.uid_field)):
        table, types = view.side_features(source)
        if table is None:
            continue
        out[source] = {"types": types, "nums": {f: int(dataset.num(f)) for f in types},
                       "columns": {f: table[f].clone() for f in [id_field, *types]}}
    return out


def _retyped(features, convert):
    """``features`` with each field's type converted (FeatureType <-> its string, as a bundle stores it)."""
    return {source: {**part, "types": {f: convert(t) for f, t in part["types"].items()}}
            for source, part in features.items()}
