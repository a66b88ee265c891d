"""What a search writes: the trial table (markdown) and the best trial's config (a yaml that
``--config_files`` accepts)."""

import math
import os

import yaml

from recbole_dnr.config import resolve_config_file
from recbole_dnr.machine import cpu_text
from recbole_dnr.storage import atomic_write_text


def trial_table(rows, valid_metric, best=None, epoch_cap=None):
    """The trials as a markdown table (params, best valid, test at the best valid epoch, epochs, time).
    ``epoch_cap``: the configured ``epochs`` (a trial's own ``epochs`` param wins); a complete trial
    that ran that many epochs is marked ‡: the cap, not early stopping, ended it."""
    names = list(dict.fromkeys(k for r in rows for k in r.params))
    capped = set()
    for r in rows:
        cap = r.params.get("epochs", epoch_cap)
        if r.state == "complete" and cap and r.epochs >= int(cap):
            capped.add(r.number)
    head = ["trial", *names, "state", f"valid {valid_metric}", f"test {valid_metric}", "epochs (best)", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    trained_on = {}  # where each trial ran: CPU text -> trial numbers
    for r in sorted(rows, key=lambda r: r.number):
        trained_on.setdefault(cpu_text(r.machine, threads=True) or "not recorded", []).append(str(r.number))
        cells = [f"{r.number}{' *' if best is not None and r.number == best.number else ''}"]
        cells += [_fmt(r.params.get(n)) for n in names]
        cells += [r.state + (f" ({r.note})" if r.note else ""), _num(r.best_valid), _num(r.test),
                  f"{r.epochs}{'‡' if r.number in capped else ''} ({r.best_epoch})" if r.state == "complete"
                  else str(r.epochs), f"{r.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if capped:
        lines += ["", "‡ stopped by the epoch cap, not by early stopping: look at its valid curve before trusting it."]
    if trained_on.keys() - {"not recorded"}:  # some trial recorded its machine
        lines += ["", "Trained on: " + "; ".join(f"{where} (trial{'s' if len(n) > 1 else ''} {', '.join(n)})"
                                                for where, n in trained_on.items()) + "."]
    return "\n".join(lines)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _num(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def best_config(config_files, fixed, best):
    """The best trial's config as one yaml dict: the fixed files (in order), the fixed keys, its params."""
    merged = {}
    for path in config_files or []:
        with open(resolve_config_file(path), encoding="utf-8") as f:
            merged.update(yaml.safe_load(f) or {})
    merged.update(fixed)
    merged.update({k: (v.item() if hasattr(v, "item") else v) for k, v in best.params.items()})
    return merged


def default_best_file(output_file):
    stem = output_file[:-len(os.path.splitext(output_file)[1])] if os.path.splitext(output_file)[1] else output_file
    return stem + ".best.yaml"


def write_results(rows, best, valid_metric, config_files, fixed, output_file, best_file, command, epoch_cap=None):
    head = (f"# Hyper-parameter search: {command['tool']} ({command['algo']}), {len(rows)} trials, seed "
            f"{command['seed']}, space {command['params_file']}, fixed {config_files or []} {fixed or ''}\n\n"
            "Selected on valid only; test is at each trial's best valid epoch (* = best trial).\n\n")
    table = trial_table(rows, valid_metric, best, epoch_cap)
    tail = ""
    if best is not None:
        tail = (f"\n\nbest: trial {best.number}, valid {valid_metric} {best.best_valid:.4f}, test {best.test:.4f}; "
                f"config: {best_file}\n")
        kept = [f for f in best.kept_files if os.path.isfile(f)]
        if kept:
            tail += (f"\nIts checkpoint is kept: {os.path.relpath(kept[0])} (`recbole_dnr.serve.Recommender.load`); "
                     f"`python run_recbole_dnr.py --config_files={best_file} --resume` evaluates it without training.\n")
    atomic_write_text(output_file, head + table + tail)
    if best is not None:
        text = yaml.safe_dump(best_config(config_files, fixed, best), sort_keys=False)
        atomic_write_text(best_file, f"# best of {len(rows)} trials (run_hyper.py, {command['tool']} "
                                     f"{command['algo']}, seed {command['seed']}): valid {valid_metric} "
                                     f"{best.best_valid:.4f} at epoch {best.best_epoch}\n" + text)
    return head + table + tail
