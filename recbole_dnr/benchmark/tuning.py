"""A tuning grid: a benchmark spec with a search stage. Every contender is searched with the same
budget over the same shared space (plus its own knobs), selected on valid only, then trained at its
best config on several seeds (the seeds stage: a benchmark grid this module writes).

    python -m recbole_dnr.benchmark --config experiments/grids/tuned.yaml           # searches, then the seeds stage
    python -m recbole_dnr.benchmark --config experiments/grids/tuned.yaml --only dataset=ml-100k contender=PRM-none
    python -m recbole_dnr.benchmark --config experiments/grids/tuned.yaml --dry_run # what is done / to run
    python -m recbole_dnr.benchmark --config experiments/grids/tuned.yaml --seeds   # only write the seeds grid
    python -m recbole_dnr.benchmark --config experiments/grids/tuned.yaml --report  # the search and seeds reports

A yaml with ``trials``, ``space`` or ``contenders`` is a tuning grid (:func:`is_tuning_grid`); its
searches are the cells of its search stage, stored beside the seeds stage's cells under ``out``.

The grid yaml::

    out: experiments/results/tuned        # <out>/<dataset>/<contender>/{trials.jsonl,trials.md,best.yaml}
    config_files: [experiments/grids/bench.yaml]
    trials: 16                           # per contender and dataset (a dataset may set its own)
    seed: 2020                           # the sampler's seed
    space: [learning_rate loguniform -8.5,-4.6, hidden_size choice [64,128]]   # RecBole params lines
    knobs: {dnr: [lambda_c uniform 0.1,1]}                                   # named groups of extra lines
    datasets: {ml-100k: {}, ml-1m-u1to2999: {data_path: ../shared/data, trials: 6, warm_start: ml-100k}}
    contenders:
      PRM-none: {settings: {model: PRM, score_fusion: none}}
      DNR-G: {settings: {model: DNR_PRM}, knobs: [dnr]}
      SASRec-none: {settings: {model: SASRec, score_fusion: none}, rename: {dropout_prob: hidden_dropout_prob}}
    seeds:                               # the seeds grid --seeds writes
      seeds: [2020, 2021, 2022]
      out: experiments/results/tuned/seeds
      grid: experiments/grids/tuned_seeds.yaml
      defaults: true                     # each contender also at its untuned config (variant X@default)
      reuse: [experiments/results/zoo]   # default cells another grid trained with the same config are copied
      pairs: [[DNR-G, PRM-none]]         # paired tests (X − X@default are added)
      report: {markdown: docs/benchmarks.md, tag: tuned, img_dir: docs/img, prefix: tuned}

``rename`` maps a shared parameter to the contender's own key (``null`` drops it: Caser has no
attention); ``datasets: [a]`` limits a contender to those datasets. A dataset's ``warm_start: d``
makes each of its searches try first the contender's best config on ``d`` (a scaled budget on a
dataset too large for many trials starts from the transfer, not from a random draw). Each finished trial is appended to ``trials.jsonl`` as it lands (commit them: a search
spans sittings); a search continues from its Optuna storage under ``saved/tuning/`` on the same
machine (the running trial from its last epoch) and from ``trials.jsonl`` elsewhere. ``--seeds``
writes the seeds stage's grid: each finished contender is a variant whose
settings on each dataset are its best config there (``datasets: {d: {variants: ...}}``), with its
untuned twin ``X@default`` beside it (paired tests, tables, plots as for every grid).
"""

import hashlib
import json
import os

import yaml

from recbole_dnr import storage
from recbole_dnr.config import Config
from recbole_dnr.errors import UserInputError
from recbole_dnr.hyper.search import TrialRow, best_row, run_optuna
from recbole_dnr.hyper.space import parse_line
from recbole_dnr.hyper.tables import trial_table
from recbole_dnr.storage import atomic_write_text

SEARCH_KEYS = {"trials", "space", "contenders"}  # what makes a grid yaml a tuning grid
TOP_KEYS = {"out", "config_files", "trials", "seed", "space", "knobs", "datasets", "contenders", "seeds", "prune"}
DATASET_KEYS = {"trials", "warm_start"}  # a dataset's grid keys; the rest of its entry is config settings
SEEDS_KEYS = {"seeds", "out", "grid", "defaults", "reuse", "pairs", "report"}


