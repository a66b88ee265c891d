"""The benchmark grid: a yaml listing datasets × models × seeds × overrides, expanded into cells.

Example (abridged from experiments/grids/zoo.yaml and corr.yaml)::

    out: experiments/results/zoo            # one json (+ npz) per finished cell, results.csv
    config_files: [experiments/grids/bench.yaml]  # shared by every cell
    datasets:                              # per-dataset settings (e.g. where the data lives)
      ml-100k: {}
      ml-1m-u1to2999: {data_path: ../shared/data, stopping_step: 10,
                       variants: {CoRR-alt: {stopping_step: 10}}}   # a variant's settings on this dataset only
    variants:                              # named settings; a plain name is a model or
      PRM-none: {model: PRM, score_fusion: none}   # a file in experiments/variants/
    reuse: [experiments/results/dnr_study]  # other grids' results: a cell trained there with the same
                                           # config (run key) is copied, not trained again
    test_curve: true                       # cells also evaluate test at every epoch (not a training setting)
    import: [my_reranker]                  # modules (or .py files) defining the grid's own models, imported
                                           # here and in every cell (as recbole-dnr recommend's --import)
    grids:                                 # each: datasets × models × seeds
      - {datasets: [ml-100k], models: [Retriever, PRM, DNR_PRM, SASRec], seeds: [2020, 2021, 2022]}
      - {datasets: [ml-100k], models: [PRM, DNR_PRM], seeds: [2020], set: {retriever_fit: holdout}, suffix: "@holdout"}
    report:                                # docs/benchmarks.md section and docs/img/<prefix>_<dataset>.png
      markdown: docs/benchmarks.md
      tag: corr                            # rewrites what lies between <!-- BEGIN corr ... --> and <!-- END corr -->
      pairs: [[CoRR, BPR+PRM]]             # paired tests beside DNR_X − X
      curves: [BPR+PRM, CoRR]              # valid curves drawn (default: every variant without an @suffix)
      select: "@default"                   # X against its twin X@default on valid (benchmark/selection.py)
      metrics: [h@6, ndcg@6, retriever_auc]  # table columns (test split)
      strata: {floor: Retriever, bins: 5,  # Δ per bin of x's quality (benchmark/strata.py); a third
               pairs: [[DNR_PRM, PRM, "DNR over the x reader"]]}  # element names the plot panel

A cell is (dataset, variant, seed). Cells are validated here, before any training. A finished cell is
*stale* when the grid now gives it other settings, *drifted* when its settings are the same but the
config they build has another run key than the one it was trained under (a model's yaml default or a
config file changed since).
"""

import json
import os
from dataclasses import dataclass, field

import yaml

from recbole_dnr import options
from recbole_dnr.config import Config, experiments_dir
from recbole_dnr.errors import ModelType, UserInputError
from recbole_dnr.registry import get_backbone, get_model
from recbole_dnr.serve.model_import import import_modules
from recbole_dnr.trainer.resume import earlier_run_keys, key_of, run_config, run_key

TOP_KEYS = {"out", "config_files", "datasets", "variants", "grids", "paper", "report", "reuse", "test_curve",
            "import"}
REPORT_KEYS = {"markdown", "tag", "img_dir", "prefix", "paper_note", "pairs", "table2", "table2_note", "metrics",
               "strata", "curves", "select", "paper_table"}


@dataclass(frozen=True)
class Cell:
    dataset: str
    variant: str
    seed: int

    @property
    def key(self):
        return f"{self.dataset}/{self.variant}/seed{self.seed}"


