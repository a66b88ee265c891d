"""One-command benchmark: ``python -m recbole_dnr.benchmark --config experiments/grids/zoo.yaml``.

Runs every cell (dataset, variant, seed) of the grid that has no result yet, each in its own
process (clean peak memory; a crash loses only that cell), writes each finished cell at once,
then ``results.csv`` and the report (markdown tables + PNG plots). Resumable: run it again and
only missing or failed cells run; a call in which no cell ran leaves the report as it is (a queue
stepping through finished cells would otherwise re-render it at every step). ``--report`` only
renders; ``--dry_run`` lists what would run.
A finished cell whose recorded settings differ from what the grid now gives it (the yaml was
edited) is *stale*: an error names it before any work, ``--rerun_stale`` retrains it, and reports
leave it out. A finished cell with the grid's settings whose config now has another run key (a model's
yaml default or a config file changed since) is *drifted*: listed with what changed, kept (reports
mark it), retrained only with ``--rerun_drifted``.
A tuning grid (experiments/grids/tuned.yaml: ``trials``, ``space``, ``contenders``; :mod:`.tuning`)
is a benchmark grid with a search stage: its searches run first, each a cell of the grid's results
folder, then its seeds stage (each contender at its best config, on several seeds) once every search
is done.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from recbole_dnr.benchmark import tuning
from recbole_dnr.benchmark.cell import reusable_for
from recbole_dnr.benchmark.report import render, render_searches
from recbole_dnr.benchmark.results import write_results_csv
from recbole_dnr.benchmark.spec import load_spec, recorded_key
from recbole_dnr.errors import UserInputError


def fmt_sec(s):
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def matches(cell, only):
    """``--only dataset=ml-100k variant=PRM,DLCM seed=2020`` filters: every condition must match, and a
    comma-separated value matches any of its values."""
    for cond in only or []:
        key, _, value = cond.partition("=")
        if str(getattr(cell, key, None)) not in value.split(","):
            return False
    return True


ONLY_KEYS = ("dataset", "variant", "seed")


def check_only(spec, only):
    """Each ``--only`` condition names a cell field and a value the grid has: a typo would otherwise
    select nothing and look like a finished grid."""
    for cond in only or []:
        key, eq, value = cond.partition("=")
        if not eq or key not in ONLY_KEYS:
            raise UserInputError(f"--only {cond!r}: expected key=value with key one of {', '.join(ONLY_KEYS)} "
                                 "(e.g. --only dataset=ml-100k variant=PRM seed=2020)")
        have = list(dict.fromkeys(str(getattr(c, key)) for c in spec.cells))
        for one in value.split(","):
            if one not in have:
                raise UserInputError(f"--only {cond!r}: {spec.path} has no cell with {key} {one!r}; "
                                     f"its {key}s: {', '.join(have)}")


def run_grid(spec, only=None, dry_run=False, timeout=None, rerun_stale=False, rerun_drifted=False):
    """Run the selected cells that have no current result. Stale cells (result files recorded with other
    settings than the grid gives them now) are a :class:`UserInputError` before any work, unless
    ``rerun_stale`` asks to retrain them. Drifted cells (trained under another run key than their settings
    give now) are listed and kept, unless ``rerun_drifted`` asks to retrain them. Returns ``(failed cells,
    number of cells that landed)``."""
    status = {c: spec.status(c) for c in spec.cells}  # each cell file read once
    stale = [c for c in spec.cells if matches(c, only) and status[c] == "stale"]
    if stale and not rerun_stale:
        shown = "\n".join(f"  {c.key}: {spec.stale_diff(c)}" for c in stale[:8])
        more = f"\n  ... and {len(stale) - 8} more" if len(stale) > 8 else ""
        raise UserInputError(f"{spec.path}: {len(stale)} finished cell(s) were run with other settings than the "
                             f"grid now gives them (recorded -> now):\n{shown}{more}\nRetrain them with --rerun_stale "
                             f"(each file is replaced when its new run finishes), move them out of {spec.out}, "
                             f"or restore the settings")
    drifted = [c for c in spec.cells if matches(c, only) and status[c] == "drifted"]
    kept = {"done"} if rerun_drifted else {"done", "drifted"}
    todo = [c for c in spec.cells if matches(c, only) and status[c] not in kept]
    done = [c for c in spec.cells if status[c] in kept]
    print(f"[benchmark] {spec.path}: {len(spec.cells)} cells, {len(done)} done, {len(todo)} to run "
          f"{f'({len(stale)} stale) ' if stale else ''}(results: {spec.out})", flush=True)
    unkeyed = sum(1 for c in done if status[c] == "done" and not recorded_key(spec.record(c)))
    if unkeyed:
        print(f"[benchmark] {unkeyed} finished cell(s) predate recorded run keys: not checked for drift", flush=True)
    if drifted:
        shown = "\n".join(f"  {c.key}: {spec.drift_diff(c)}" for c in drifted[:8])
        more = f"\n  ... and {len(drifted) - 8} more" if len(drifted) > 8 else ""
        print(f"[benchmark] {len(drifted)} finished cell(s) drifted: the grid's settings, but another run key "
              f"(a yaml default or config file changed since; recorded -> now):\n{shown}{more}\n"
              f"[benchmark] {'retrained' if rerun_drifted else 'kept (reports mark them; retrain with --rerun_drifted)'}",
              flush=True)
    if dry_run:
        copies = 0
        for c in todo:
            source = reusable_for(spec, c)
            if source:
                copies += 1
                print(f"  would copy {c.key} from {source} (same run key: no training)")
            else:
                print(f"  would run {c.key}: {json.dumps(spec.settings(c))}")
        print(f"[benchmark] dry run: {copies} cell(s) would be copied from {', '.join(spec.reuse) or 'no reuse folder'}, "
              f"{len(todo) - copies} would train", flush=True)
        return [], 0
    failed, walls, landed = [], [], 0
    for i, cell in enumerate(todo):
        eta = f", grid ETA {fmt_sec(sum(walls) / len(walls) * (len(todo) - i))}" if walls else ""
        label = f"[cell {i + 1}/{len(todo)} {cell.key}]"
        print(f"{label} start{eta}", flush=True)
        path = spec.cell_path(cell)
        if spec.status(cell) == "done":  # another runner of this grid finished it since the list was made
            print(f"{label} finished by another process meanwhile: skipped", flush=True)
            continue
        err = spec.cell_path(cell, "error.txt")
        log_tmp = f"{err}.{os.getpid()}.tmp"  # two runners of one grid may reach the same cell
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cmd = [sys.executable, "-m", "recbole_dnr.benchmark.cell", "--settings", json.dumps(spec.settings(cell)),
               "--out", path, "--label", label, "--variant", cell.variant,
               "--command", f"python -m recbole_dnr.benchmark --config {spec.path}",
               "--config_files", *spec.config_files]
        if spec.reuse:
            cmd += ["--reuse", *spec.reuse]
        if spec.test_curve:
            cmd.append("--test_curve")
        if spec.imports:
            cmd += ["--import", *spec.imports]
        t0 = time.perf_counter()
        with open(log_tmp, "w") as log:
            proc = subprocess.run(cmd, stdout=None, stderr=log, timeout=timeout)
        walls.append(time.perf_counter() - t0)
        if proc.returncode == 0 and os.path.isfile(path):
            os.remove(log_tmp)
            if os.path.isfile(err):
                os.remove(err)
            landed += 1
            rec = spec.record(cell)
            if rec.get("reused_from"):
                walls.pop()  # a copy says nothing about how long training takes
            print(f"{label} {'reused' if rec.get('reused_from') else 'done'} in {fmt_sec(time.perf_counter() - t0)}: test ndcg@6 {rec['test'].get('ndcg@6', float('nan')):.4f}, "
                  f"{rec['epochs_run']} epochs (best {rec['best_epoch']}"
                  f"{', HIT THE EPOCH CAP' if rec['hit_epoch_cap'] else ''})", flush=True)
            write_results_csv(spec)
        else:
            os.replace(log_tmp, err)
            failed.append(cell)
            with open(err) as f:
                tail = f.read()[-1500:]
            print(f"{label} FAILED (exit {proc.returncode}); log: {err}\n{tail}", flush=True)
    return failed, landed


def run_searches(grid, path, only, dry_run=False):
    """The search stage of a tuning grid: each selected search that lacks trials runs to its budget.
    Returns the number of searches that ran."""
    todo = tuning.cells(grid, only)
    status = {c: tuning.status(grid, *c) for c in todo}
    done = [c for c in todo if status[c][0] >= status[c][1]]
    print(f"[benchmark] {path}: {len(todo)} searches, {len(done)} done, {len(todo) - len(done)} to run "
          f"(results: {grid['out']})", flush=True)
    ran = 0
    for dataset, name in todo:
        have, want = status[dataset, name]
        print(f"{dataset:16s} {name:28s} {have}/{want} trials", flush=True)
        if dry_run or have >= want:
            continue
        tuning.run_search(grid, dataset, name)
        ran += 1
    return ran


def run_tuning(args):
    """A tuning grid: its search stage, then its seeds stage once every search of the grid is done
    (``--only`` narrows both); ``--seeds`` only writes the seeds stage's grid, ``--report`` only renders."""
    grid = tuning.load_grid(args.config)
    only = tuning.parse_only(";".join(args.only or []))
    tuning.check_only(grid, args.config, only)
    if args.seeds:
        path, seeds, _ = tuning.write_seeds_grid(grid, args.config)
        print(f"{path}: {len(seeds['variants'])} tuned variant(s) on {len(seeds['datasets'])} dataset(s)")
        return
    ran = 0 if args.report else run_searches(grid, args.config, only, args.dry_run)
    if args.report or (ran and ((grid.get("seeds") or {}).get("report") or {}).get("markdown")):
        for path in render_searches(grid, args.config):
            print(f"[benchmark] wrote {path}")
    waiting = [c for c in tuning.cells(grid) if not tuning.is_done(grid, *c)]
    if waiting:
        print(f"[benchmark] seeds stage: waits for {len(waiting)} search(es) to finish", flush=True)
        return
    path = tuning.seeds_path(grid)
    if args.dry_run or args.report:
        if not tuning.seeds_grid_is_current(grid):
            print(f"[benchmark] seeds stage: {path} would be (re)written from the searches", flush=True)
            return
    else:
        path, _, written = tuning.write_seeds_grid(grid, args.config)
        if written:
            print(f"[benchmark] wrote the seeds stage's grid {path}", flush=True)
    run_benchmark(path, [f"dataset={','.join(sorted(only['dataset']))}"] if "dataset" in only else [], args,
                  contenders=only.get("contender"))


