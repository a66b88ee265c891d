"""The backbone options serve and export like the defaults: Recommender == evaluator, ONNX == eager."""


import pytest

from conftest import FEATURES
from .test_serve import test_rerank_and_its_onnx_export_give_the_evaluators_scores as serves_and_exports

@pytest.mark.parametrize("overrides", [
    {"model": "PRM", "history_encoder": "transformer", "user_interaction": "product",
     "token_norm": True, "embedding_init_std": 0.02},
    {"model": "DLCM", "history_encoder": "gru", "list_context": False, "position_embedding": False},
], ids=["PRM-transformer-product", "DLCM-gru-nolist"])
def test_backbone_options_serve_and_export(slice_root, in_session_dir, overrides, tmp_path):
    serves_and_exports(slice_root, in_session_dir, overrides, tmp_path)


def test_side_features_serve_and_export(feature_slice_root, in_session_dir, tmp_path):
    # the features make the graph read user_id (docs/serving.md)
    inputs = ["user_id", "item_id", "score", "history_item", "history_label"]
    serves_and_exports(feature_slice_root, in_session_dir, {"model": "PRM", **FEATURES, "_onnx_inputs": inputs}, tmp_path)
