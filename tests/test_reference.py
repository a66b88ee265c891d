"""docs/config.md is rendered from the option specs and the yamls: it cannot go stale, and a key
added anywhere without reaching it fails here."""

import importlib
import os
import pkgutil
import re

import yaml

import recbole_dnr.model

from recbole_dnr.config import properties_dir
from recbole_dnr.model.abstract_reranker import ListBackbone
from recbole_dnr.options import OPTIONS, integer
from recbole_dnr.reference import PAGE, model_classes, render

RENDERED = render()


def _documented(text):
    """The keys that have a row in a rendered page."""
    return set(re.findall(r"^\| `(\w+)` \|", text, re.M))


def _shipped_keys():
    keys = set()
    folder = os.path.join(properties_dir(), "model")
    for path in [os.path.join(properties_dir(), "overall.yaml")] + [os.path.join(folder, f)
                                                                     for f in os.listdir(folder)]:
        with open(path, encoding="utf-8") as f:
            keys |= set(yaml.safe_load(f) or {})
    return keys


def _declared_keys():
    """OPTIONS and the ``options`` of every class in the model package, found by walking its modules
    (not the registry the page is rendered from, nor models other tests register)."""
    keys = set(OPTIONS)
    for info in pkgutil.walk_packages(recbole_dnr.model.__path__, "recbole_dnr.model."):
        for obj in vars(importlib.import_module(info.name)).values():
            if isinstance(obj, type) and isinstance(vars(obj).get("options"), dict):
                keys |= set(vars(obj)["options"])
    return keys


def test_committed_page_is_a_fresh_render():
    with open(PAGE, encoding="utf-8") as f:
        committed = f.read()
    assert committed == RENDERED, "docs/config.md is stale: run python -m recbole_dnr.reference"


def test_render_is_deterministic():
    assert render() == RENDERED


def test_every_declared_and_shipped_key_has_a_row():
    missing = (_declared_keys() | _shipped_keys()) - _documented(RENDERED)
    assert not missing, f"undocumented keys: {sorted(missing)}"


def test_a_dropped_row_is_detected():
    # the check above compares against rows, so a key whose row disappears is reported
    without = "\n".join(line for line in RENDERED.splitlines() if not line.startswith("| `kl_bins` |"))
    assert (_declared_keys() - _documented(without)) == {"kl_bins"}


def test_a_new_model_key_gets_a_row_with_its_range():
    class FakeReranker(ListBackbone):
        """A test's reranker."""
        options = {"fake_width": integer("width of the fake layer", 3)}

    page = render(extra=(FakeReranker,))
    assert FakeReranker in model_classes(extra=(FakeReranker,))
    assert "| `fake_width` | int |  | >= 3 | width of the fake layer |" in page
    assert "## FakeReranker" in page and "[ListBackbone](#listbackbone)" in page
    assert "fake_width" not in RENDERED


def test_hand_checked_rows():
    # overall.yaml: candidate_num: 50 (int), OPTIONS: integer(..., 2); DNR.yaml lambda_c 0.4, spec [0, 1]
    assert "| `candidate_num` | int | `50` | >= 2 | n, candidates per request |" in RENDERED
    assert "| `lambda_c` | float | `0.4` | in [0, 1] |" in RENDERED
    assert "| `list_mode` | str | `slate` | slate \\| retrieve |" in RENDERED
    # PRM's yaml sets n_layers 2 for a key NeuralReranker declares: listed under PRM, not inherited silently
    prm = RENDERED.split("## PRM\n")[1].split("\n## ")[0]
    assert "| `n_layers` | int | `2` | >= 1 | encoder layers |" in prm
    assert "[NeuralReranker](#neuralreranker)" in prm


def test_model_sections_list_only_their_own_keys():
    # DNR's section has its own keys, not its backbone's (those are under NeuralReranker)
    dnr = RENDERED.split("## DNR\n")[1].split("\n## ")[0]
    assert "`lambda_m`" in dnr and "`hidden_size`" not in dnr and "`score_fusion`" not in dnr