def is_tuning_grid(path):
    """Whether the yaml at ``path`` is a tuning grid (it has searches) rather than a plain benchmark grid."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return False  # load_spec names the problem
    return isinstance(raw, dict) and bool(SEARCH_KEYS & set(raw))


def load_grid(path):
    try:
        with open(path, encoding="utf-8") as f:
            grid = yaml.safe_load(f) or {}
    except OSError as err:
        raise UserInputError(f"tuning grid '{path}' cannot be read ({err.strerror})") from None
    unknown = set(grid) - TOP_KEYS
    if unknown:
        raise UserInputError(f"{path}: unknown key(s) {sorted(unknown)}; keys are {sorted(TOP_KEYS)}")
    for key in ("out", "space", "datasets", "contenders"):
        if not grid.get(key):
            raise UserInputError(f"{path}: '{key}' is required (see python -m recbole_dnr.benchmark --help)")
    for name, c in grid["contenders"].items():
        missing = [k for k in c.get("knobs", []) if k not in (grid.get("knobs") or {})]
        if missing:
            raise UserInputError(f"{path}: contender {name} names knob group(s) {missing} that 'knobs' lacks")
        stray = [d for d in c.get("datasets") or [] if d not in grid["datasets"]]
        if stray:
            raise UserInputError(f"{path}: contender {name} names dataset(s) {stray} that 'datasets' lacks")
    for dataset, settings in grid["datasets"].items():
        source = (settings or {}).get("warm_start")
        if source is not None and (source not in grid["datasets"] or source == dataset):
            others = ", ".join(d for d in grid["datasets"] if d != dataset) or "it has no other"
            raise UserInputError(f"{path}: datasets.{dataset}.warm_start must name another dataset of the grid "
                                 f"({others}), got {source!r}")
    seeds = grid.get("seeds") or {}
    unknown = set(seeds) - SEEDS_KEYS
    if unknown:
        raise UserInputError(f"{path}: seeds has unknown key(s) {sorted(unknown)}; keys are {sorted(SEEDS_KEYS)}")
    for pair in seeds.get("pairs") or []:
        if not (isinstance(pair, list) and len(pair) == 2 and all(v in grid["contenders"] for v in pair)):
            raise UserInputError(f"{path}: seeds.pairs entry {pair!r} must be [A, B], two contenders of the grid")
    return grid


def contender_space(grid, name):
    """The contender's params: the shared space (renamed or dropped) plus its knob groups."""
    c = grid["contenders"][name]
    rename = c.get("rename") or {}
    params = []
    for line in grid["space"]:
        p = parse_line(line, f"space of {name}")
        if p.name in rename:
            if rename[p.name] is None:
                continue
            p = type(p)(rename[p.name], p.kind, p.args)
        params.append(p)
    for group in c.get("knobs", []):
        params += [parse_line(line, f"knobs {group}") for line in grid["knobs"][group]]
    return params


def cells(grid, only=None):
    """``(dataset, contender)`` pairs in grid order, filtered by ``only`` (``{"dataset": {...}, ...}``)."""
    out = []
    for dataset in grid["datasets"]:
        for name, c in grid["contenders"].items():
            if c.get("datasets") and dataset not in c["datasets"]:
                continue
            if only and (("dataset" in only and dataset not in only["dataset"])
                         or ("contender" in only and name not in only["contender"])):
                continue
            out.append((dataset, name))
    return out


def folder(grid, dataset, name):
    return os.path.join(grid["out"], dataset, name)


def read_trials(path):
    """The committed trials of one search (``trials.jsonl``), as :class:`TrialRow` s."""
    if not os.path.isfile(path):
        return []
    fields = set(TrialRow.__dataclass_fields__) - {"result"}
    with open(path, encoding="utf-8") as f:
        return [TrialRow(**{k: v for k, v in json.loads(line).items() if k in fields}) for line in f if line.strip()]


def budget(grid, dataset):
    return int((grid["datasets"][dataset] or {}).get("trials", grid.get("trials", 16)))


def dataset_settings(grid, dataset):
    """A dataset's config settings (its entry less the grid's own keys)."""
    return {k: v for k, v in (grid["datasets"][dataset] or {}).items() if k not in DATASET_KEYS}


def fixed_settings(grid, dataset, name):
    settings = dataset_settings(grid, dataset)
    settings.update(grid["contenders"][name].get("settings") or {})
    settings["dataset"] = dataset
    return settings


