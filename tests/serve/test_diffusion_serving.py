"""The diffusion rerankers serve like the others (Recommender == evaluator); DiffuRec exports to ONNX
(== eager), DCDR refuses with its reason."""

import pytest

from recbole_dnr.errors import UserInputError

from .test_serve import test_rerank_and_its_onnx_export_give_the_evaluators_scores as serves_and_exports


@pytest.mark.parametrize("overrides", [
    {"model": "DiffuRec", "diffurec_eval_steps": 4},
    {"model": "DNR_DiffuRec", "diffurec_eval_steps": 4, "lambda_e": 1},
], ids=["DiffuRec", "DNR_DiffuRec"])
def test_diffusion_rerankers_serve_and_export(slice_root, in_session_dir, overrides, tmp_path):
    serves_and_exports(slice_root, in_session_dir, overrides, tmp_path)


@pytest.mark.parametrize("model", ["DCDR", "DNR_DCDR"])
def test_dcdr_serves_like_the_evaluator_and_refuses_export(slice_root, in_session_dir, model, tmp_path):
    # the equivalence checks run first; then the export must stop with the reason, not a trace error
    with pytest.raises(UserInputError, match="DCDR cannot be exported .*beam decoding"):
        serves_and_exports(slice_root, in_session_dir, {"model": model, "lambda_e": 1}, tmp_path)
