"""Side features: the per-field embeddings by hand, and how they join e_i and u."""

import pandas as pd
import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureType

from recbole_dnr.config import Config
from recbole_dnr.errors import UserInputError
from recbole_dnr.model.features import FeatureEmbedding, side_features
from recbole_dnr.registry import get_model
from .test_dnr import B, FakeDataset, make_batch, make_config

TYPES = {"year": FeatureType.TOKEN, "genre": FeatureType.TOKEN_SEQ, "price": FeatureType.FLOAT}


class FeatureDataset(FakeDataset):
    """30 items, items 1-3 with features (4+ never loaded); users without features."""

    def num(self, field):
        return {"year": 5, "genre": 4}.get(field, 30)

    def side_features(self, source):
        if source == "user":
            return None, {}
        table = pd.DataFrame({"item_id": [1, 2, 3], "year": [1, 2, 1],
                              "genre": [[1, 2], [3], []], "price": [0.5, 1.0, 2.0]})
        return table, dict(TYPES)


def test_feature_embedding_by_hand():
    ds = FeatureDataset()
    table, types = ds.side_features("item")
    emb = FeatureEmbedding(ds, table, "item_id", types, 8)
    year, genre, price = emb.embeddings["year"], emb.embeddings["genre"], emb.embeddings["price"]
    with torch.no_grad():
        out = emb(torch.tensor([1, 3, 7]))
        one = year.weight[1] + (genre.weight[1] + genre.weight[2]) / 2 + price(torch.tensor([0.5]))
        three = year.weight[1] + price(torch.tensor([2.0]))  # an empty genre list adds nothing
        never = price(torch.tensor([0.0]))  # item 7 has no row: padding tokens, value 0
        torch.testing.assert_close(out, torch.stack([one, three, never]))


def test_model_adds_item_features_to_candidates_and_history():
    cfg = make_config(side_features=True, score_fusion="none", dropout_prob=0.0)
    torch.manual_seed(0)
    model = get_model("PRM")(cfg, FeatureDataset()).eval()
    assert model.item_features is not None and model.user_features is None
    batch = make_batch()
    items = batch["item_id"]
    with torch.no_grad():
        torch.testing.assert_close(model.item_vectors(items),
                                   model.item_embedding(items) + model.item_features(items))
        before = model.predict(batch)
        model.item_features.embeddings["year"].weight.add_(1.0)  # features move the scores
        assert not torch.allclose(model.predict(batch), before)


def test_no_feature_loaded_is_an_error_naming_load_col():
    with pytest.raises(UserInputError, match="load_col"):
        side_features(FakeDataset.__new__(type("Empty", (), {"side_features": lambda s, src: (None, {})})),
                      make_config(), 8)


def test_side_features_without_load_col_stops_before_data(tmp_path):
    with pytest.raises(UserInputError, match="features-ml-100k"):
        Config(model="PRM", dataset="ml-100k", config_dict={"side_features": True, "checkpoint_dir": str(tmp_path)})


def test_batch_shape_is_unchanged():
    model = get_model("PRM")(make_config(side_features=True), FeatureDataset())
    batch = make_batch()
    assert model.predict(Interaction(dict(batch.interaction))).shape == (B, batch["item_id"].shape[1])
