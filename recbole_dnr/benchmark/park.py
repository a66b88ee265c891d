"""Park unfinished runs where they outlive the machine, and put them back.

A benchmark cell resumes epoch by epoch from ``<checkpoint_dir>/resume/`` (trainer/resume.py), but
that folder lives on the machine: on a machine that is handed out anew (a preempted cloud node, a
CI-style sandbox) the runs in progress start again from epoch 0. ``save`` copies every resume state
and the best checkpoint it names into a folder you keep (e.g. one committed with the results);
``restore`` copies them back before the grid is started again::

    python -m recbole_dnr.benchmark.park save      # while the runners run, are paused or stopped
    python -m recbole_dnr.benchmark.park restore   # on the new machine, before the grid command

Files are copied byte for byte (their checksum trailers travel with them, so a damaged copy is never
resumed). A pair is only parked when it is consistent: the best checkpoint is the one the resume
state names, from the same or an earlier epoch, with the same best valid score (a runner may write
between the two copies: then it is copied again). ``save`` also drops parked runs that have since
finished or been removed from ``<checkpoint_dir>/resume/``, and ``restore`` skips a run whose cell
has finished since it was parked (its run key is in a cell under ``benchmarks/results``): putting it
back would overwrite that run's final best checkpoint with an older one, and the next ``save`` would
park the dead run again. The lists a resumed run reads are
rebuilt from the cache key on the new machine; they are deterministic (same retriever metrics).
"""

import argparse
import glob
import json
import os
import shutil
import time

from recbole_dnr import storage
from recbole_dnr.benchmark.cell import recorded_key
from recbole_dnr.trainer.resume import key_of

MANIFEST = "MANIFEST.json"


def _load(path):
    """A checkpoint or resume state, or None when it is unreadable or fails its checksum."""
    try:
        return storage.load(path, map_location="cpu")
    except (storage.CorruptFileError, OSError, RuntimeError, EOFError):
        return None


def _pair(resume_path):
    """(state epoch, best checkpoint path, best valid score) of a resume file, or None when unreadable."""
    state = _load(resume_path)
    return None if state is None else (state["epoch"], state["best_model_file"], state["best_valid_score"])


def _consistent(resume_copy, best_copy):
    pair = _pair(resume_copy)
    if pair is None:
        return False
    if best_copy is None:  # no epoch has been saved as best yet
        return True
    best = _load(best_copy)
    return best is not None and best["epoch"] <= pair[0] and best["best_valid_score"] == pair[2]


def save(checkpoint_dir="saved", park_dir="benchmarks/parked", tries=5):
    """Copy each run in progress (resume state + its best checkpoint) to ``park_dir``; returns the manifest."""
    os.makedirs(park_dir, exist_ok=True)
    manifest = {}
    for resume_path in sorted(glob.glob(os.path.join(checkpoint_dir, "resume", "*.pth"))):
        name = os.path.basename(resume_path)
        for _ in range(tries):
            pair = _pair(resume_path)
            if pair is None:
                break
            epoch, best_path, _ = pair
            resume_copy = os.path.join(park_dir, name)
            shutil.copyfile(resume_path, resume_copy + ".tmp")
            best_copy = None
            if best_path and os.path.isfile(best_path):
                best_copy = os.path.join(park_dir, os.path.basename(best_path))
                shutil.copyfile(best_path, best_copy + ".tmp")
            if _consistent(resume_copy + ".tmp", best_copy and best_copy + ".tmp"):
                os.replace(resume_copy + ".tmp", resume_copy)
                if best_copy:
                    os.replace(best_copy + ".tmp", best_copy)
                manifest[name] = {"resume": resume_path, "best": best_path if best_copy else None, "epoch": epoch}
                break
            time.sleep(1.0)  # a runner wrote between the two copies: copy again
        else:
            print(f"[park] {name}: no consistent copy after {tries} tries; not parked")
        for tmp in glob.glob(os.path.join(park_dir, "*.tmp")):
            os.remove(tmp)
    keep = {MANIFEST} | set(manifest) | {os.path.basename(m["best"]) for m in manifest.values() if m["best"]}
    for path in glob.glob(os.path.join(park_dir, "*")):
        if os.path.basename(path) not in keep:
            os.remove(path)  # a run that finished (or was removed) since it was parked
    with open(os.path.join(park_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    for name, m in manifest.items():
        print(f"[park] saved {name} (after epoch {m['epoch']})")
    return manifest


def finished_keys(results_dir):
    """Run keys of the finished cells under ``<results_dir>/<grid>/cells/`` (json written last: complete)."""
    keys = set()
    for path in glob.glob(os.path.join(results_dir, "*", "cells", "*", "*", "seed*.json")):
        try:
            with open(path) as f:
                keys.add(recorded_key(json.load(f)))
        except (OSError, ValueError):
            continue  # unreadable: not evidence that the run finished
    return keys - {None}


def restore(park_dir="benchmarks/parked", results_dir="benchmarks/results"):
    """Copy parked runs back where their runners look for them, unless a later state is already there
    or the run's cell has finished since (it is in ``results_dir``; see the module docstring)."""
    path = os.path.join(park_dir, MANIFEST)
    if not os.path.isfile(path):
        print(f"[park] nothing parked in {park_dir}")
        return []
    with open(path) as f:
        manifest = json.load(f)
    finished = finished_keys(results_dir)
    restored = []
    for name, m in sorted(manifest.items()):
        if key_of(name) in finished:
            print(f"[park] {name}: its cell has finished since it was parked; not restored")
            continue
        here = _pair(m["resume"]) if os.path.isfile(m["resume"]) else None
        if here is not None and here[0] >= m["epoch"]:
            print(f"[park] {name}: the state here (after epoch {here[0]}) is not older; kept")
            continue
        for src, dst in ((m["best"] and os.path.join(park_dir, os.path.basename(m["best"])), m["best"]),
                         (os.path.join(park_dir, name), m["resume"])):  # the resume state last: it names the best
            if src:
                os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
                shutil.copyfile(src, dst + ".tmp")
                os.replace(dst + ".tmp", dst)
        restored.append(name)
        print(f"[park] restored {name} (after epoch {m['epoch']})")
    return restored


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_dnr.benchmark.park", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("--dir", default="benchmarks/parked", help="where parked runs are kept")
    parser.add_argument("--checkpoint_dir", default="saved", help="the runs' checkpoint_dir (save only)")
    parser.add_argument("--results_dir", default="benchmarks/results",
                        help="the grids' results: a run whose cell is there has finished (restore only)")
    args = parser.parse_args(argv)
    if args.action == "save":
        save(args.checkpoint_dir, args.dir)
    else:
        restore(args.dir, args.results_dir)


if __name__ == "__main__":
    main()
