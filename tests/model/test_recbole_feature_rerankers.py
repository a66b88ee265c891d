"""RecBole's feature models (SASRecF, GRU4RecF, FDSA, DIN) as rerankers: built on the item features
the lists' dataset loaded (load_col), scored per candidate, a 1-epoch smoke run, and the errors."""

import os

import pytest
import torch

from recbole_dnr.config import Config
from recbole_dnr.data import create_dataset, data_preparation
from recbole_dnr.errors import UserInputError
from recbole_dnr.quick_start import objective_function

from conftest import smoke_config

FEATURES = "features-ml-100k"  # the shipped variant: load_col with ml-100k.item's release_year and class
MODELS = ["SASRecF", "GRU4RecF", "FDSA", "DIN"]


@pytest.fixture(scope="module")
def feature_data(feature_slice_root, tmp_path_factory):
    """(config, test batch, model view) of the slice's lists with the features variant."""
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("work"))
    try:
        config = Config(config_dict=smoke_config(feature_slice_root, model="SASRecF", list_mode="slate"),
                        config_file_list=[FEATURES])
        dataset = create_dataset(config)
        _, _, test = data_preparation(config, dataset)
    finally:
        os.chdir(cwd)
    return config, next(iter(test)), dataset.model_view()


def build(model, feature_slice_root, view):
    config = Config(config_dict=smoke_config(feature_slice_root, model=model, list_mode="slate"),
                    config_file_list=[FEATURES])
    torch.manual_seed(0)
    return config.model_class(config, view)


@pytest.mark.parametrize("model", MODELS)
def test_feature_models_score_every_candidate(model, feature_slice_root, feature_data):
    _, batch, view = feature_data
    reranker = build(model, feature_slice_root, view).eval()
    with torch.no_grad():
        scores = reranker.predict(batch)
    assert scores.shape == batch["item_id"].shape and torch.isfinite(scores).all()


def test_item_features_move_the_scores(feature_slice_root, feature_data):
    """SASRecF reads the history's item classes: changing their embedding changes the scores."""
    _, batch, view = feature_data
    reranker = build("SASRecF", feature_slice_root, view).eval()
    layer = reranker.model.feature_embed_layer
    assert layer.token_seq_field_names["item"] == ["class"]  # the yaml's selected_features, loaded
    assert len(layer.item_feat) == view.item_num  # RecBole's table, one row per item id
    with torch.no_grad():
        before = reranker.predict(batch)
        layer.token_seq_embedding_table["item"][0].weight.add_(1.0)
        assert not torch.allclose(reranker.predict(batch), before)


def test_field_types_include_the_loaded_features(feature_data):
    _, _, view = feature_data
    types = view.field2type
    assert {"user_id", "item_id", "release_year", "class", "age", "gender", "occupation"} <= set(types)
    assert view.get_item_feature()["class"].shape[0] == view.item_num


@pytest.mark.parametrize("model", ["SASRecF", "GRU4RecF", "FDSA"])
def test_without_item_features_the_error_names_load_col(model):
    with pytest.raises(UserInputError, match="load_col.*features-ml-100k"):
        Config(model=model, dataset="ml-100k", config_dict={"list_mode": "slate", "state": "ERROR"})


def test_dien_is_refused_naming_what_it_reads(feature_slice_root, feature_data):
    with pytest.raises(UserInputError, match="sampled negative items"):
        build("DIEN", feature_slice_root, feature_data[2])


def test_smoke_sasrecf_one_epoch_with_features(feature_slice_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = smoke_config(feature_slice_root, model="SASRecF", list_mode="slate", epochs=1)
    result = objective_function(cfg, config_file_list=[FEATURES], saved=False)
    assert 0.0 < result["test_result"]["ndcg@6"] <= 1.0
