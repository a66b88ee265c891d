"""Hyper-parameter search (run_hyper.py): RecBole's params format, Optuna and RecBole's HyperTuning."""

import glob
import math
import os

import pytest
import yaml

from conftest import smoke_config
from recbole_dnr.hyper.cli import main, run
from recbole_dnr.hyper.search import TrialRow
from recbole_dnr.hyper.tables import trial_table
from recbole_dnr.hyper.space import parse_line, read_params_file
from recbole_dnr.hyper.tables import trial_table
from recbole_dnr.quick_start import TrainingStopped, objective_function
from recbole_dnr.errors import UserInputError

SPACE = "# a tiny space\nlearning_rate loguniform -7,-5\nhidden_size choice [16,32]   # the model width\n"


def test_params_lines_by_hand():
    p = parse_line("hidden_size quniform 16,64,16")
    assert p.integral and p.grid() == [16, 32, 48, 64] and p.size() == 4
    p = parse_line("dropout_prob quniform 0,0.5,0.25")
    assert not p.integral and p.grid() == [0.0, 0.25, 0.5]
    p = parse_line("noise choice ['gaussian', 'beta']")
    assert p.args == ("gaussian", "beta")
    assert parse_line("   # only a comment") is None
    with pytest.raises(UserInputError, match="types are choice"):
        parse_line("lr normal 0,1")
    with pytest.raises(UserInputError, match="low <= high"):
        parse_line("lr uniform 1,0")
    with pytest.raises(UserInputError, match="Python list literal"):
        parse_line("noise choice [gaussian]")


def test_trial_table_marks_trials_the_epoch_cap_ended():
    rows = [TrialRow(0, {"learning_rate": 1e-3}, "complete", 0.5, 0.4, 200, 191, 9.0),
            TrialRow(1, {"learning_rate": 2e-3}, "complete", 0.6, 0.5, 40, 29, 2.0),
            TrialRow(2, {"learning_rate": 2e-3, "epochs": 40}, "complete", 0.6, 0.5, 40, 38, 2.0),  # its own cap
            TrialRow(3, {"learning_rate": 3e-3}, "pruned", 0.3, math.nan, 200, 0, 1.0)]
    lines = trial_table(rows, "ndcg@6", rows[1], epoch_cap=200).splitlines()
    assert [line.split(" | ")[-2] for line in lines[2:6]] == ["200‡ (191)", "40 (29)", "40‡ (38)", "200"]
    assert lines[-1].startswith("‡ stopped by the epoch cap")
    assert "‡" not in trial_table(rows[1:2], "ndcg@6", epoch_cap=200)
    uncapped = trial_table(rows, "ndcg@6").splitlines()  # cap unknown: only the trial with its own is marked
    assert [line.split(" | ")[-2] for line in uncapped[2:6]] == ["200 (191)", "40 (29)", "40‡ (38)", "200"]


def test_trial_table_names_the_machines_its_trials_trained_on():
    amd = {"cpu_model": "AMD EPYC 7B13", "cpu_capability": "AVX512", "torch_threads": 1}
    rows = [TrialRow(0, {"lr": 1e-3}, "complete", 0.5, 0.4, 9, 6, 9.0),  # a trial from before the record
            TrialRow(1, {"lr": 2e-3}, "complete", 0.6, 0.5, 9, 6, 2.0, machine=amd),
            TrialRow(2, {"lr": 3e-3}, "pruned", 0.3, math.nan, 3, 0, 1.0, machine={**amd, "torch_threads": 2})]
    assert trial_table(rows, "ndcg@6").splitlines()[-1] == (
        "Trained on: not recorded (trial 0); AMD EPYC 7B13, AVX512, 1 thread (trial 1); "
        "AMD EPYC 7B13, AVX512, 2 threads (trial 2).")
    assert "Trained on" not in trial_table(rows[:1], "ndcg@6")  # nothing recorded: nothing to say
    assert "Trained on" not in trial_table([], "ndcg@6")
    # the record keeps the machine where there is one, and committed rows without one stay as they were
    assert rows[1].record()["machine"] == amd and "machine" not in rows[0].record()


