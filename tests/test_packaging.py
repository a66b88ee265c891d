"""The wheel (what ``pip install .`` or ``pip install git+...`` gives) holds and runs the package.

An editable install (CI's ``-e``) hides a package missing from the wheel; this test builds the
wheel, compares it with the source tree, and runs a tiny config from the unpacked wheel with the
working directory outside the checkout.
"""

import configparser
import glob
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from conftest import smoke_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("wheel"))
    # a clean copy: setuptools never empties build/, so a checkout's stale build/lib could fill gaps
    src = os.path.join(str(tmp_path_factory.mktemp("src")), "recbole_dnr")
    top = {".git", ".venv", "venv", "build", "dist", ".hypothesis", ".pytest_cache", "saved", "log",
           "log_tensorboard", "dataset", "docs", "tests"}

    def ignore(folder, names):
        in_experiments = os.path.samefile(folder, os.path.join(REPO, "experiments"))
        return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")
                or (os.path.samefile(folder, REPO) and n in top) or (in_experiments and n != "variants")}

    shutil.copytree(REPO, src, ignore=ignore)
    # no build isolation: the virtualenv's setuptools builds it, offline and in seconds
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, src],
                   check=True, capture_output=True, text=True)
    (path,) = glob.glob(os.path.join(out, "recbole_dnr-*.whl"))
    return path


def _source_files():
    """Every module of the package and every yaml of properties/, as the wheel must name them."""
    want = set()
    for root, dirs, files in os.walk(os.path.join(REPO, "recbole_dnr")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        want |= {os.path.relpath(os.path.join(root, f), REPO).replace(os.sep, "/") for f in files if f.endswith(".py")}
    for root, _, files in os.walk(os.path.join(REPO, "properties")):
        rel = os.path.relpath(root, REPO).replace(os.sep, "/")
        want |= {f"recbole_dnr/{rel}/{f}" for f in files if f.endswith((".yaml", ".py"))}
    variants = os.path.join(REPO, "experiments", "variants")
    want |= {f"recbole_dnr/properties/experiments/{f}" for f in os.listdir(variants) if f.endswith(".yaml")}
    return want


def test_wheel_holds_every_module_yaml_license_and_entry_point(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_source_files() - names)
    assert not missing, f"missing from the wheel: {missing}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = configparser.ConfigParser()
    scripts.read_string(zipfile.ZipFile(wheel).read(entry).decode())
    assert scripts["console_scripts"]["recbole-dnr"] == "recbole_dnr.cli:main"
    assert scripts["console_scripts"]["recbole-dnr-hyper"] == "recbole_dnr.hyper.cli:main"


def test_unpacked_wheel_runs_from_another_folder(wheel, tmp_path, slice_root):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = textwrap.dedent(f"""
        import recbole_dnr, recbole_dnr.cli
        from recbole_dnr.config import properties_dir
        from recbole_dnr.quick_start import objective_function
        assert recbole_dnr.__file__.startswith({str(site)!r}), recbole_dnr.__file__
        assert properties_dir().startswith({str(site)!r}), properties_dir()
        cfg = {smoke_config(slice_root, model="DNR_PRM", epochs=1, retriever_epochs=2)!r}
        r = objective_function(config_dict=cfg, config_file_list=["DNR-heuristic-G"])
        print("ndcg", r["test_result"]["ndcg@6"])
    """)
    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 0 < float(done.stdout.split("ndcg")[-1]) <= 1
    # the command's help lists the models and the shipped variants
    helped = subprocess.run([sys.executable, "-m", "recbole_dnr.cli", "--help"], cwd=work, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "DNR_PRM" in helped and "DNR-heuristic-G-shuffled" in helped and "--key=value" in helped
    assert "recbole-dnr recommend" in helped and "recbole-dnr-hyper" in helped  # the other commands are named
    hyper = subprocess.run([sys.executable, "-m", "recbole_dnr.hyper.cli", "--help"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert "--params_file" in hyper


def test_wheel_requires_recbole_where_ray_installs_and_its_requirements_elsewhere(wheel):
    """RecBole 1.2.1 requires ray<=2.6.3 (no wheel for Python 3.12+): there the package declares RecBole's
    other runtime requirements and the README's extra step installs RecBole with --no-deps."""
    import importlib.metadata

    from packaging.requirements import Requirement

    (meta,) = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Requires-Python: <3.14,>=3.9" in text or "Requires-Python: >=3.9,<3.14" in text
    ours = [Requirement(line.split(": ", 1)[1]) for line in text.splitlines() if line.startswith("Requires-Dist: ")]
    base = [r for r in ours if r.marker is None or "extra" not in str(r.marker)]
    for python in ("3.11", "3.12", "3.13"):
        env = {"python_version": python, "extra": ""}
        names = {r.name.lower() for r in base if r.marker is None or r.marker.evaluate(env)}
        assert ("recbole" in names) == (python == "3.11"), python
        assert "ray" not in names
        if python != "3.11":
            recboles = {Requirement(r).name.lower() for r in importlib.metadata.requires("recbole")
                        if "extra ==" not in r}
            assert recboles - {"ray"} <= names, recboles - {"ray"} - names


def test_a_missing_recbole_is_one_line_naming_the_install_command(tmp_path):
    """Python 3.12+ without the README's extra step: the error names it."""
    hide = ("import sys; sys.path = [{repo!r}] + [p for p in sys.path if 'site-packages' not in p "
            "and 'dist-packages' not in p]; import recbole_dnr").format(repo=REPO)
    done = subprocess.run([sys.executable, "-c", hide], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == ("ImportError: recbole_dnr needs RecBole 1.2.1, which is not "
                                                    "installed: pip install --no-deps recbole==1.2.1")
