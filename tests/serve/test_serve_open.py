"""Serving beyond the training host: bundles that serve with no dataset, new users (a given history,
or the popularity order), custom model classes (``--import``), ``recbole-dnr serve`` and the
ONNX inputs docs/serving.md lists."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from conftest import smoke_config
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_LEN
from recbole_dnr.storage import CorruptFileError
from .test_serve import REPO, _free_port, prm, train, wait_until_healthy  # noqa: F401 (prm: a fixture)


@pytest.fixture(scope="module")
def bundle(prm, tmp_path_factory):
    from recbole_dnr import Recommender

    path = str(tmp_path_factory.mktemp("bundle") / "prm")
    Recommender.load(prm[0].saved_model_file).save(path)
    return path


def _users(ds, ids):
    return [str(t) for t in ds.id2token(ds.uid_field, ids)]


def test_bundle_serves_what_the_checkpoint_serves_without_the_data(prm, bundle, monkeypatch):
    from recbole_dnr import Recommender
    from recbole_dnr.serve import recommender

    trainer, ds, _, _ = prm
    want = Recommender.load(trainer.saved_model_file)

    def no_data(config):
        raise AssertionError("a bundle must not read the atomic files")

    monkeypatch.setattr(recommender, "create_dataset", no_data)
    got = Recommender.load(bundle)
    users = _users(ds, np.arange(1, 30))
    assert got.user_ids == want.user_ids
    assert got.recommend(users, k=6, with_scores=True) == want.recommend(users, k=6, with_scores=True)
    items = [str(t) for t in ds.id2token(ds.iid_field, np.arange(3, 20))]
    for user in users[:5]:
        assert got.rerank(user, items, with_scores=True) == want.rerank(user, items, with_scores=True)
    h = (items[:4], [1, 0, 1, 1])
    assert got.recommend(["new"], histories=[h]) == want.recommend(["new"], histories=[h])


def test_a_damaged_or_mixed_bundle_is_refused(bundle, tmp_path):
    from recbole_dnr import Recommender

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    data = copy / "data.pth"
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match="data.pth"):
        Recommender.load(str(copy))
    with pytest.raises(UserInputError, match="not a serving bundle"):
        Recommender.load(str(tmp_path))


def test_a_new_user_is_served_from_the_given_history(prm):
    from recbole_dnr import Recommender

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    items = [str(t) for t in ds.id2token(ds.iid_field, np.arange(1, 9))]
    liked = [1, 0, 1, 0, 0, 1, 0, 0]
    batch = rec.batch_tensors(["someone-new"], histories=[(items, liked)])
    assert batch[rec.uid].tolist() == [0] and batch[HISTORY_LEN].tolist() == [8]
    # the retriever's query: the mean of the liked items' vectors; the candidates: its top-n of the unseen items
    query = rec.vectors[1][torch.as_tensor([1, 3, 6])].mean(0)
    logits = rec.vectors[1] @ query
    logits[0] = -torch.inf
    logits[torch.arange(1, 9)] = -torch.inf
    assert set(batch[rec.iid][0].tolist()) == set(torch.topk(logits, rec.n).indices.tolist())
    got = rec.recommend(["someone-new"], k=6, histories=[(items, liked)])
    assert len(set(got[0])) == 6 and not set(got[0]) & set(items)
    with pytest.raises(UserInputError, match=r"unknown user 'someone-new'.*history you pass"):
        rec.recommend(["someone-new"])


def test_a_new_user_without_history_gets_the_most_rated_items(prm):
    from recbole_dnr import Recommender

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    counts = np.bincount(ds.log_arrays().items, minlength=ds.item_num)
    top = sorted(range(1, ds.item_num), key=lambda i: (-counts[i], i))[:5]
    want = [(str(t), float(counts[i])) for t, i in zip(ds.id2token(ds.iid_field, top), top)]
    known = _users(ds, [2])
    got = rec.recommend(["new-1", known[0], "new-2"], k=5, with_scores=True, histories=[[], None, {"items": []}])
    assert got[0] == got[2] == want
    assert got[1] == rec.recommend(known, k=5, with_scores=True)[0]  # the others are served as alone
    with pytest.raises(UserInputError, match="empty history"):
        rec.rerank("new-1", [t for t, _ in want], history=[])
    assert len(rec.rerank("new-1", [t for t, _ in want], scores=[1.0, 2, 3, 4, 5], history=[])) == 5


def test_cli_serves_new_users_and_exports_a_bundle(prm, tmp_path, capsys):
    from recbole_dnr import Recommender
    from recbole_dnr.cli import main

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    items = [str(t) for t in ds.id2token(ds.iid_field, np.arange(4, 10))]
    known = _users(ds, [3])[0]
    given = json.dumps({"new": {"items": items, "liked": [1, 1, 0, 0, 1, 0]}, "newer": []})
    main(["recommend", f"--model_file={trainer.saved_model_file}", f"--users=new,{known},newer", "--k=4",
          f"--histories={given}", f"--out={tmp_path / 'r.json'}"])
    got = json.load(open(tmp_path / "r.json"))
    want = rec.recommend(["new", known, "newer"], k=4, histories=[(items, [1, 1, 0, 0, 1, 0]), None, []])
    assert [[e["item"] for e in got[u]] for u in ("new", known, "newer")] == want
    main(["export", f"--model_file={trainer.saved_model_file}", f"--bundle={tmp_path / 'b'}"])
    assert "serve it with: recbole-dnr serve" in capsys.readouterr().out
    main(["recommend", f"--model_file={tmp_path / 'b'}", f"--users={known}", "--k=4", f"--out={tmp_path / 'b.json'}"])
    assert [e["item"] for e in json.load(open(tmp_path / "b.json"))[known]] == want[1]
    with pytest.raises(SystemExit, match="names users not in --users"):
        main(["recommend", f"--model_file={trainer.saved_model_file}", f"--users={known}", f"--histories={given}"])


CUSTOM = """
    import torch.nn as nn
    from recbole_dnr.model.abstract_reranker import NeuralReranker
    from recbole_dnr.registry import register_model

    @register_model
    class TmpModuleReranker(NeuralReranker):
        def __init__(self, config, dataset):
            super().__init__(config, dataset)
            self.mix = nn.Linear(self.hidden_size, self.hidden_size)

        def encode_list(self, tokens):  # [B, n, D] -> [B, n, D]
            return self.mix(tokens).relu()
