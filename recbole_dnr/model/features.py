"""Side features of items and users (RecBole's ``.item`` / ``.user`` atomic files), as embeddings.

The fields are the ones RecBole loaded (``load_col: {item: [...], user: [...]}``); each becomes a
vector of width D added to the id embedding: ``token`` an embedding, ``token_seq`` the mean of its
tokens' embeddings, ``float`` a Linear(1, D) of the value. The feature tables are buffers, so a
checkpoint (and serving, and export) carries them and looks features up by id; an unknown id
(0, padding or a user unseen in training) has all-padding features and gets the zero vector
from token fields.
"""

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from recbole.utils import FeatureType

from recbole_dnr.errors import UserInputError

KINDS = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ, FeatureType.FLOAT)


def _column(table, field):
    """A feature column as a tensor: ``[N]`` (token, float) or ``[N, L]`` (token_seq, 0-padded)."""
    values = table[field]
    if isinstance(table, pd.DataFrame):
        values = values.to_numpy()
        if values.dtype == object:  # token_seq: one array per row
            width = max(1, max(len(v) for v in values))
            out = np.zeros((len(values), width), dtype=np.int64)
            for row, v in enumerate(values):
                out[row, :len(v)] = v
            return torch.from_numpy(out)
        return torch.as_tensor(values)
    return values


class FeatureEmbedding(nn.Module):
    """Sum of the side-feature embeddings of ids ``[...] -> [..., D]`` (one table per entity)."""

    def __init__(self, dataset, table, id_field, types, hidden):
        super().__init__()
        self.fields, self.kinds = list(types), list(types.values())
        n = dataset.num(id_field)
        ids = _column(table, id_field).long()
        self.embeddings = nn.ModuleDict()
        for i, (field, kind) in enumerate(types.items()):
            col = _column(table, field)
            full = torch.zeros((n,) + tuple(col.shape[1:]), dtype=torch.float32 if kind == FeatureType.FLOAT
                               else torch.long)
            full[ids] = col.to(full.dtype)  # rows in id order; ids never loaded keep 0 (padding)
            self.register_buffer(f"table_{i}", full)
            if kind == FeatureType.FLOAT:
                self.embeddings[field] = nn.Linear(1, hidden)
            else:
                self.embeddings[field] = nn.Embedding(dataset.num(field), hidden, padding_idx=0)

    def forward(self, ids):
        out = 0
        for i, (field, kind) in enumerate(zip(self.fields, self.kinds)):
            value = getattr(self, f"table_{i}")[ids]
            layer = self.embeddings[field]
            if kind == FeatureType.FLOAT:
                out = out + layer(value.unsqueeze(-1))
            elif kind == FeatureType.TOKEN_SEQ:
                mask = (value > 0).float().unsqueeze(-1)
                out = out + (layer(value) * mask).sum(-2) / mask.sum(-2).clamp(min=1)
            else:
                out = out + layer(value)
        return out


def side_features(dataset, config, hidden):
    """(item, user) :class:`FeatureEmbedding` s (or None where nothing is loaded) for ``side_features: True``."""
    out = []
    for source, id_field in (("item", config["ITEM_ID_FIELD"]), ("user", config["USER_ID_FIELD"])):
        table, types = dataset.side_features(source)
        types = {f: t for f, t in types.items() if t in KINDS}
        out.append(FeatureEmbedding(dataset, table, id_field, types, hidden) if types else None)
    if out == [None, None]:
        raise UserInputError(
            "side_features: True found no item or user feature loaded. Name the fields of the .item/.user "
            "atomic files in load_col, e.g. load_col: {inter: [user_id, item_id, rating, timestamp], "
            "item: [item_id, release_year, class], user: [user_id, age, gender, occupation]} "
            "(or use the shipped variant: --config_files=features-ml-100k)")
    return out
