"""The package's layers (docs/architecture.md) hold: no import circle, no private name used across
packages. Both fail on the change that breaks them, so a circle cannot creep back."""

import ast
import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "recbole_dnr")


def _modules():
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                yield path, rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _package_of(module, is_init):
    return module if is_init else module.rsplit(".", 1)[0]


def test_layers_contract_is_kept():
    """import-linter's contracts in setup.cfg (imports only downward: the package, and benchmark/
    and data/ within; the model package imports no Config, lists or retriever fitting)."""
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail('lint-imports not found: pip install -e ".[test]" installs import-linter')
    done = subprocess.run([exe, "--config", os.path.join(REPO, "setup.cfg")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


def test_no_private_name_crosses_a_package():
    found = []
    for path, module in _modules():
        own = _package_of(module, path.endswith("__init__.py"))
        tree = ast.parse(open(path, encoding="utf-8").read())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recbole_dnr"):
                for a in node.names:
                    if a.name.startswith("_") and _package_of(node.module, False) != own and node.module != own:
                        found.append(f"{module}: from {node.module} import {a.name}")
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("recbole_dnr"):
                        aliases[a.asname or a.name] = a.name
        text = open(path, encoding="utf-8").read()
        for alias, target in aliases.items():
            target_pkg = target.rsplit(".", 1)[0]
            for m in re.finditer(rf"(?<![\w.]){re.escape(alias)}\.(_[a-z]\w*)", text):
                if target_pkg != own and not target.startswith(own + "."):
                    found.append(f"{module}: {alias}.{m.group(1)}")
    assert not found, found


def test_the_floor_imports_nothing_above_it():
    """errors.py and fields.py are the floor: they import nothing of the package."""
    for name in ("errors", "fields"):
        tree = ast.parse(open(os.path.join(PACKAGE, name + ".py"), encoding="utf-8").read())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m and m.startswith("recbole_dnr")], (name, imported)



def _reach_backs(text):
    """Lines of ``text`` that reach a split's ListDataset through a loader's private ``_dataset``."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if "._dataset.parent" in line]


def test_no_reach_back_to_the_list_dataset_outside_data():
    """What a trainer reads about its requests (window positives, prior rows, the lists' builder)
    comes with the split (``loader.requests``), not through ``loader._dataset.parent``."""
    assert _reach_backs("ok = loader.requests.lists\nn = eval_data._dataset.parent.window_positive_count(ids)\n") == [
        (2, "n = eval_data._dataset.parent.window_positive_count(ids)")]
    found = [(module, hit) for path, module in _modules() if not module.startswith("recbole_dnr.data")
             for hit in _reach_backs(open(path, encoding="utf-8").read())]
    assert not found, found