"""


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "recbole_dnr.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": REPO})


def test_a_custom_reranker_serves_with_import(slice_root, tmp_path):
    """Trained in a process that imported its module; served where it is not importable by name."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "tmp_custom_models.py").write_text(textwrap.dedent(CUSTOM))
    cfg = smoke_config(slice_root, model="TmpModuleReranker", epochs=1)
    code = (f"import sys, json; sys.path.insert(0, {str(models)!r}); import tmp_custom_models; "
            "from recbole_dnr.quick_start import run_recbole_dnr; "
            f"print(json.dumps(run_recbole_dnr(config_dict={cfg!r})['model_file']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr[-3000:]
    model_file = os.path.join(tmp_path, json.loads(done.stdout.strip().splitlines()[-1]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bare = _cli(["recommend", f"--model_file={model_file}", "--users=1"], elsewhere)
    assert bare.returncode != 0 and "Traceback" not in bare.stderr and "CorruptFileError" not in bare.stderr
    assert bare.stderr.strip().count("\n") == 0, bare.stderr[-2000:]
    assert "TmpModuleReranker" in bare.stderr and "--import tmp_custom_models" in bare.stderr
    module = str(models / "tmp_custom_models.py")
    served = _cli(["recommend", f"--model_file={model_file}", "--users=1", f"--import={module}"], elsewhere)
    assert served.returncode == 0, served.stderr[-2000:]
    exported = _cli(["export", f"--model_file={model_file}", "--bundle=b", f"--import={module}"], elsewhere)
    assert exported.returncode == 0, exported.stderr[-2000:]
    from_bundle = _cli(["recommend", "--model_file=b", "--users=1", f"--import={module}"], elsewhere)
    assert from_bundle.returncode == 0 and from_bundle.stdout == served.stdout, from_bundle.stderr[-2000:]


@pytest.mark.parametrize("module, name, hint", [
    ("no_such_module_here", "UnimportedReranker", "--import no_such_module_here (or its .py file)"),
    ("__main__", "UnimportedReranker", "--import <the module or .py file that defines it"),
    ("recbole_dnr.model.dnr", "DNR_NoSuchBackbone", "--import <the module or .py file that defines it"),
])
def test_a_model_class_that_cannot_be_imported_is_named_with_the_fix(module, name, hint):
    from recbole_dnr.serve import model_import

    pickled = b"\x80\x04c" + f"{module}\n{name}\n".encode() + b"."  # a pickled reference to module.name
    with pytest.raises(UserInputError, match=f"model class {name} .*{re.escape(hint)}"):
        model_import.PICKLE.load(io.BytesIO(pickled))
    assert model_import.PICKLE.load(io.BytesIO(b"\x80\x04cos.path\njoin\n.")) is os.path.join


def test_serve_subcommand_from_a_bundle_over_http(prm, bundle, tmp_path):
    httpx = pytest.importorskip("httpx")
    import recbole_dnr
    from recbole_dnr import Recommender

    trainer, ds, _, _ = prm
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "recbole_dnr.cli", "serve", f"--model_file={bundle}",
                               "--host=127.0.0.1", f"--port={port}", "--access_log"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONPATH": REPO})
    base = f"http://127.0.0.1:{port}"
    try:
        first = server.stdout.readline()
        assert first.strip() == f"serving PRM on http://127.0.0.1:{port}, docs at /docs", first
        wait_until_healthy(server, base)
        assert httpx.get(base + "/openapi.json").json()["info"]["version"] == recbole_dnr.__version__
        rec = Recommender.load(trainer.saved_model_file)
        items = [str(t) for t in ds.id2token(ds.iid_field, np.arange(4, 10))]
        known = _users(ds, [1])[0]
        body = {"user_ids": ["new", known, "newer"], "k": 5,
                "histories": [{"items": items, "liked": [1, 0, 1, 0, 0, 1]}, None, {"items": []}]}
        got = httpx.post(base + "/recommend", json=body).json()
        assert got["items"] == rec.recommend(["new", known, "newer"], k=5,
                                             histories=[(items, [1, 0, 1, 0, 0, 1]), None, []])
        body = {"user_id": "new", "item_ids": items[3:], "history": {"items": items[:3]}}
        got = httpx.post(base + "/rerank", json=body)
        assert got.json()["items"] == rec.rerank("new", items[3:], history=items[:3])
        bad = httpx.post(base + "/recommend", json={"user_ids": ["new"]})
        assert bad.status_code == 400 and "history you pass" in bad.json()["detail"]
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert re.search(r'"POST /recommend HTTP/1.1" 200', log), log[-2000:]  # the access log
