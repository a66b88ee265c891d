"""README.md is the package's long description: short, runnable, and its figures are the project's."""

import os
import re
import subprocess
import sys

from conftest import smoke_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_readme_is_at_most_10_kb():
    assert len(README.encode()) <= 10 * 1024


def test_readme_starts_with_the_two_setup_commands_ci_runs():
    assert README.split("\n", 2)[2].startswith("```bash\n")
    install_and_run, install_and_test = _blocks("bash")[0].strip().splitlines()
    assert install_and_run.endswith("recbole-dnr --model=PRM --dataset=ml-100k")
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    venv, install, test = install_and_test.split(" && ")[0], install_and_test.split(" && ")[2], \
        install_and_test.split(" && ")[3]
    assert venv in ci and install in ci and test in ci


def test_results_table_is_the_committed_cells():
    done = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "scripts", "readme.py"), "check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_add_your_own_reranker_snippet_runs(slice_root, in_session_dir):
    (snippet,) = [b for b in _blocks("python") if "class MyReranker" in b]
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    from recbole_dnr.quick_start import run_recbole_dnr

    result = run_recbole_dnr(model="DNR_MyReranker", config_dict=smoke_config(slice_root, epochs=1))
    assert 0 < result["test_result"]["ndcg@6"] <= 1


def test_tuned_table_means_defaults_and_seed_deltas():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme", os.path.join(REPO, "experiments", "scripts", "readme.py"))
    readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readme)
    values = {("ml-100k", "Caser-none"): {1: 0.40, 2: 0.42, 3: 0.44},
              ("ml-100k", "Caser-none@default"): {1: 0.30, 2: 0.30, 3: 0.33},
              ("ml-100k", "DNR_Caser"): {1: 0.41, 2: 0.42, 3: 0.46},
              ("ml-100k", "DNR_Caser@default"): {1: 0.40, 2: 0.44, 3: 0.47}}
    valid = {("ml-100k", "Caser-none"): {1: 0.5, 2: 0.5, 3: 0.5},
             ("ml-100k", "Caser-none@default"): {1: 0.4, 2: 0.4, 3: 0.4},
             ("ml-100k", "DNR_Caser"): {1: 0.5, 2: 0.5, 3: 0.5},
             ("ml-100k", "DNR_Caser@default"): {1: 0.4, 2: 0.4, 3: 0.76}}  # mean 0.52: the default is chosen
    values[("ml-100k", "SASRec-none")] = {1: 0.41}  # a pair still running: no row until both sides have 3 seeds
    lines = readme.tuned_table(values, valid).splitlines()
    assert len(lines) == 3  # head, rule, the Caser row
    # DNR_Caser@default (0.40, 0.44, 0.47: mean 0.4367) against Caser-none (0.40, 0.42, 0.44): deltas 0, +0.02,
    # +0.03: mean 0.0167, sd 0.0153, t = 1.890 on 2 df: p = 0.199
    assert lines[2] == ("| ml-100k | Caser (RecBole) | **0.4200** (0.3100) |  | 0.4300 (**0.4367**) | "
                        "+0.0167 (+0.0000, +0.0200, +0.0300), p 0.20 |")
    del values[("ml-100k", "DNR_Caser@default")]  # the default twin not landed: no row yet
    assert len(readme.tuned_table(values, valid).splitlines()) == 2
