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