def run_search(grid, dataset, name, storage_dir="saved/tuning"):
    """Search one (dataset, contender) until it holds its budget of finished trials."""
    where = folder(grid, dataset, name)
    os.makedirs(where, exist_ok=True)
    os.makedirs(storage_dir, exist_ok=True)
    tag = hashlib.sha1(os.path.abspath(grid["out"]).encode()).hexdigest()[:8]  # one study per results folder
    stem = os.path.abspath(os.path.join(storage_dir, f"{dataset}--{name}--{tag}"))
    if not storage.claim(stem):  # two runners on one search would both rewrite its trials.jsonl
        print(f"{dataset} {name}: another process is searching it ({stem}.lock); skipped", flush=True)
        return []
    rows = {r.number: r for r in read_trials(os.path.join(where, "trials.jsonl"))}
    params = contender_space(grid, name)

    def landed(row):
        if row.state == "failed" or any(r.params == row.params for r in rows.values()):
            return  # a failed config does not count; a trial read back from history is there already
        rows[len(rows)] = TrialRow(**{**row.record(), "number": len(rows)})
        _write(where, rows, grid, dataset, name)
        r = rows[len(rows) - 1]
        print(f"{dataset} {name} trial {r.number}: {r.state}, valid {r.best_valid:.4f}"
              + (f", test {r.test:.4f}" if r.state == "complete" else "")
              + f", {r.epochs} epochs, {r.seconds:.0f} s ({len(rows)} of {budget(grid, dataset)})", flush=True)

    try:
        return _search(grid, dataset, name, params, rows, landed, f"sqlite:///{stem}.db")
    finally:
        storage.release(stem, remove=True)


def warm_start(grid, dataset, name):
    """``[(params, note)]``: the contender's best config on the dataset's ``warm_start`` dataset, if that
    search has one."""
    source = (grid["datasets"][dataset] or {}).get("warm_start")
    if not source:
        return []
    best = best_row(read_trials(os.path.join(folder(grid, source, name), "trials.jsonl")))
    if best is None:
        print(f"{dataset} {name}: no finished trial on {source} to start from; the search starts cold", flush=True)
        return []
    return [(best.params, f"best of {source} (trial {best.number})")]


def _search(grid, dataset, name, params, rows, landed, storage_url):
    all_rows = run_optuna(params, grid.get("config_files"), fixed_settings(grid, dataset, name), budget(grid, dataset),
                          seed=int(grid.get("seed", 2020)), storage=storage_url, study_name=f"{dataset}/{name}",
                          prune=bool(grid.get("prune", True)), on_trial=landed, history=list(rows.values()),
                          start=warm_start(grid, dataset, name) if not rows else [],
                          label=lambda _: f"{dataset} {name} trial {len(rows)}")  # the row it will land as
    for row in sorted(all_rows, key=lambda r: r.number):  # trials the storage held that the results lack
        landed(row)
    return all_rows


def _write(where, rows, grid, dataset, name):
    ordered = [rows[k] for k in sorted(rows)]
    rank = {p.name: i for i, p in enumerate(contender_space(grid, name))}
    for r in ordered:  # the space's order, however the row was read back (trials.jsonl sorts keys)
        r.params = {k: r.params[k] for k in sorted(r.params, key=lambda k: (rank.get(k, len(rank)), k))}
    atomic_write_text(os.path.join(where, "trials.jsonl"),
                      "".join(json.dumps(r.record(), sort_keys=True) + "\n" for r in ordered))
    best = best_row(ordered)
    head = (f"# {name} on {dataset}: {len(ordered)} of {budget(grid, dataset)} trials "
            f"(python -m recbole_dnr.benchmark; selected on valid; * = best)\n\n")
    config = resolved_config(grid, dataset, name)
    metric = str(config["valid_metric"]).lower()
    atomic_write_text(os.path.join(where, "trials.md"), head + trial_table(ordered, metric, best, config["epochs"]) + "\n")
    if best is not None:
        best_cfg = {**fixed_settings(grid, dataset, name), **best.params}
        atomic_write_text(os.path.join(where, "best.yaml"),
                          f"# best of {len(ordered)} trials: valid {metric} {best.best_valid:.4f} (trial {best.number})\n"
                          + yaml.safe_dump(best_cfg, sort_keys=False))


def resolved_config(grid, dataset, name):
    """A contender's config before its searched params: the package's and model's yamls, the grid's
    config files, its settings."""
    return Config(config_file_list=grid.get("config_files") or None, config_dict=fixed_settings(grid, dataset, name))


def valid_metric(grid, dataset, name):
    """The metric a contender's trials are selected on, lower case."""
    return str(resolved_config(grid, dataset, name)["valid_metric"]).lower()


def status(grid, dataset, name):
    rows = [r for r in read_trials(os.path.join(folder(grid, dataset, name), "trials.jsonl"))
            if r.state in ("complete", "pruned")]
    return len(rows), budget(grid, dataset)


def is_done(grid, dataset, name):
    """Whether a search holds its budget of finished trials."""
    done, want = status(grid, dataset, name)
    return done >= want