@dataclass
class Spec:
    path: str
    out: str
    config_files: list
    datasets: dict
    variants: dict
    cells: list
    paper: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    reuse: list = field(default_factory=list)
    dataset_variants: dict = field(default_factory=dict)  # {dataset: {variant: settings on that dataset}}
    test_curve: bool = False  # cells record test metrics at every evaluation (benchmark/paper.py)
    imports: list = field(default_factory=list)  # the grid's import: (modules defining its models)
    _now: dict = field(default_factory=dict, repr=False, compare=False)  # {cell: key_now(cell)}

    def cell_path(self, cell, ext="json"):
        return os.path.join(self.out, "cells", cell.dataset, cell.variant, f"seed{cell.seed}.{ext}")

    def settings(self, cell):
        """Config dict of a cell: dataset settings < variant settings < the variant's settings on that
        dataset (``datasets: {name: {variants: ...}}``) < seed."""
        cfg = {"dataset": cell.dataset, **layered(self.datasets, self.variants, self.dataset_variants,
                                                  cell.dataset, cell.variant)}
        cfg["seed"] = cell.seed  # the cell's file is named by it: a seed in the settings must not override it
        return cfg

    def settings_as_recorded(self, cell):
        """:meth:`settings` as a cell file records them (through json: tuples become lists)."""
        return json.loads(json.dumps(self.settings(cell)))

    def is_current(self, cell, record):
        """Whether a cell's record was run with the settings the grid now gives the cell (a record
        without settings predates them and counts as current)."""
        recorded = record.get("settings")
        return recorded is None or recorded == self.settings_as_recorded(cell)

    def key_now(self, cell):
        """``(run key, earlier keys of the same run, run config)`` that the cell's settings give today
        (one Config a cell, built once)."""
        if cell not in self._now:
            config = Config(config_file_list=self.config_files or None, config_dict=cell_settings(self.settings(cell)))
            self._now[cell] = (run_key(config), earlier_run_keys(config), run_config(config))
        return self._now[cell]

    def is_drifted(self, cell, record):
        """Whether a cell was trained under another run key than its settings give today: the same grid
        settings, another configuration (a yaml default or a config file changed since). A record without
        a run key predates them and is not checked."""
        recorded = recorded_key(record)
        if recorded is None:
            return False
        key, earlier, _ = self.key_now(cell)
        return recorded != key and recorded not in earlier

    def record(self, cell):
        """The finished cell's json record (the cell's file must exist)."""
        with open(self.cell_path(cell)) as f:
            return json.load(f)

    def status(self, cell):
        """``"missing"``, ``"done"``, ``"stale"``: a result file recorded with other settings than the grid
        now gives the cell (the yaml was edited after it ran), which must not pass for this grid's result,
        or ``"drifted"``: the same settings, but trained under another run key (:meth:`is_drifted`)."""
        if not os.path.isfile(self.cell_path(cell)):
            return "missing"
        record = self.record(cell)
        if not self.is_current(cell, record):
            return "stale"
        return "drifted" if self.is_drifted(cell, record) else "done"

    def stale_diff(self, cell):
        """``key: recorded -> now`` for each setting that differs, for error messages."""
        return changes(self.record(cell).get("settings") or {}, self.settings_as_recorded(cell))

    def drift_diff(self, cell):
        """``key: recorded -> now`` for each config value that differs from the cell's recorded run config;
        a cell that recorded none names its run keys."""
        record = self.record(cell)
        key, _, now = self.key_now(cell)
        recorded = record.get("run_config")
        if recorded is None:
            return f"run key {recorded_key(record)} -> {key} (the cell recorded no run config to compare)"
        return changes(recorded, now)


def changes(recorded, now):
    """``key: recorded -> now`` for each key whose value differs between two settings dicts."""
    keys = sorted(set(recorded) | set(now), key=str)
    return ", ".join(f"{k}: {recorded.get(k, '(unset)')} -> {now.get(k, '(unset)')}"
                     for k in keys if recorded.get(k) != now.get(k))


def cell_settings(settings):
    """The config dict a cell trains with (what a cell adds to the grid's settings)."""
    config_dict = dict(settings)
    config_dict.setdefault("show_progress", False)
    config_dict.setdefault("resume", True)  # a cell killed mid-way (session end) continues from its last epoch
    return config_dict


def recorded_key(record):
    """The training-run key of a finished cell (cells written before ``run_key`` was recorded carry it in
    their resume file's name, ``<model>-<dataset>-seed<seed>-<key>.pth``)."""
    if record.get("run_key"):
        return record["run_key"]
    return key_of(record.get("resume_file"))


def layered(datasets, variants, dataset_variants, dataset, variant):
    """A variant's settings on a dataset: dataset settings < variant settings < the variant's settings
    on that dataset (one order for the cells and for the checks before any training)."""
    return {**(datasets.get(dataset) or {}), **variants[variant],
            **((dataset_variants.get(dataset) or {}).get(variant) or {})}


def experiment_file(name):
    return os.path.join(experiments_dir(), name + ".yaml")


