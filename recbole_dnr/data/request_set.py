"""One split's requests (train, valid or test): the tensors a list batch is sliced from."""

import torch
from recbole.utils import FeatureSource, FeatureType

from recbole_dnr.errors import UserInputError


class RequestSet:
    """One split's requests as an :class:`Interaction` of ``[R, ...]`` tensors."""

    def __init__(self, parent, inter, phase):
        self.parent, self.inter, self.phase = parent, inter, phase
        self.uid_field, self.iid_field = parent.uid_field, parent.iid_field

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

    @property
    def user_num(self):
        return self.parent.user_num

    @property
    def item_num(self):
        return self.parent.item_num

    def num(self, field):
        return self.parent.num(field)

    # RecBole's context-aware models (DeepFM, DCN, ...) build one embedding per field they are shown:
    # a request's candidates carry the user id and the item id only (its rating and time are the label)
    def fields(self, ftype=None, source=None):
        """The feature fields a reranker may embed: ``[user id, item id]`` (as RecBole's ``Dataset.fields``)."""
        source_of = {self.uid_field: FeatureSource.USER_ID, self.iid_field: FeatureSource.ITEM_ID}
        return [f for f, s in source_of.items()
                if (source is None or s in source) and (ftype is None or FeatureType.TOKEN in ftype)]

    @property
    def field2type(self):
        return {self.uid_field: FeatureType.TOKEN, self.iid_field: FeatureType.TOKEN}