def seeds_grid(grid):
    """A grid for ``python -m recbole_dnr.benchmark``: each finished contender a variant, at its best
    config on each dataset (per-dataset variant settings), and with ``defaults`` its untuned twin
    ``X@default``; report pairs are the grid's plus tuned − default of each contender."""
    spec = grid.get("seeds") or {}
    seeds = spec.get("seeds", [2020, 2021, 2022])
    variants, datasets, grids = {}, {}, []
    for dataset in grid["datasets"]:
        tuned = {}
        for ds, name in cells(grid, {"dataset": {dataset}}):
            done, want = status(grid, ds, name)
            if done < want:
                continue
            best = best_row(read_trials(os.path.join(folder(grid, ds, name), "trials.jsonl")))
            if best is None:
                continue
            variants[name] = dict(grid["contenders"][name].get("settings") or {})
            tuned[name] = dict(best.params)
        if not tuned:
            continue
        datasets[dataset] = {**dataset_settings(grid, dataset), "variants": tuned}
        grids.append({"datasets": [dataset], "models": list(tuned), "seeds": seeds})
        if spec.get("defaults"):
            grids.append({"datasets": [dataset], "models": list(tuned), "seeds": seeds, "suffix": "@default"})
    out = {"out": spec.get("out", os.path.join(grid["out"], "seeds")), "config_files": grid.get("config_files") or [],
           "datasets": datasets, "variants": variants, "grids": grids}
    if spec.get("reuse"):
        out["reuse"] = list(spec["reuse"])
    if spec.get("report"):
        pairs = [list(p) for p in spec.get("pairs") or [] if all(v in variants for v in p)]
        if spec.get("defaults"):
            pairs += [[name, f"{name}@default"] for name in variants]
        out["report"] = {**spec["report"], "pairs": pairs, "curves": list(variants)}
    return out


def seeds_path(grid):
    """Where the seeds stage's grid is written (``seeds.grid``)."""
    return (grid.get("seeds") or {}).get("grid", os.path.join(grid["out"], "seeds.yaml"))


def seeds_grid_is_current(grid):
    """Whether the seeds stage's grid file holds what :func:`seeds_grid` gives now."""
    path = seeds_path(grid)
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) == seeds_grid(grid)


def write_seeds_grid(grid, grid_path):
    """Write the seeds stage's grid when it is missing or holds other variants than :func:`seeds_grid`
    gives now (a file that holds the same is left as it is). Returns ``(path, seeds, written)``."""
    path, seeds = seeds_path(grid), seeds_grid(grid)
    if seeds_grid_is_current(grid):
        return path, seeds, False
    atomic_write_text(path, f"# written by python -m recbole_dnr.benchmark --config {grid_path} (its seeds stage);\n"
                            f"# run alone with python -m recbole_dnr.benchmark --config {path}\n"
                            + yaml.safe_dump(seeds, sort_keys=False))
    return path, seeds, True


def parse_only(text):
    """``--only`` of a tuning grid: ``dataset=a,b;contender=c`` (``variant`` is read as ``contender``)."""
    only = {}
    for cond in (text or "").split(";") if text else []:
        for part in cond.split(","):
            if "=" in part:
                key, value = part.split("=", 1)
                key = "contender" if key.strip() == "variant" else key.strip()  # a benchmark grid's word for it
                only.setdefault(key, set()).add(value.strip())
            elif only:
                only[list(only)[-1]].add(part.strip())
            elif part.strip():
                raise UserInputError(f"--only {text!r}: expected key=value (e.g. --only 'dataset=ml-100k;contender=PRM-none')")
    return only


def check_only(grid, path, only):
    """Each ``--only`` key is dataset or contender and each value one the grid has, and together they
    select a search: a typo would otherwise select nothing and look like a finished grid."""
    have = {"dataset": list(grid["datasets"]), "contender": list(grid["contenders"])}
    for key, values in only.items():
        if key not in have:
            raise UserInputError(f"--only: unknown key {key!r}; expected dataset=... and/or contender=... "
                                 "(e.g. --only 'dataset=ml-100k;contender=PRM-none')")
        missing = sorted(values - set(have[key]))
        if missing:
            raise UserInputError(f"--only: {path} has no {key} {missing[0]!r}; its {key}s: {', '.join(have[key])}")
    if only and not cells(grid, only):
        raise UserInputError(f"--only: no search in {path} has all of {_only_text(only)} (a contender may run "
                             "on some datasets only: see its datasets: list)")


def _only_text(only):
    return "; ".join(f"{k}={','.join(sorted(v))}" for k, v in only.items())
