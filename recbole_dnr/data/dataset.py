"""List-wise dataset: RecBole loads and filters the atomic files (and keeps the id maps); we sort
the log by (user, time) and cut it into requests (protocol: docs/protocol.md). The candidate lists
are built by :class:`~recbole_dnr.data.builder.ListBuilder`."""

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.data.interaction import Interaction

from recbole_dnr import protocol
from recbole_dnr.data.request_set import RequestSet


class ListDataset(Dataset):
    """RecBole ``Dataset`` holding the (user, time)-sorted log, the request layout and the
    training period; ``ListBuilder(dataset).build()`` gives its train/valid/test :class:`RequestSet` s."""

    def build(self):
        raise TypeError("a ListDataset's lists are built by recbole_dnr.data.builder.ListBuilder: "
                        "ListBuilder(dataset).build() (or recbole_dnr.data.data_preparation)")

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
                raise RuntimeError("ListDataset needs the raw DataFrame log, before RecBole's build() converts it")
            users = f[self.uid_field].to_numpy().astype(np.int64)
            items = f[self.iid_field].to_numpy().astype(np.int64)
            ratings = f[self.config["RATING_FIELD"]].to_numpy(dtype=np.float64)
            times = f[self.config["TIME_FIELD"]].to_numpy(dtype=np.float64)
            order = protocol.sort_log(users, times)
            self._sorted_log = protocol.SortedLog(order, users[order], items[order], ratings[order], times[order])
            self._change_feat_format()  # RecBole's build() does this first, too
        return self._sorted_log

    def request_layout(self):
        """``(starts, splits, users)`` of every request (request id = index), cut from the sorted log."""
        if getattr(self, "_layout", None) is None:
            _, users, _, _, _ = self.log_arrays()
            cfg = self.config
            self._layout = protocol.cut_requests(users, cfg["slate_size"], cfg["valid_slates"], cfg["test_slates"])
        return self._layout

    def training_period_mask(self):
        """Bool ``[rows]`` over the sorted log: the rows before each user's first valid/test slate
        (what a retriever may be trained on)."""
        starts, splits, _ = self.request_layout()
        return protocol.training_rows(self.log_arrays()[1], starts, splits)

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

    def sorted_log_items(self):
        """Item of every row of the (user, time)-sorted log ``[rows]`` (int64 tensor)."""
        return torch.as_tensor(self.log_arrays()[2])

    def model_view(self):
        """An empty :class:`RequestSet`: what a model is built on when no lists are needed (serving)."""
        return RequestSet(self, Interaction({}), "serve")
