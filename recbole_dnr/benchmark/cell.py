"""One benchmark cell (dataset, variant, seed), run in its own process by the grid runner.

Writes ``<cell>.json`` (metrics of both splits, the valid curve, epochs, cost, peak memory) and
``<cell>.npz`` (per-request test metrics, for paired tests) atomically: a cell file that exists
is complete. Also callable directly::

    python -m recbole_dnr.benchmark.cell --settings '{"dataset": "ml-100k", "model": "PRM", "seed": 2020}' \
        --config_files experiments/grids/bench.yaml --out /tmp/cell.json
"""

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

from recbole_dnr.benchmark.probe import score_corruption_probe, weak_retriever_probe
from recbole_dnr.benchmark.spec import cell_settings, recorded_key
from recbole_dnr.config import Config
from recbole_dnr.evaluator import ListEvaluator
from recbole_dnr.evaluator.retrieval import retriever_means
from recbole_dnr.fields import LABEL, SLATE_MASK
from recbole_dnr.machine import machine
from recbole_dnr.quick_start import build, fit_and_test
from recbole_dnr.serve.model_import import import_modules
from recbole_dnr.trainer.resume import ResumeState, run_config, run_key

CONFIG_KEYS = ("model", "recbole_model", "learning_rate", "hidden_size", "epochs", "stopping_step",
               "train_batch_size", "score_fusion", "list_loss", "lambda_c", "lambda_m", "lambda_e", "noise",
               "use_learned_generator", "lambda_adv", "lambda_x", "retriever_fit", "list_seed")


def inference_seconds_per_list(trainer, data, repeats=3):
    """Best of ``repeats`` passes over the split's lists (scores only, no metrics)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = trainer.predict_lists(data)
        best = min(best, time.perf_counter() - start)
    return best / len(out["scores"])


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def reset_peak_rss():
    """Restart the kernel's resident-memory high-water mark (VmHWM) so that a later ``hwm_mb`` measures
    training and evaluation alone: the process peak (``peak_rss_mb``) is set by building the lists.
    False where /proc/self/clear_refs is missing (not Linux) or not writable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux >= 4.0: reset the peak RSS to the current RSS
        return True
    except OSError:
        return False


def hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return None


def run_cell(settings, config_files=None, label="", test_curve=False):
    """Train and evaluate one cell (:func:`~recbole_dnr.quick_start.fit_and_test`, then the cell's own
    measurements on the tested checkpoint); returns (record, per-request arrays). The run's resume state
    is left claimed: ``main`` discards it once the cell is written. ``test_curve``: also evaluate the test
    split at every evaluation (record ``test_curve``, one dict of metrics each; training is unchanged)."""
    started = time.perf_counter()
    built = build(config_file_list=config_files or None, config_dict=cell_settings(settings))
    config, ds, (_, _, test), model, trainer = built
    if test_curve:
        trainer.curve_loaders["test"] = test

    def progress(epoch_idx, valid_score):
        times = trainer.epoch_seconds  # a resumed run replays its restored epochs first
        seconds = times[epoch_idx] if epoch_idx < len(times) else times[-1] if times else 0
        print(f"{label} epoch {epoch_idx + 1}: valid {config['valid_metric']} {valid_score:.4f} "
              f"(train {seconds:.1f} s)", flush=True)

    measured_train_peak = reset_peak_rss()
    result = fit_and_test(built, saved=True, callback_fn=progress, started=started, state="hold", per_request=True)
    train_peak = hwm_mb() if measured_train_peak else None  # training + evaluation, data in memory included
    epoch_times = list(trainer.epoch_seconds)
    out = trainer.last_eval
    test_result = dict(result.test)
    if config["list_mode"] == "retrieve" and not any(k.startswith("retriever_") for k in test_result):
        # the independent retriever's own quality on the same requests (CoRR reports its retriever's)
        lists = test.requests.lists
        fresh = lists.retrieve_split(test.requests, lists.retriever_embeddings())
        test_result.update(retriever_means(fresh.retriever_metrics))
    arrays = dict(result.per_request)
    slate = {}
    if config["list_mode"] == "slate":  # the same predictions ranked within the exposed slate (a diagnostic scope)
        slate_eval = ListEvaluator(config, scope="slate")
        slate["test"] = dict(slate_eval.evaluate(out["scores"], out[LABEL], out[SLATE_MASK]))
        for key, (values, defined) in slate_eval.per_list(out["scores"], out[LABEL], out[SLATE_MASK]).items():
            arrays["slate_" + key] = np.where(defined.numpy(), values.numpy(), np.nan)
    probe = {}
    if config["probe_sigmas"]:  # after the test evaluation, on the selected checkpoint's weights
        probe = score_corruption_probe(config, trainer, test, config["probe_sigmas"], test.requests.lists.list_seed)
    if config["probe_weak_retriever"]:
        probe["weak_retriever"] = weak_retriever_probe(config, trainer, test, dict(config["probe_weak_retriever"]))
    infer = inference_seconds_per_list(trainer, test)
    record = {
        "dataset": config["dataset"], "model": config["model"], "seed": config["seed"],
        "valid": {k: float(v) for k, v in (result.valid or {}).items()},
        "test": {k: float(v) for k, v in test_result.items()},
        "slate_scope": slate, "score_corruption": probe, "valid_curve": result.valid_curve,
        "best_epoch": result.best_epoch, "train_loss_curve": result.train_loss_curve,
        "epochs_run": result.epochs, "epoch_cap": config["epochs"], "resumed_after_epoch": trainer.resumed_after,
        "hit_epoch_cap": bool(config["epochs"]) and result.epochs >= config["epochs"],
        "train_sec_per_epoch": float(np.mean(epoch_times)) if epoch_times else 0.0, "epoch_times": epoch_times,
        "fit_sec": trainer.fit_seconds(),  # across a resume (session ends): the whole run's training time
        "infer_us_per_list": infer * 1e6, "peak_rss_mb": peak_rss_mb(), "train_peak_rss_mb": train_peak,
        "wall_sec": time.perf_counter() - started, "test_lists": len(out["scores"]),
        "parameters": sum(p.numel() for p in model.parameters()), "list_stats": result.list_stats,
        "config": {k: config[k] for k in CONFIG_KEYS if k in config}, "machine": machine(),
        "resume_file": trainer.resume.path, "run_key": run_key(config),
        "run_config": run_config(config),  # what the run key hashes: a later drift names what changed
    }
    if test_curve:
        record["test_curve"] = list(trainer.eval_curves.get("test", []))
    return record, arrays


