"""Side features in a serving bundle: the bundle carries the loaded .item/.user tables, so a caller
gives only ids and histories, and the bundle scores as the checkpoint, the evaluator and ONNX do."""


import numpy as np
import pytest
import torch

from recbole_dnr.fields import REQUEST_ID, SCORE
from conftest import FEATURES
from .test_serve import request_history, train

def served(trainer, tmp_path):
    """(the checkpoint's Recommender, the Recommender of the bundle it writes)."""
    from recbole_dnr import Recommender

    rec = Recommender.load(trainer.saved_model_file)
    return rec, Recommender.load(rec.save(str(tmp_path / "bundle")))


def test_a_side_features_bundle_scores_as_the_evaluator_and_exports(feature_slice_root, in_session_dir, tmp_path):
    trainer, ds, test_data, out = train(feature_slice_root, model="PRM", **FEATURES)
    checkpoint, bundle = served(trainer, tmp_path)
    assert bundle.model.item_features is not None and bundle.model.user_features is not None
    for name, table in checkpoint.model.state_dict().items():  # the feature tables are rebuilt as trained
        torch.testing.assert_close(bundle.model.state_dict()[name], table, rtol=0, atol=0)
    split = test_data._dataset
    row_of = {int(q): i for i, q in enumerate(split.inter[REQUEST_ID])}
    for pos in range(0, len(out["scores"]), max(1, len(out["scores"]) // 6)):
        user = str(ds.id2token(ds.uid_field, [int(out["user"][pos])])[0])
        items = [str(t) for t in ds.id2token(ds.iid_field, out["items"][pos].numpy())]
        lists = bundle.score(user, items, history=request_history(ds, split, row_of[int(out[REQUEST_ID][pos])]))
        torch.testing.assert_close(lists.x[0], out[SCORE][pos], rtol=0, atol=1e-6)
        torch.testing.assert_close(lists.scores[0], out["scores"][pos], rtol=0, atol=1e-5)
    pytest.importorskip("onnxruntime")
    from recbole_dnr.serve import export

    users = [str(t) for t in ds.id2token(ds.uid_field, np.arange(1, 40))]
    batch = bundle.batch_tensors(users)
    with torch.no_grad():
        eager = bundle.model.predict(batch)
        torch.testing.assert_close(eager, checkpoint.model.predict(checkpoint.batch_tensors(users)), rtol=0, atol=0)
    session = export.OnnxReranker(export.export_onnx(bundle, str(tmp_path / "model.onnx")))
    torch.testing.assert_close(torch.as_tensor(session.scores(batch)), eager, rtol=0, atol=1e-5)
    assert "user_id" in session.names  # the user's features are looked up inside the graph


def test_a_recbole_feature_model_bundle_scores_as_its_checkpoint(feature_slice_root, in_session_dir, tmp_path):
    trainer = train(feature_slice_root, model="SASRecF", list_mode="slate", load_col=FEATURES["load_col"])[0]
    checkpoint, bundle = served(trainer, tmp_path)
    users = checkpoint.user_ids[:20]
    with torch.no_grad():
        torch.testing.assert_close(bundle.model.predict(bundle.batch_tensors(users)),
                                   checkpoint.model.predict(checkpoint.batch_tensors(users)), rtol=0, atol=0)
