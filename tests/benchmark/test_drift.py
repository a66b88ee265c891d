"""Config drift: a finished cell whose settings are unchanged but whose config now has another run key
(a model's yaml default changed since) is listed as drifted, kept, marked in reports, and retrained
only with --rerun_drifted; the recorded run config names the values that changed."""

import hashlib
import json
import os

import yaml

from recbole_dnr.benchmark.__main__ import main
from recbole_dnr.benchmark.results import load_cells
from recbole_dnr.benchmark.spec import load_spec
from recbole_dnr.benchmark.tables import dataset_markdown
from recbole_dnr import config as config_module
from recbole_dnr.config import Config, properties_dir
from recbole_dnr.trainer import resume

from conftest import SLICE, smoke_config


def tiny_grid(tmp_path, slice_root, models):
    settings = smoke_config(slice_root, epochs=1)
    settings.pop("dataset")
    settings["checkpoint_dir"] = os.path.abspath("saved")  # the smoke runs' list cache
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "out"), "datasets": {SLICE: settings},
                                    "grids": [{"datasets": [SLICE], "models": models, "seeds": [1]}]}))
    return str(path)


def fake_cell(spec, cell, **changes):
    """A finished cell's record as the grid writes it today (``changes`` override its fields)."""
    key, _, run_config = spec.key_now(cell)
    rec = {"dataset": cell.dataset, "model": spec.variants[cell.variant]["model"], "seed": cell.seed,
           "settings": spec.settings_as_recorded(cell), "run_key": key, "run_config": run_config,
           "valid": {"ndcg@6": 0.5}, "test": {"ndcg@6": 0.5}, **changes}
    os.makedirs(os.path.dirname(spec.cell_path(cell)), exist_ok=True)
    with open(spec.cell_path(cell), "w") as f:
        json.dump(rec, f)
    return rec


def test_a_changed_model_default_drifts_only_that_models_cells(tmp_path, slice_root, monkeypatch, capfd):
    path = tiny_grid(tmp_path, slice_root, ["PRM", "DLCM"])
    spec = load_spec(path)
    prm, dlcm = spec.cells
    for cell in spec.cells:
        fake_cell(spec, cell)
    assert [spec.status(c) for c in spec.cells] == ["done", "done"]

    changed = tmp_path / "PRM.yaml"  # PRM's yaml with another default, as an edit of properties/model/PRM.yaml
    changed.write_text(open(os.path.join(properties_dir(), "model", "PRM.yaml")).read() + "\nattn_dropout_prob: 0.3\n")
    monkeypatch.setattr(config_module, "model_yaml",
                        lambda name, cls, real=config_module.model_yaml: str(changed) if name == "PRM" else real(name, cls))
    spec = load_spec(path)
    assert [spec.status(c) for c in spec.cells] == ["drifted", "done"]
    assert spec.drift_diff(prm) == "attn_dropout_prob: 0.1 -> 0.3"
    assert [r["drifted"] for r in load_cells(spec)] == [True, False]  # kept in the results, marked

    capfd.readouterr()
    main(["--config", path, "--dry-run"])  # no error: listed with what changed, nothing to run
    out = capfd.readouterr().out
    assert "2 done, 0 to run" in out and "1 finished cell(s) drifted" in out
    assert f"{prm.key}: attn_dropout_prob: 0.1 -> 0.3" in out and dlcm.key not in out
    main(["--config", path, "--dry-run", "--rerun_drifted"])
    out = capfd.readouterr().out
    assert "1 done, 1 to run" in out and f"would run {prm.key}" in out and f"would run {dlcm.key}" not in out


def test_report_marks_a_row_with_a_drifted_cell(tmp_path, slice_root):
    path = tiny_grid(tmp_path, slice_root, ["PRM", "DLCM"])
    spec = load_spec(path)
    machine = {"platform": "p", "cpu_count": 2, "torch": "t", "torch_threads": 1}
    cost = {"best_epoch": 1, "epochs_run": 1, "hit_epoch_cap": True, "train_sec_per_epoch": 1.0,
            "infer_us_per_list": 1.0, "peak_rss_mb": 1.0, "machine": machine}
    fake_cell(spec, spec.cells[0], run_key="0" * 16, **cost)
    fake_cell(spec, spec.cells[1], **cost)
    md = "\n".join(dataset_markdown(spec, SLICE, load_cells(spec)))
    assert "| PRM† | 1 |" in md and "| DLCM | 1 |" in md
    assert "`†` = run under an earlier configuration (another run key)" in md
    fake_cell(spec, spec.cells[0], **cost)  # the same run key again: no mark, no footnote
    assert "†" not in "\n".join(dataset_markdown(spec, SLICE, load_cells(spec)))


def test_rerun_drifted_retrains_the_cell_and_records_its_run_config(tmp_path, slice_root, in_session_dir, capfd):
    path = tiny_grid(tmp_path, slice_root, ["PRM"])
    spec = load_spec(path)
    cell = spec.cells[0]
    key, _, now = spec.key_now(cell)
    fake_cell(spec, cell, run_key="feedfacefeedface", run_config={**now, "n_heads": 8})
    assert spec.status(cell) == "drifted" and spec.drift_diff(cell) == f"n_heads: 8 -> {now['n_heads']}"
    main(["--config", path])  # kept: nothing runs
    out = capfd.readouterr().out
    assert "0 to run" in out and "retrain with --rerun_drifted" in out
    assert json.load(open(spec.cell_path(cell)))["run_key"] == "feedfacefeedface"
    main(["--config", path, "--rerun_drifted"])
    rec = json.load(open(spec.cell_path(cell)))
    assert rec["run_key"] == key and rec["run_config"] == now and rec["epochs_run"] == 1
    assert load_spec(path).status(cell) == "done"


def test_a_key_taken_before_portable_data_paths_is_the_same_run():
    config = Config(config_dict={"model": "PRM", "dataset": "ml-100k"})
    raw = {k: v for k, v in resume.run_payload(config).items()}
    raw["data_path"] = config["data_path"]  # the absolute folder inside RecBole's package, as keys once read it
    old = hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert resume.earlier_run_keys(config) == {old} and old != resume.run_key(config)
    assert resume.run_config(config)["data_path"] == "<recbole>/dataset_example/ml-100k"
    other = Config(config_dict={"model": "PRM", "dataset": "ml-1m-u1to2999", "data_path": "../shared/data"})
    assert resume.earlier_run_keys(other) == set()  # a folder outside RecBole's package never had another key
