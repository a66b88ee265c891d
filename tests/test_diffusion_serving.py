"""The diffusion rerankers serve and export like the others: Recommender == evaluator, ONNX == eager."""

import pytest

from test_serve import test_rerank_and_its_onnx_export_give_the_evaluators_scores as serves_and_exports


@pytest.mark.parametrize("overrides", [
    {"model": "DiffuRec", "diffurec_eval_steps": 4},
    {"model": "DNR_DiffuRec", "diffurec_eval_steps": 4, "lambda_e": 1},
], ids=["DiffuRec", "DNR_DiffuRec"])
def test_diffusion_rerankers_serve_and_export(slice_root, in_session_dir, overrides, tmp_path):
    serves_and_exports(slice_root, in_session_dir, overrides, tmp_path)