def test_params_file_errors(tmp_path):
    with pytest.raises(UserInputError, match="cannot be read"):
        read_params_file(str(tmp_path / "none.hyper"))
    (tmp_path / "dup.hyper").write_text("lr uniform 0,1\nlr uniform 0,2\n")
    with pytest.raises(UserInputError, match="twice"):
        read_params_file(str(tmp_path / "dup.hyper"))


@pytest.fixture()
def search_files(slice_root, in_session_dir, tmp_path):
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump(smoke_config(slice_root, model="PRM", epochs=3,
                                                 checkpoint_dir=str(tmp_path / "saved"))))
    space = tmp_path / "space.hyper"
    space.write_text(SPACE)
    return str(fixed), str(space), str(tmp_path / "out.md")


def _table_rows(path):
    return [line for line in open(path).read().splitlines() if line.startswith("| ") and not line.startswith("| trial")]


def test_two_trials_write_table_and_a_best_config_that_reproduces(search_files):
    fixed, space, out = search_files
    rows, best = run([f"--config_files={fixed}", f"--params_file={space}", f"--output_file={out}", "--max_evals=2"])
    assert len(rows) == 2 and all(r.state == "complete" for r in rows)
    assert len(_table_rows(out)) == 2
    assert best.best_valid == max(r.best_valid for r in rows)
    for r in rows:
        assert math.exp(-7) <= r.params["learning_rate"] <= math.exp(-5) and r.params["hidden_size"] in (16, 32)
        assert 1 <= r.best_epoch <= r.epochs <= 3 and 0 < r.test <= 1
    best_file = out[:-len(".md")] + ".best.yaml"
    loaded = yaml.safe_load(open(best_file))
    assert loaded["learning_rate"] == best.params["learning_rate"] and loaded["model"] == "PRM"
    saved = os.path.join(os.path.dirname(out), "saved")
    kept = glob.glob(os.path.join(saved, "*.pth"))
    assert len(kept) == 1 and len(glob.glob(os.path.join(saved, "resume", "*.pth"))) == 1  # the best trial's only
    assert len(glob.glob(os.path.join(saved, "resume", "*.lock"))) == 1
    assert os.path.relpath(kept[0]) in open(out).read()
    resumed = objective_function(config_file_list=[best_file], config_dict={"resume": True})
    assert resumed["model_file"] == kept[0]  # evaluated that checkpoint: a retrained run saves a new one
    assert resumed["best_valid_score"] == best.best_valid and resumed["epochs"] == best.epochs
    assert resumed["test_result"]["ndcg@6"] == pytest.approx(best.test, abs=0)
    assert glob.glob(os.path.join(saved, "resume", "*.pth")) == []  # that run is complete
    again = objective_function(config_file_list=[best_file])  # the yaml alone trains the best trial again
    assert again["best_valid_score"] == best.best_valid and again["model_file"] != kept[0]
    assert again["test_result"]["ndcg@6"] == pytest.approx(best.test, abs=0)


def test_search_resumes_from_its_storage(search_files, tmp_path):
    fixed, space, out = search_files
    db = f"sqlite:///{tmp_path / 'hyper.db'}"
    base = [f"--config_files={fixed}", f"--params_file={space}", f"--output_file={out}", f"--storage={db}"]
    first, _ = run(base + ["--max_evals=1"])
    both, _ = run(base + ["--max_evals=2"])
    assert len(both) == 2 and both[0].params == first[0].params and both[0].best_valid == first[0].best_valid
    assert both[0].seconds == first[0].seconds  # read back from the study, not trained again
    db = f"sqlite:///{tmp_path / 'random.db'}"  # a continued seeded sampler does not replay its first draws
    base = [f"--config_files={fixed}", f"--params_file={space}", f"--output_file={out}", f"--storage={db}",
            "--algo=random"]
    main(base + ["--max_evals=1"])
    again, _ = run(base + ["--max_evals=2"])
    assert again[1].params != again[0].params


