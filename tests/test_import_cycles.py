"""No import loop at run time, counted as Python runs imports: module- and function-level imports,
``importlib.import_module("literal")``, and the parent packages a dotted import runs first
(import-linter sees only the static, module-level ones). A model can be defined without our
Config or the retriever's fitting code."""

import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_modules(root="recbole_dnr"):
    """{module name: source path} of every module of the package."""
    found = {}
    for folder, dirs, files in os.walk(os.path.join(REPO, root)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), REPO)[:-3].replace(os.sep, ".")
                found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(folder, f)
    return found


def _with_parents(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported(module, path, modules):
    """The package's modules that running ``module`` may import (anywhere in its code), less its own
    parents (already imported before it runs)."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per dot after the first
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names]
        elif (isinstance(node, ast.Call) and "import_module" in (getattr(node.func, "attr", None),
                                                                  getattr(node.func, "id", None))
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.append(node.args[0].value)
    own_parents = set(_with_parents(module))
    return {n for name in names for n in _with_parents(name) if n in modules and n not in own_parents}


def find_cycle(graph):
    """One cycle of ``graph`` ({node: successors}) as a list of nodes, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_check_sees_function_level_and_importlib_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg import b\n")
    (pkg / "a.py").write_text("import importlib\ndef f():\n    importlib.import_module('pkg.sub.c')\n")
    (pkg / "b.py").write_text("def g():\n    from . import a\n")
    (pkg / "sub" / "c.py").write_text("x = 1\n")
    modules = {"pkg": str(pkg / "__init__.py"), "pkg.sub": str(pkg / "sub" / "__init__.py"),
               "pkg.a": str(pkg / "a.py"), "pkg.b": str(pkg / "b.py"), "pkg.sub.c": str(pkg / "sub" / "c.py")}
    graph = {m: imported(m, p, modules) for m, p in modules.items()}
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.c"}  # pkg.sub runs before pkg.sub.c
    assert find_cycle(graph) == ["pkg.a", "pkg.sub", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("x = 2\n")
    assert find_cycle({m: imported(m, p, modules) for m, p in modules.items()}) is None


def test_no_import_cycle_at_run_time():
    modules = package_modules()
    graph = {m: imported(m, p, modules) for m, p in modules.items()}
    assert len(graph) > 60 and "recbole_dnr.config" in graph["recbole_dnr.quick_start.quick_start"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_a_model_is_defined_without_config_or_retriever_fitting():
    code = ("import sys, recbole_dnr.model; "
            "print(sorted(m for m in sys.modules if m in ('recbole_dnr.config', 'recbole_dnr.trainer', "
            "'recbole_dnr.data', 'recbole_dnr.retrieval.recbole_retriever', 'recbole.trainer')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout
