"""One split's requests (train, valid or test): the tensors a list batch is sliced from, and what a
trainer or a model reads about them (label windows, prior rows, the lists' builder)."""

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_dnr import protocol
from recbole_dnr.errors import UserInputError
from recbole_dnr.recbole_models import history_window


class RequestSet:
    """One split's requests as an :class:`Interaction` of ``[R, ...]`` tensors, over the
    ``ListDataset`` ``parent``; ``lists`` is the :class:`~recbole_dnr.data.builder.ListBuilder` that
    built them (its ``stats``, the holdout retriever), None for a model's empty view."""

    def __init__(self, parent, inter, phase, lists=None):
        self.parent, self.inter, self.phase, self.lists = parent, inter, phase, lists
        self.uid_field, self.iid_field = parent.uid_field, parent.iid_field

    def view(self, inter, phase=None):
        """Requests ``inter`` (e.g. these with other x, or a subset) of the same dataset and lists."""
        return RequestSet(self.parent, inter, phase or self.phase, self.lists)

    @property
    def config(self):
        return self.parent.config

    def log_arrays(self):
        """The dataset's (user, time)-sorted log (:class:`~recbole_dnr.protocol.SortedLog`)."""
        return self.parent.log_arrays()

    def window_positives(self, request_ids):
        """Liked items of each request's label window ``[R, label_window]`` (0 = none): every
        positive the retriever should have found, retrieved or not."""
        starts = self.parent.request_layout()[0][np.asarray(request_ids)]
        items, liked = protocol.label_window(self.log_arrays(), starts, self.config["label_window"],
                                             self.config["label_threshold"])
        return torch.as_tensor(np.where(liked, items, 0))

    def window_positive_count(self, request_ids):
        """Distinct liked items in each request's label window ``[R]`` (int64 tensor)."""
        return torch.as_tensor(protocol.distinct_nonzero(self.window_positives(request_ids).numpy()))

    def prior_rows(self, request_ids):
        """``(lo, hi) [R]``: the sorted-log rows of each request's user before the request
        (what a retriever must not return)."""
        users = self.log_arrays().users
        starts = self.parent.request_layout()[0][np.asarray(request_ids)]
        return torch.as_tensor(protocol.user_bounds(users)[users[starts]]), torch.as_tensor(starts)

    def __len__(self):
        return len(self.inter)

    def __getitem__(self, index):
        """Requests ``index`` (ints or a tensor: gathered; a slice: views of the split's tensors)."""
        if isinstance(index, slice):
            return self.inter[index]
        return self.inter[torch.as_tensor(index, dtype=torch.long)]

    def inter_matrix(self, form="coo", value_field=None):
        """User-item matrix ``[user_num, item_num]`` of the **training period** only (what the
        retriever sees), for RecBole's graph models used as rerankers (LightGCN reads it)."""
        if value_field is not None:
            raise UserInputError("a reranker's interaction matrix has no value field (value_field must be None)")
        return self.parent.training_matrix(form)

    def history_item_matrix(self, value_field=None, max_history_len=None):
        """Each user's items of the training period, as RecBole's ``Dataset.history_item_matrix`` gives
        them to the models that read a user's history (FISM, NAIS, ENMF, MultiVAE, RecVAE, ...): items
        ``[user_num, L]`` (ascending ids, 0-padded; the first ``max_history_len`` kept, where RecBole
        keeps a random subset), values ``[user_num, L]`` (1) and lengths ``[user_num]``."""
        return _history(self.inter_matrix("csr"), value_field, max_history_len)

    def history_user_matrix(self, value_field=None, max_history_len=None):
        """Each item's users of the training period ``[item_num, L]``, as :meth:`history_item_matrix`."""
        return _history(self.inter_matrix("csc").T.tocsr(), value_field, max_history_len)

    @property
    def inter_num(self):
        """Interactions of the training period (DGCF sizes its batches by it)."""
        return self.inter_matrix("coo").nnz

    @property
    def inter_feat(self):
        """The training period's (user, item) pairs, one per interaction of :meth:`inter_matrix`, as an
        ``Interaction`` (SGL builds its graph from them, LINE samples them)."""
        m = self.inter_matrix("coo")
        return Interaction({self.uid_field: torch.from_numpy(m.row.astype(np.int64)),
                            self.iid_field: torch.from_numpy(m.col.astype(np.int64))})

    @property
    def field2seqlen(self):
        """The item sequence's length as RecBole's datasets give it: the history window a RecBole model
        reads (CORE sizes its position embeddings by it)."""
        return {self.iid_field + self.config["LIST_SUFFIX"]: history_window(self.config)}

    @property
    def dataset_path(self):
        """The dataset's folder (LDiffRec looks there for item embeddings when it clusters items)."""
        return self.parent.dataset_path

    @property
    def user_num(self):
        return self.parent.user_num

    @property
    def item_num(self):
        return self.parent.item_num

    def num(self, field):
        return self.parent.num(field)

    def side_features(self, source):
        """``(table, {field: FeatureType})`` of the ``source`` (``item`` | ``user``) side features RecBole
        loaded (``load_col``), id field excluded; ``(None, {})`` when none are loaded."""
        table = getattr(self.parent, f"{source}_feat", None)
        if table is None:
            return None, {}
        id_field = self.iid_field if source == "item" else self.uid_field
        columns = table.columns if hasattr(table, "columns") else table.interaction
        return table, {f: self.parent.field2type[f] for f in columns if f != id_field}

    # RecBole's context-aware models (DeepFM, DCN, ...) build one embedding per field they are shown:
    # a request's candidates carry the user id and the item id only (its rating and time are the label)
    def fields(self, ftype=None, source=None):
        """The feature fields a reranker may embed: ``[user id, item id]`` (as RecBole's ``Dataset.fields``)."""
        source_of = {self.uid_field: FeatureSource.USER_ID, self.iid_field: FeatureSource.ITEM_ID}
        return [f for f, s in source_of.items()
                if (source is None or s in source) and (ftype is None or FeatureType.TOKEN in ftype)]

    @property
    def field2type(self):
        """The ids' types and the loaded side features' (RecBole's feature models look them up)."""
        types = {self.uid_field: FeatureType.TOKEN, self.iid_field: FeatureType.TOKEN}
        for source in ("item", "user"):
            types.update(self.side_features(source)[1])
        return types

    # RecBole's feature models (SASRecF, GRU4RecF, FDSA, DIN) index these tables by id ([item_num] rows)
    def get_item_feature(self):
        """RecBole's item feature table (an ``Interaction``, row = item id; the ids alone when none is loaded)."""
        return self.parent.get_item_feature()

    def get_user_feature(self):
        """RecBole's user feature table (an ``Interaction``, row = user id; the ids alone when none is loaded)."""
        return self.parent.get_user_feature()


def _history(matrix, value_field, max_history_len):
    """Rows of a CSR 0/1 matrix as RecBole's history tensors: ids ``[rows, L]``, values, lengths ``[rows]``."""
    if value_field is not None:
        raise UserInputError("a reranker's history matrices hold the training period's 0/1 interactions only "
                             f"(value_field {value_field!r} is not available; use the model's 0/1 setting)")
    matrix.sort_indices()
    lens = np.diff(matrix.indptr)
    longest = int(lens.max(initial=0))
    width = max(1, longest if max_history_len is None else min(int(max_history_len), longest))
    rows = np.repeat(np.arange(matrix.shape[0]), lens)
    cols = np.arange(matrix.nnz) - matrix.indptr[rows]  # position of each entry within its row
    keep = cols < width
    ids = np.zeros((matrix.shape[0], width), dtype=np.int64)
    ids[rows[keep], cols[keep]] = matrix.indices[keep]
    values = np.zeros(ids.shape, dtype=np.float32)
    values[rows[keep], cols[keep]] = 1.0
    return torch.from_numpy(ids), torch.from_numpy(values), torch.from_numpy(np.minimum(lens, width).astype(np.int64))
