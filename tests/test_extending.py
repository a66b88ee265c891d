"""Extending the package from outside it: docs/architecture.md's "Adding a backbone" example, run
as written (a reranker with its own option, in one file plus its yaml), and the entry-point group
through which another package's rerankers are found."""

import os
import re

import pytest
from conftest import smoke_config

from recbole_dnr import registry
from recbole_dnr.config import Config
from recbole_dnr.errors import UserInputError
from recbole_dnr.quick_start.quick_start import build

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "architecture.md")


def doc_example():
    """The first python and yaml blocks of the "Adding a backbone" section."""
    with open(DOC, encoding="utf-8") as f:
        section = f.read().split("## Adding a backbone", 1)[1].split("\n## ", 1)[0]
    return [re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1) for lang in ("python", "yaml")]


@pytest.fixture(scope="module")
def my_reranker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mypackage")
    code, defaults = doc_example()
    (folder / "my_reranker.py").write_text(code)
    (folder / "MyReranker.yaml").write_text(defaults)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(folder))
        import my_reranker

        yield my_reranker.MyReranker


def test_the_documented_backbone_trains_with_its_option(my_reranker, slice_root, in_session_dir, tmp_path):
    config = Config(model="MyReranker", config_dict=smoke_config(slice_root))
    assert config["mix_layers"] == 2 and config.model_class is my_reranker  # its yaml, beside its module
    config, _, (train, _, _), model, trainer = build(config_dict=smoke_config(
        slice_root, model="MyReranker", mix_layers=3, epochs=1, checkpoint_dir=str(tmp_path)))
    assert len(model.mix) == 3
    trainer.fit(train, None, saved=False)
    batch = next(iter(train))
    assert model.predict(batch).shape == batch["item_id"].shape


def test_the_documented_backbone_checks_its_option(my_reranker, slice_root):
    with pytest.raises(UserInputError, match=r"mix_layers=0: expected an integer >= 1 \(feed-forward layers"):
        Config(model="MyReranker", config_dict=smoke_config(slice_root, mix_layers=0))
    with pytest.raises(UserInputError, match="mix_layers='two': expected an integer"):  # under DNR too
        Config(model="DNR_MyReranker", config_dict=smoke_config(slice_root, mix_layers="two"))
    dnr = Config(model="DNR_MyReranker", config_dict=smoke_config(slice_root))
    assert dnr["mix_layers"] == 2 and dnr["lambda_c"] is not None  # its yaml, then DNR's


class _EntryPoint:
    def __init__(self, loaded):
        self.loaded = loaded

    def load(self):
        return self.loaded


def test_an_entry_point_registers_another_packages_model(monkeypatch):
    from recbole_dnr.model import NeuralReranker

    class PluginReranker(NeuralReranker):
        def encode_list(self, tokens):
            return tokens

    monkeypatch.setattr(registry, "_entry_points", lambda: [_EntryPoint(PluginReranker)])
    monkeypatch.setitem(registry._loaded, "entry_points", False)
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    assert registry.get_model("PluginReranker") is PluginReranker
    assert registry.get_model("DNR_PluginReranker").backbone_name == "PluginReranker"


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _newcomer_env(folder):
    """A process where the example's folder is on the path, as a user's own package would be."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, str(folder)])}


def test_the_documented_backbone_is_served_without_another_file(my_reranker, slice_root, in_session_dir, tmp_path):
    """Trained to a checkpoint, then served from Python and by ``recbole-dnr recommend --import``."""
    import json
    import subprocess
    import sys

    from recbole_dnr import Recommender
    from recbole_dnr.quick_start import run_recbole_dnr

    result = run_recbole_dnr(config_dict=smoke_config(slice_root, model="MyReranker", epochs=1,
                                                      checkpoint_dir=str(tmp_path / "saved")))
    rec = Recommender.load(result.model_file)
    assert type(rec.model) is my_reranker and len(rec.model.mix) == 2  # its yaml's mix_layers
    users = rec.user_ids[:3]
    want = rec.recommend(users, k=4)
    assert len(want) == 3 and all(len(items) == 4 for items in want)
    folder = os.path.dirname(sys.modules[my_reranker.__module__].__file__)
    out = tmp_path / "r.json"
    served = subprocess.run([sys.executable, "-m", "recbole_dnr.cli", "recommend", f"--model_file={result.model_file}",
                             f"--users={','.join(map(str, users))}", "--k=4", f"--out={out}", "--import", "my_reranker"],
                            capture_output=True, text=True, timeout=600, env=_newcomer_env(folder))
    assert served.returncode == 0, served.stderr[-3000:]
    got = json.load(open(out))
    assert [[e["item"] for e in got[u]] for u in users] == want


def test_the_documented_backbone_runs_as_a_grid_cell(my_reranker, slice_root, in_session_dir, tmp_path):
    """A one-cell grid whose ``import:`` names the example's module: checked, then trained in its cell."""
    import json
    import subprocess
    import sys

    import yaml

    from conftest import SLICE
    from recbole_dnr.benchmark.spec import load_spec

    settings = smoke_config(slice_root, epochs=1, checkpoint_dir=os.path.abspath("saved"),  # the smoke runs' lists
                            probe_sigmas=[0], probe_weak_retriever={"retriever_embedding_size": 4,
                                                                    "retriever_epochs": 1})
    settings.pop("dataset")
    grid = {"out": str(tmp_path / "out"), "import": ["my_reranker"], "datasets": {SLICE: settings},
            "grids": [{"datasets": [SLICE], "models": ["MyReranker"], "seeds": [1]}]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    folder = os.path.dirname(sys.modules[my_reranker.__module__].__file__)
    done = subprocess.run([sys.executable, "-m", "recbole_dnr.benchmark", "--config", str(path)], capture_output=True,
                          text=True, timeout=900, env=_newcomer_env(folder))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    spec = load_spec(str(path))
    with open(spec.cell_path(spec.cells[0])) as f:
        cell = json.load(f)
    assert cell["model"] == "MyReranker" and cell["epochs_run"] == 1 and 0 < cell["test"]["ndcg@6"] <= 1
    assert "MyReranker" in open(tmp_path / "out" / "results.csv").read()


def test_a_grids_import_is_checked_before_any_cell(tmp_path):
    import yaml

    from recbole_dnr.benchmark.spec import load_spec

    path = tmp_path / "grid.yaml"
    grid = {"out": str(tmp_path / "out"), "grids": [{"datasets": ["ml-100k"], "models": ["PRM"], "seeds": [1]}]}
    for imports, message in [(["no_such_reranker_module"], r"import: no_such_reranker_module: no module of that "
                                                            r"name on sys.path; pass its \.py file instead"),
                             (["missing/my_reranker.py"], r"import: missing/my_reranker.py: no such file"),
                             ("my_reranker", r"import: must be a list of module names or \.py files")]:
        path.write_text(yaml.safe_dump({**grid, "import": imports}))
        with pytest.raises(UserInputError, match=f"{re.escape(str(path))}: {message}"):
            load_spec(str(path))
    path.write_text(yaml.safe_dump({**grid, "grids": [{"datasets": ["ml-100k"], "models": ["NotImportedReranker"],
                                                        "seeds": [1]}]}))
    with pytest.raises(UserInputError, match=r"Unknown model 'NotImportedReranker'.* A model of your own: list the "
                                             r"module \(or \.py file\) that defines it under the grid's import:"):
        load_spec(str(path))