def complete_cell(path):
    """The record of the cell at ``path`` when both its files are there (:func:`write_cell` writes the
    json last), else None."""
    if not (os.path.isfile(path) and os.path.isfile(path[:-len(".json")] + ".npz")):
        return None
    with open(path) as f:
        return json.load(f)


def finished(path, settings, key):
    """Whether ``path`` holds a complete cell of exactly this run: the same settings and run key."""
    try:
        record = complete_cell(path)
    except (OSError, ValueError):
        return False
    return record is not None and record.get("settings") == settings and recorded_key(record) == key


def find_reusable(key, dataset, seed, folders):
    """A finished cell of another grid (``reuse:`` folders) trained with exactly this config, or None.

    Equal run keys mean equal training and evaluation settings (every config key but logging and
    resume ones, docs/reliability.md), and runs are deterministic, so its record is what this cell would
    write."""
    for folder in folders:
        root = os.path.join(folder, "cells", dataset)
        if not os.path.isdir(root):
            continue
        for variant in sorted(os.listdir(root)):
            path = os.path.join(root, variant, f"seed{seed}.json")
            record = complete_cell(path)
            if record is not None and record.get("dataset") == dataset and record.get("seed") == seed and recorded_key(record) == key:
                return path, record
    return None


def reusable_for(spec, cell):
    """Where ``spec``'s ``cell`` would be copied from (:func:`find_reusable`), or None: what ``--dry_run``
    says instead of "would run" for a cell that costs no training."""
    if not spec.reuse:
        return None
    found = find_reusable(spec.key_now(cell)[0], cell.dataset, cell.seed, spec.reuse)
    return found[0] if found else None


def write_cell(path, record, arrays):
    """npz first, then json: the json's presence means the cell is complete."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stem = path[:-len(".json")]
    np.savez_compressed(stem + ".tmp.npz", **arrays)
    os.replace(stem + ".tmp.npz", stem + ".npz")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run one benchmark cell")
    parser.add_argument("--settings", required=True, help="config dict of the cell, as JSON")
    parser.add_argument("--config_files", nargs="*", default=[])
    parser.add_argument("--out", required=True, help="cell json (per-request metrics go beside it as .npz)")
    parser.add_argument("--label", default="")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--command", default="")
    parser.add_argument("--test_curve", action="store_true", help="also evaluate test at every evaluation "
                        "(the cell's test_curve; not part of the training config or run key)")
    parser.add_argument("--reuse", nargs="*", default=[], help="results folders of other grids whose identical "
                        "cells are copied instead of trained")
    parser.add_argument("--import", dest="imports", nargs="*", default=[],
                        help="modules or .py files defining the grid's own models (its import:)")
    args = parser.parse_args(argv)
    import_modules(args.imports, where="import:")
    settings = json.loads(args.settings)
    config = Config(config_file_list=args.config_files or None, config_dict=cell_settings(settings))
    key = run_key(config)
    # another grid may be training this very run (the same run key): wait for it, then copy its cell
    ResumeState(config).claim(wait=True, on_wait=lambda: print(
        f"{args.label} another process is training run key {key}: waiting for it", flush=True))
    if finished(args.out, settings, key):
        # a second runner of the same grid listed this cell before the first finished it: training it
        # again would cost the whole run and rewrite the same result
        print(f"{args.label} finished by another process meanwhile (run key {key}): kept", flush=True)
        return
    if args.reuse:
        found = find_reusable(key, config["dataset"], config["seed"], args.reuse)
        if not found:
            print(f"{args.label} no cell with run key {key} in {', '.join(args.reuse)}: training",
                  flush=True)
        else:
            source, record = found
            with np.load(source[:-len(".json")] + ".npz") as npz:
                arrays = dict(npz)
            record.update(variant=args.variant or record["model"], settings=settings, config_files=args.config_files,
                          command=args.command, reused_from=source, run_key=key, run_config=run_config(config))
            write_cell(args.out, record, arrays)
            print(f"{args.label} reused {source} (same training config, run key {record['run_key']})", flush=True)
            ResumeState(config).discard()
            return
    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    record, arrays = run_cell(settings, args.config_files, args.label, args.test_curve)
    record["variant"] = args.variant or record["model"]
    record["settings"] = settings
    record["config_files"] = args.config_files
    record["command"] = args.command
    write_cell(args.out, record, arrays)
    ResumeState(config).discard()  # the cell is complete: nothing left to resume


if __name__ == "__main__":
    main()