def resolve_variant(name, named):
    """Settings of a variant: ``named[name]``, else experiments/variants/<name>.yaml, else the model ``name``.
    RecBole models become list rerankers (``RecBoleReranker`` + ``recbole_model``)."""
    if name in named:
        settings = dict(named[name])
    elif os.path.isfile(experiment_file(name)):
        with open(experiment_file(name)) as f:
            settings = yaml.safe_load(f) or {}
    else:
        settings = {"model": name}
    model = settings.get("model")
    if not model:
        raise UserInputError(f"variant '{name}' has no model: give it a model: key")
    if model.startswith("DNR_"):
        get_backbone(model[len("DNR_"):])
    elif model != "RecBoleReranker" and get_model(model).type != ModelType.RERANK:
        settings = {"model": "RecBoleReranker", "recbole_model": model, **{k: v for k, v in settings.items()
                                                                         if k != "model"}}
    return settings


def check_pairs(path, where, pairs, variants, titled=False):
    """Each entry is [A, B], two variants of the grid; with ``titled``, optionally [A, B, "panel title"]."""
    for pair in pairs or []:
        ok = isinstance(pair, (list, tuple)) and (len(pair) == 2 or titled and len(pair) == 3 and isinstance(pair[2], str))
        if not ok or any(v not in variants for v in pair[:2]):
            form = "[A, B] or [A, B, \"panel title\"]" if titled else "[A, B]"
            raise UserInputError(f"{path}: {where} entry {pair!r} must be {form}, with A and B variants of the grid")