def test_a_killed_searchs_trial_runs_again_and_keeps_where_its_config_came_from(search_files, tmp_path):
    import optuna

    from recbole_dnr.hyper.search import distribution, run_optuna

    fixed, space, _ = search_files
    params = read_params_file(space)
    storage, start = f"sqlite:///{tmp_path / 'killed.db'}", {"learning_rate": math.exp(-6), "hidden_size": 16}
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.enqueue_trial(start, user_attrs={"start_note": "best of ml-100k (trial 3)"})
    study.ask({p.name: distribution(p) for p in params})  # the search was killed while its first trial trained
    rows = run_optuna(params, [fixed], {}, 1, storage=storage, study_name="s", prune=False,
                      start=[(start, "ignored: the study holds trials")])
    assert [(r.state, r.note) for r in rows] == [("failed", "best of ml-100k (trial 3)"),
                                                 ("complete", "best of ml-100k (trial 3); resumed after a stop")]
    assert rows[1].params == start


def test_each_trial_shows_a_bar_over_its_epochs_unless_progress_is_off(search_files, capsys):
    fixed, space, out = search_files
    args = [f"--config_files={fixed}", f"--params_file={space}", f"--output_file={out}", "--max_evals=1"]
    main(args)
    assert "trial   0" not in capsys.readouterr().err  # the fixture's config: show_progress False
    config = yaml.safe_load(open(fixed))
    del config["show_progress"]
    open(fixed, "w").write(yaml.safe_dump(config))
    rows, _ = run(args)
    err = capsys.readouterr().err
    assert "trial   0" in err and f"{rows[0].epochs}/3" in err  # epochs run of the cap
    assert f"ndcg@6 {rows[0].curve[-1]:.4f}, best {rows[0].best_valid:.4f}" in err
    assert "Train " not in err  # RecBole's per-batch bars stay off inside a search


def test_hyperopt_tool_runs_recboles_hypertuning(search_files, monkeypatch):
    import importlib

    pytest.importorskip("hyperopt")
    search = importlib.import_module("recbole_dnr.hyper.search")  # the package exports a function of that name
    fixed, space, out = search_files
    calls = []
    checked = search.check_search
    monkeypatch.setattr(search, "check_search", lambda *a: calls.append(a) or checked(*a))
    rows, best = run([f"--config_files={fixed}", f"--params_file={space}", f"--output_file={out}", "--max_evals=2",
                      "--tool=Hyperopt", "--algo=random"])  # RecBole's spelling
    assert len(rows) == 2 and best is not None and len(_table_rows(out)) == 2
    assert rows[0].result["model"] == "PRM"  # the key HyperTuning reads
    saved = os.path.join(os.path.dirname(out), "saved")
    kept = glob.glob(os.path.join(saved, "*.pth"))  # the best trial's checkpoint, as with Optuna; the other's is gone
    assert kept == [best.result["model_file"]] and os.path.relpath(kept[0]) in open(out).read()
    assert [r.number for r in rows if r.kept_files] == [best.number]
    assert len(calls) == 1  # the space's corners are built once per search, not again by the tool's runner


def test_unknown_parameter_fails_before_training(search_files, tmp_path, capsys):
    fixed, _, out = search_files
    bad = tmp_path / "bad.hyper"
    bad.write_text("lamda_c uniform 0,1\n")
    with pytest.raises(SystemExit, match="params file: unknown option 'lamda_c': did you mean lambda_c"):
        main([f"--config_files={fixed}", f"--params_file={bad}", f"--output_file={out}"])
    bad.write_text("zzz_knob uniform 0,1\n")  # close to no key: nothing would read it
    with pytest.raises(SystemExit, match="params file: unknown option 'zzz_knob' is read by neither") as stopped:
        main([f"--config_files={fixed}", f"--params_file={bad}", f"--output_file={out}"])
    assert "ignored" not in str(stopped.value)  # it stops the search: it does not say the key would be ignored
    assert not os.path.exists(out)


