"""Serving (issue 36): Recommender.load / recommend / rerank against the evaluator, the batch CLI,
the HTTP service over real HTTP on 127.0.0.1, and the errors a user meets."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import smoke_config
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, REQUEST_ID, SCORE
from recbole_dnr.storage import CorruptFileError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def train(slice_root, **overrides):
    """Train one model on the slice; ``(trainer, dataset, test loader, last_eval)``."""
    from recbole_dnr.quick_start import build

    cfg = smoke_config(slice_root, epochs=1, **overrides)
    config, ds, (train_data, valid_data, test_data), model, trainer = build(config_dict=cfg)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    trainer.evaluate(test_data, load_best_model=True)
    trainer.saved_model_file = os.path.abspath(trainer.saved_model_file)
    return trainer, ds, test_data, trainer.last_eval


def request_history(ds, split, r):
    """External item ids and liked flags of test request ``r``'s history (as the evaluator saw it)."""
    n = int(split.inter[HISTORY_LEN][r])
    items = split.inter[HISTORY_ITEM][r].numpy()
    liked = split.inter[HISTORY_LABEL][r].numpy()
    items, liked = items[len(items) - n:], liked[len(items) - n:]  # left-padded
    return [str(t) for t in ds.id2token(ds.iid_field, items)], liked.tolist()


@pytest.fixture(scope="module")
def prm(slice_root, session_dir):
    here = os.getcwd()
    os.chdir(session_dir)
    try:
        yield train(slice_root, model="PRM")
    finally:
        os.chdir(here)