def load_spec(path):
    """Read and validate a grid yaml; every problem is reported before any cell runs."""
    if not os.path.isfile(path):
        raise UserInputError(f"benchmark config '{path}' not found (example: experiments/grids/zoo.yaml)")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise UserInputError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    if not raw.get("grids"):
        raise UserInputError(f"{path}: no grids: list at least one {{datasets, models, seeds}}")
    imports = raw.get("import") or []
    if isinstance(imports, str) or not all(isinstance(m, str) for m in imports):
        raise UserInputError(f"{path}: import: must be a list of module names or .py files that define the grid's "
                             f"models (e.g. [my_reranker]), got {imports!r}")
    import_modules(imports, where=f"{path}: import:")  # before the variants' models are looked up
    base = os.path.dirname(os.path.abspath(path))
    files = [f for f in raw.get("config_files") or []]
    for f in files:
        if not os.path.isfile(f):
            raise UserInputError(f"{path}: config file '{f}' not found (paths are relative to the working directory)")
    datasets, dataset_variants = {}, {}
    for name, settings in (raw.get("datasets") or {}).items():
        settings = dict(settings or {})
        own = settings.pop("variants", None) or {}
        if not isinstance(own, dict) or not all(isinstance(v, dict) for v in own.values()):
            raise UserInputError(f"{path}: datasets.{name}.variants must map variant names to settings, "
                                 f"e.g. {{CoRR-alt: {{stopping_step: 10}}}}")
        datasets[name], dataset_variants[name] = settings, own
    for name, settings in datasets.items():
        folder = (settings or {}).get("data_path")
        if folder and not os.path.isdir(os.path.join(folder, name)):
            raise UserInputError(f"{path}: dataset '{name}' not found under data_path '{folder}' "
                                 f"(expected the folder {os.path.join(folder, name)})")
    named = raw.get("variants") or {}
    variants, cells = {}, []
    for g, grid in enumerate(raw["grids"]):
        missing = {"datasets", "models", "seeds"} - set(grid)
        if missing:
            raise UserInputError(f"{path}: grids[{g}] lacks {sorted(missing)}")
        extra = set(grid) - {"datasets", "models", "seeds", "set", "suffix"}
        if extra:
            raise UserInputError(f"{path}: grids[{g}] has unknown keys {sorted(extra)}; allowed: datasets, models, "
                                 f"seeds, set (settings for this grid's cells), suffix (added to their variant names)")
        if grid.get("set") and not grid.get("suffix"):
            raise UserInputError(f"{path}: grids[{g}] has set: but no suffix: its cells need their own variant names")
        suffix = grid.get("suffix", "")
        for name in grid["models"]:
            if name + suffix not in variants:
                try:
                    variants[name + suffix] = {**resolve_variant(name, named), **(grid.get("set") or {})}
                except UserInputError as e:
                    hint = "" if imports else (" A model of your own: list the module (or .py file) that defines it "
                                               "under the grid's import:, e.g. import: [my_reranker].")
                    raise UserInputError(f"{path}: {e}{hint}") from None
        for ds in grid["datasets"]:
            for seed in grid["seeds"]:  # seed-major: a partly run grid already compares every model
                for name in grid["models"]:
                    cell = Cell(ds, name + suffix, int(seed))
                    if cell not in cells:
                        cells.append(cell)
    for ds, own in dataset_variants.items():
        for variant in own:
            if not any(c.dataset == ds and c.variant == variant for c in cells):
                raise UserInputError(f"{path}: datasets.{ds}.variants names '{variant}', which no grid runs on "
                                     f"{ds}; variants there: {', '.join(dict.fromkeys(c.variant for c in cells if c.dataset == ds))}")
    for ds, variant in dict.fromkeys((c.dataset, c.variant) for c in cells):  # a typo fails now, not hours in
        try:
            settings = layered(datasets, variants, dataset_variants, ds, variant)
            options.check(settings, get_model(settings["model"]))
        except UserInputError as e:
            raise UserInputError(f"{path}: variant '{variant}' on {ds}: {e}") from None
    report = raw.get("report") or {}
    unknown = set(report) - REPORT_KEYS
    if unknown:
        raise UserInputError(f"{path}: report has unknown keys {sorted(unknown)}; allowed: {sorted(REPORT_KEYS)}")
    for row in report.get("table2") or []:
        if not isinstance(row, (list, tuple)) or len(row) < 2 or row[1] not in variants:
            raise UserInputError(f"{path}: report.table2 row {row!r} must be [label, variant, paper figure] with a "
                                 f"variant of the grid ({', '.join(variants)})")
    check_pairs(path, "report.pairs", report.get("pairs"), variants)
    curves = report.get("curves")
    if curves is not None and (not isinstance(curves, list) or any(v not in variants for v in curves)):
        raise UserInputError(f"{path}: report.curves must be a list of the grid's variants (the valid curves drawn), "
                             f"got {curves!r}")
    select = report.get("select")
    if select is not None and (not isinstance(select, str) or not any(v.endswith(select) for v in variants)):
        raise UserInputError(f"{path}: report.select must be the suffix of the grid's default-config twins (e.g. "
                             f"'@default': X is chosen against X@default on valid), got {select!r}")
    strata = report.get("strata")
    if strata is not None:
        if not isinstance(strata, dict) or set(strata) - {"floor", "bins", "pairs"}:
            raise UserInputError(f"{path}: report.strata must be {{floor: <variant>, bins: <int>, pairs: [[A, B], ...]}}")
        if strata.get("floor", "Retriever") not in variants:
            raise UserInputError(f"{path}: report.strata floor {strata.get('floor', 'Retriever')!r} is not a variant "
                                 f"of the grid ({', '.join(variants)})")
        if not isinstance(strata.get("bins", 5), int) or strata.get("bins", 5) < 2:
            raise UserInputError(f"{path}: report.strata bins must be an integer >= 2")
        check_pairs(path, "report.strata pairs", strata.get("pairs"), variants, titled=True)
    if report.get("paper_table"):  # figures per metric: {dataset: {variant: {metric: value}}}
        for ds, rows in (raw.get("paper") or {}).items():
            for variant, figures in (rows or {}).items():
                if variant not in variants or not isinstance(figures, dict) or \
                        not all(isinstance(x, (int, float)) for x in figures.values()):
                    raise UserInputError(f"{path}: paper.{ds}.{variant} must be a variant of the grid mapped to the "
                                         f"paper's figures per metric, e.g. {{ndcg@6: 72.85}}; got {figures!r}")
    out = raw.get("out") or os.path.join(base, "results", os.path.splitext(os.path.basename(path))[0])
    reuse = raw.get("reuse") or []
    if isinstance(reuse, str) or not all(isinstance(r, str) for r in reuse):
        raise UserInputError(f"{path}: reuse: must be a list of results folders of other grids "
                             f"(e.g. [experiments/results/zoo])")
    if any(os.path.abspath(r) == os.path.abspath(out) for r in reuse):
        raise UserInputError(f"{path}: reuse: lists this grid's own results folder '{out}'; list other grids' folders")
    if not isinstance(raw.get("test_curve", False), bool):
        raise UserInputError(f"{path}: test_curve: must be true or false (true: cells also evaluate test at every "
                             f"epoch), got {raw['test_curve']!r}")
    return Spec(path=path, out=out, config_files=files, datasets=datasets, variants=variants, cells=cells,
                paper=raw.get("paper") or {}, report=report, reuse=list(reuse),
                dataset_variants=dataset_variants, test_curve=raw.get("test_curve", False), imports=list(imports))