@pytest.mark.parametrize("tool, expect", [("OPTUNA", "optuna"), ("Hyperopt", "hyperopt"), ("hyperopt", "hyperopt")])
def test_tools_are_spelled_in_any_case(tool, expect):
    from recbole_dnr.hyper.search import check_tool

    assert check_tool(tool) == expect


def test_ray_and_unknown_tools_are_refused_naming_the_supported_ones():
    from recbole_dnr.hyper.search import check_tool

    with pytest.raises(UserInputError, match="--tool=Ray: Ray Tune is not supported.*: optuna, hyperopt$"):
        check_tool("Ray")
    with pytest.raises(UserInputError, match="--tool=smac: expected one of optuna, hyperopt"):
        check_tool("smac")


def _hyper_command():
    """The installed console script (``pip install`` writes it beside the interpreter), else the same
    two lines it runs."""
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "recbole-dnr-hyper")
    if os.path.isfile(script):
        return [script]
    return [sys.executable, "-c", "import sys; from recbole_dnr.hyper.cli import main; sys.exit(main())"]


def test_installed_command_exits_0_on_success_and_1_on_failure(search_files):
    import subprocess

    fixed, space, out = search_files
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo)  # this checkout's code, whichever copy is installed
    png = os.path.join(os.path.dirname(out), "trials.png")
    args = [f"--config_files={fixed}", f"--params_file={space}", f"--output_file={out}", "--max_evals=1",
            "--epochs=1"]
    done = subprocess.run(_hyper_command() + args + [f"--display_file={png}"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"  # a trained trial's plot (tests/hyper/test_plot.py)
    assert "best: trial 0" in done.stdout and "TrialRow" not in done.stdout + done.stderr  # no tuple printed
    refused = subprocess.run(_hyper_command() + args + ["--tool=Ray"], env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "optuna, hyperopt" in refused.stderr


def test_a_space_whose_edge_is_out_of_range_fails_before_training(search_files, tmp_path):
    """The first values are valid; the search would reach lambda_c 1.9 (range [0, 1]) trials later."""
    fixed, _, out = search_files
    bad = tmp_path / "edge.hyper"
    bad.write_text("lambda_c uniform 0.1,1.9\nhidden_size choice [32,64,48]\n")
    with pytest.raises(SystemExit, match=r"edge of the space would fail: lambda_c=1.9: expected a number in "
                                         r"\[0, 1\].* \(at lambda_c=1.9, hidden_size=64\)$"):
        main([f"--config_files={fixed}", f"--params_file={bad}", f"--output_file={out}", "--model=DNR_PRM"])
    assert not os.path.exists(out)


def test_edges_are_every_choice_and_both_ends_of_a_range():
    assert parse_line("a choice [1,'x',None]").edges() == [1, "x", None]
    assert parse_line("a uniform 0,0.5").edges() == [0, 0.5]
    assert parse_line("a quniform 0,9,2").edges() == [0, 8]  # the last grid point, not the bound
    assert parse_line("a loguniform -2,0").edges() == pytest.approx([math.exp(-2), 1.0])


def test_a_missing_search_tool_names_what_to_install(search_files, monkeypatch):
    import sys

    fixed, space, out = search_files
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(SystemExit, match=r'needs Optuna: pip install "optuna>=3.6" \(from a checkout: pip install '
                                         r'"\.\[hyper\]"\)'):
        main([f"--config_files={fixed}", f"--params_file={space}", f"--output_file={out}"])


def test_stopped_run_leaves_no_resume_state(slice_root, in_session_dir):
    def stop(epoch, score):
        raise TrainingStopped("pruned")

    cfg = smoke_config(slice_root, model="PRM", epochs=3, checkpoint_dir="saved-stopped")
    with pytest.raises(TrainingStopped):
        objective_function(config_dict=cfg, callback_fn=stop)
    assert glob.glob("saved-stopped/resume/*.pth") == []
    with pytest.raises(TrainingStopped):
        objective_function(config_dict=cfg, callback_fn=stop, keep_model=False)
    assert len(glob.glob("saved-stopped/*.pth")) == 1  # the first run's best checkpoint only