@pytest.mark.parametrize("overrides", [
    {"model": "PRM"},
    {"model": "DNR_PRM"},
    {"model": "SASRec", "list_mode": "slate"},
    {"model": "Retriever"},
    {"model": "DLCM"}, {"model": "SetRank"}, {"model": "PIER"}, {"model": "MiDNN"},
    {"model": "Caser", "list_mode": "slate"}, {"model": "MIR"},
], ids=["PRM", "DNR_PRM", "SASRec-reranker", "Retriever", "DLCM", "SetRank", "PIER", "MiDNN", "Caser-reranker", "MIR"])
def test_rerank_and_its_onnx_export_give_the_evaluators_scores(slice_root, in_session_dir, overrides, tmp_path):
    from recbole_dnr import Recommender

    run = {k: v for k, v in overrides.items() if not k.startswith("_")}  # "_onnx_inputs": a test's expectation
    trainer, ds, test_data, out = (train(slice_root, **run) if overrides["model"] != "Retriever"
                                   else _floor(slice_root))
    rec = Recommender.load(trainer.saved_model_file)
    split = test_data._dataset
    row_of = {int(q): i for i, q in enumerate(split.inter[REQUEST_ID])}
    for pos in range(0, len(out["scores"]), max(1, len(out["scores"]) // 6)):
        r = row_of[int(out[REQUEST_ID][pos])]
        user = str(ds.id2token(ds.uid_field, [int(out["user"][pos])])[0])
        items = [str(t) for t in ds.id2token(ds.iid_field, out["items"][pos].numpy())]
        lists = rec.score(user, items[::-1], history=request_history(ds, split, r))  # any input order
        assert [str(t) for t in rec.item_tokens(lists.items[0].numpy())] == items  # retriever order, as evaluated
        torch.testing.assert_close(lists.x[0], out[SCORE][pos], rtol=0, atol=1e-6)
        torch.testing.assert_close(lists.scores[0], out["scores"][pos], rtol=0, atol=1e-5)
        order = torch.sort(out["scores"][pos], descending=True, stable=True).indices
        assert rec.rerank(user, items, history=request_history(ds, split, r)) == [items[i] for i in order]
    if overrides["model"] != "Retriever":  # every reranker family exports (torch's newer exporter breaks Caser)
        pytest.importorskip("onnxruntime")
        from recbole_dnr.serve import export

        batch = rec.batch_tensors([str(t) for t in ds.id2token(ds.uid_field, np.arange(1, 40))])
        with torch.no_grad():
            eager = rec.model.predict(batch)
        session = export.OnnxReranker(export.export_onnx(rec, str(tmp_path / "model.onnx")))
        torch.testing.assert_close(torch.as_tensor(session.scores(batch)), eager, rtol=0, atol=1e-5)
        # the exporter drops the inputs a model never reads: docs/serving.md lists each model's real ones
        expected = overrides.get("_onnx_inputs") or documented_onnx_inputs()[overrides["model"]]
        assert session.names == expected, session.names


def documented_onnx_inputs():
    """docs/serving.md's table of the exported graph's inputs: ``{model: [input names]}``."""
    text = open(os.path.join(REPO, "docs", "serving.md"), encoding="utf-8").read()
    table = text[text.index("<!-- onnx inputs -->"):]
    return {m: re.findall(r"`(\w+)`", cells) for m, cells in re.findall(r"^\| (\w+) \| (.*) \|$", table, re.M)}


def _floor(slice_root):
    from recbole_dnr.quick_start import build

    cfg = smoke_config(slice_root, model="Retriever", epochs=0)
    config, ds, (train_data, valid_data, test_data), model, trainer = build(config_dict=cfg)
    trainer._save_checkpoint(0, verbose=False)
    trainer.evaluate(test_data, load_best_model=False)
    trainer.saved_model_file = os.path.abspath(trainer.saved_model_file)
    return trainer, ds, test_data, trainer.last_eval


@pytest.mark.parametrize("model", ["PRM", "CoRR"])
def test_recommend_is_the_topk_of_retrieve_mode_evaluation(slice_root, in_session_dir, model):
    from recbole_dnr import Recommender

    trainer, ds, test_data, out = train(slice_root, model=model, list_mode="retrieve")
    rec = Recommender.load(trainer.saved_model_file)
    log = ds.log_arrays()
    z = (log.ratings >= ds.config["label_threshold"]).astype(np.int64)
    picks = range(0, len(out["scores"]), max(1, len(out["scores"]) // 8))
    lo, hi = test_data.requests.prior_rows(out[REQUEST_ID][list(picks)].numpy())
    users, histories, expected = [], [], []
    for j, pos in enumerate(picks):
        users.append(str(ds.id2token(ds.uid_field, [int(out["user"][pos])])[0]))
        rows = slice(int(lo[j]), int(hi[j]))  # everything the user rated before the request
        histories.append(([str(t) for t in ds.id2token(ds.iid_field, log.items[rows])], z[rows].tolist()))
        order = torch.sort(out["scores"][pos], descending=True, stable=True).indices[:6]
        expected.append([str(t) for t in ds.id2token(ds.iid_field, out["items"][pos][order].numpy())])
    assert rec.recommend(users, k=6, histories=histories) == expected


def test_recommend_from_a_fresh_process_in_another_folder(prm, tmp_path):
    trainer, ds, _, _ = prm
    user = str(ds.id2token(ds.uid_field, [5])[0])
    code = ("import json; from recbole_dnr import Recommender; "
            f"print(json.dumps(Recommender.load({trainer.saved_model_file!r}).recommend([{user!r}], k=6)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    items = json.loads(done.stdout.strip().splitlines()[-1])[0]
    log = ds.log_arrays()
    seen = {str(t) for t in ds.id2token(ds.iid_field, log.items[log.users == 5])}
    assert len(items) == 6 and len(set(items)) == 6 and not seen & set(items)


def test_user_ids_are_the_users_recommend_accepts(prm):
    from recbole_dnr import Recommender

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    assert rec.user_ids == [str(t) for t in ds.id2token(ds.uid_field, list(range(1, ds.user_num)))]
    assert [rec.user_index(u) for u in rec.user_ids[:3]] == [1, 2, 3]


def test_serving_errors_name_the_problem(prm, tmp_path):
    from recbole_dnr import Recommender, storage

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    user = str(ds.id2token(ds.uid_field, [1])[0])
    item = str(ds.id2token(ds.iid_field, [1])[0])
    with pytest.raises(UserInputError, match="unknown user 'nobody'"):
        rec.recommend(["nobody"])
    with pytest.raises(UserInputError, match="unknown item 'no-such-item'"):
        rec.rerank(user, [item, "no-such-item"])
    with pytest.raises(UserInputError, match="non-empty list"):
        rec.rerank(user, [])
    with pytest.raises(UserInputError, match="appears twice"):
        rec.rerank(user, [item, item])
    many = [str(t) for t in ds.id2token(ds.iid_field, np.arange(1, rec.n + 2))]
    with pytest.raises(UserInputError, match="at most"):
        rec.rerank(user, many)
    with pytest.raises(UserInputError, match="k must be between 1 and candidate_num"):
        rec.recommend([user], k=0)
    with pytest.raises(UserInputError, match="scores: 2 finite numbers"):
        rec.rerank(user, [item, many[2]], scores=[1.0, float("nan")])
    with pytest.raises(UserInputError, match="does not exist"):
        Recommender.load(str(tmp_path / "missing.pth"))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(open(trainer.saved_model_file, "rb").read()[:-1000])
    with pytest.raises(CorruptFileError):
        Recommender.load(str(cut))
    other = tmp_path / "other.pth"
    storage.save({"state_dict": {}, "config": None}, str(other))
    with pytest.raises(UserInputError, match="not a servable recbole_dnr checkpoint"):
        Recommender.load(str(other))
    checkpoint = torch.load(trainer.saved_model_file, weights_only=False)
    checkpoint["serving"]["format"] = 0
    storage.save(checkpoint, str(other))
    import recbole_dnr

    with pytest.raises(UserInputError, match=rf"format 0 \(written by recbole_dnr {re.escape(recbole_dnr.__version__)}\)"):
        Recommender.load(str(other))
    with pytest.raises(UserInputError, match="pass data_path="):
        Recommender.load(trainer.saved_model_file, data_path=str(tmp_path))
    root = os.path.dirname(ds.config["data_path"])  # as training was given it, or the dataset's own folder
    for given in (root, ds.config["data_path"]):
        assert Recommender.load(trainer.saved_model_file, data_path=given).recommend([user]) == rec.recommend([user])


def test_given_scores_are_the_retrievers_logits(prm):
    from recbole_dnr import Recommender

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    user = str(ds.id2token(ds.uid_field, [3])[0])
    items = [str(t) for t in ds.id2token(ds.iid_field, np.arange(10, 30))]
    u, ids = rec.user_index(user), rec.item_index(items)
    logits = (rec.vectors[1][torch.as_tensor(ids)] @ rec.vectors[0][u]).tolist()
    assert rec.rerank(user, items, scores=logits) == rec.rerank(user, items)
    assert rec.rerank(user, items, scores=logits[::-1]) != rec.rerank(user, items)  # x is read


def test_batch_cli_writes_what_the_api_returns(prm, tmp_path, capsys):
    from recbole_dnr import Recommender
    from recbole_dnr.cli import main

    trainer, ds, _, _ = prm
    users = [str(t) for t in ds.id2token(ds.uid_field, [1, 2, 3])]
    want = Recommender.load(trainer.saved_model_file).recommend(users, k=4)
    main(["recommend", f"--model_file={trainer.saved_model_file}", f"--users={','.join(users)}", "--k=4",
          f"--out={tmp_path / 'r.json'}"])
    got = json.load(open(tmp_path / "r.json"))
    assert [[e["item"] for e in got[u]] for u in users] == want
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    main(["recommend", f"--model_file={trainer.saved_model_file}", f"--users_file={tmp_path / 'users.txt'}",
          "--k=4", f"--out={tmp_path / 'r.csv'}"])
    rows = open(tmp_path / "r.csv").read().splitlines()
    assert rows[0] == "user,rank,item,score" and [r.split(",")[2] for r in rows[1:5]] == want[0]
    main(["recommend", f"--model_file={trainer.saved_model_file}", f"--users={users[0]}", "--k=2"])
    assert want[0][0] in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown user 'nobody'"):
        main(["recommend", f"--model_file={trainer.saved_model_file}", "--users=nobody"])
    with pytest.raises(SystemExit, match="must end in .csv or .json"):
        main(["recommend", f"--model_file={trainer.saved_model_file}", "--users=1", "--out=r.txt"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(server, base):
    """Poll ``base``/health until the service answers (up to 2 minutes); fail with its output if it exits."""
    import httpx

    for _ in range(600):
        try:
            if httpx.get(base + "/health").status_code == 200:
                return
        except httpx.TransportError:
            if server.poll() is not None:
                pytest.fail(server.stdout.read()[-2000:])
            time.sleep(0.2)


def test_http_service_over_loopback(prm, tmp_path):
    httpx = pytest.importorskip("httpx")
    from recbole_dnr import Recommender

    trainer, ds, _, _ = prm
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "recbole_dnr.serve", f"--model_file={trainer.saved_model_file}",
                               "--host=127.0.0.1", f"--port={port}"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(server, base)
        rec = Recommender.load(trainer.saved_model_file)
        users = [str(t) for t in ds.id2token(ds.uid_field, [1, 2])]
        got = httpx.post(base + "/recommend", json={"user_ids": users, "k": 6}).json()
        assert got["items"] == rec.recommend(users, k=6)
        items = [str(t) for t in ds.id2token(ds.iid_field, np.arange(5, 15))]
        got = httpx.post(base + "/rerank", json={"user_id": users[0], "item_ids": items}).json()
        assert got["items"] == rec.rerank(users[0], items)
        bad = httpx.post(base + "/recommend", json={"user_ids": users, "k": 0})
        assert bad.status_code == 422 and "k" in json.dumps(bad.json()["detail"])
        bad = httpx.post(base + "/recommend", json={"users": users})
        assert bad.status_code == 422 and "user_ids" in json.dumps(bad.json()["detail"])
        bad = httpx.post(base + "/recommend", json={"user_ids": ["nobody"]})
        assert bad.status_code == 400 and "unknown user 'nobody'" in bad.json()["detail"]
        bad = httpx.post(base + "/rerank", json={"user_id": users[0], "item_ids": items, "scores": [1.0]})
        assert bad.status_code == 422 and "scores" in bad.json()["detail"]
        health = httpx.get(base + "/health").json()
        assert health["status"] == "ok" and health["model"] == "PRM" and health["served"]["recommend"] == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_timings_split_recommend_into_its_stages(prm):
    from recbole_dnr import Recommender

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    users = [str(t) for t in ds.id2token(ds.uid_field, np.arange(1, 4))]
    t = rec.timings(users, repeat=3)
    assert list(t) == ["users", "retrieve", "lists", "rerank", "total"] and all(v > 0 for v in t.values())
    assert t["total"] >= max(t["users"], t["retrieve"], t["lists"], t["rerank"])  # each run's total holds its parts
    with pytest.raises(UserInputError, match="repeat must be at least 1"):
        rec.timings(users, repeat=0)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_reranker_equals_eager(prm, tmp_path, fmt):
    from recbole_dnr import Recommender
    from recbole_dnr.serve import export

    trainer, ds, _, _ = prm
    rec = Recommender.load(trainer.saved_model_file)
    users = [str(t) for t in ds.id2token(ds.uid_field, np.arange(1, 40))]
    batch = rec.batch_tensors(users)  # real lists: retrieved, in retriever order, with histories
    with torch.no_grad():
        eager = rec.model.predict(batch)
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        path = export.export_onnx(rec, str(tmp_path / "prm.onnx"))
        got = torch.as_tensor(export.OnnxReranker(path).scores(batch))
    else:
        path = export.export_torchscript(rec, str(tmp_path / "prm.pt"))
        module = torch.jit.load(path)
        got = module(*[batch[k] for k in export.INPUTS])
    torch.testing.assert_close(got, eager, rtol=0, atol=1e-5)
    assert not torch.allclose(got, torch.zeros_like(got))
    rec.use_scorer(lambda b: export.OnnxReranker(path).scores(b) if fmt == "onnx"
                   else module(*[b[k] for k in export.INPUTS]))
    exported = rec.recommend(users[:5], k=6)
    rec.use_scorer(None)
    assert exported == rec.recommend(users[:5], k=6)