def run_benchmark(path, only, args, contenders=None):
    """A benchmark grid: its cells that ``only`` selects (``contenders``: of a seeds stage, the cells of
    these contenders, tuned or ``@default``)."""
    spec = load_spec(path)
    if contenders:
        only = [*only, "variant=" + ",".join(v for v in spec.variants if v.split("@")[0] in contenders)]
    check_only(spec, only)
    failed, landed = ([], 0) if args.report else run_grid(spec, only, args.dry_run, args.cell_timeout,
                                                          args.rerun_stale, args.rerun_drifted)
    if args.report or landed:
        write_results_csv(spec)
        for written in render(spec):
            print(f"[benchmark] wrote {written}")
    elif not args.dry_run:
        print("[benchmark] no cell landed: report left as it is (render it with --report)")
    if failed:
        raise SystemExit(f"{len(failed)} cell(s) failed: {', '.join(c.key for c in failed)}; "
                         f"logs in their .error.txt files; run the command again to retry them")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_dnr.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="grid yaml (e.g. experiments/grids/zoo.yaml)")
    parser.add_argument("--only", nargs="*", help="run only cells matching key=value (dataset, variant, seed; a tuning "
                                                  "grid: dataset, contender); a,b matches either")
    parser.add_argument("--report", action="store_true", help="only render results.csv, tables and plots")
    parser.add_argument("--seeds", action="store_true", help="a tuning grid: only write its seeds stage's grid")
    parser.add_argument("--dry_run", "--dry-run", action="store_true", help="list the cells that would run")
    parser.add_argument("--rerun_stale", "--rerun-stale", action="store_true",
                        help="retrain cells whose recorded settings differ from the grid's (else: an error)")
    parser.add_argument("--rerun_drifted", "--rerun-drifted", action="store_true",
                        help="retrain cells whose config now has another run key than they were trained under "
                             "(a yaml default changed; else: listed and kept)")
    parser.add_argument("--cell_timeout", "--cell-timeout", type=float, default=None, help="seconds before a cell is killed")
    args = parser.parse_args(argv)
    try:
        if tuning.is_tuning_grid(args.config):
            run_tuning(args)
        else:
            if args.seeds:
                raise UserInputError(f"--seeds: {args.config} is not a tuning grid (it has no trials, space or "
                                     "contenders): it has no seeds stage")
            run_benchmark(args.config, args.only, args)
    except UserInputError as e:
        raise SystemExit(f"error: {e}")
    return 0


if __name__ == "__main__":
    main()
