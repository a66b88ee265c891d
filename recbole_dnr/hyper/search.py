"""Hyper-parameter search over any model ``run_recbole_dnr`` trains (rerankers, ``DNR_<X>``, RecBole
models as rerankers or in RecBole's own pipeline).

Two tools read the same RecBole params file (:mod:`recbole_dnr.hyper.space`):

- ``optuna`` (default): TPE, random or grid sampling with a fixed seed; a median pruner on the valid
  curve stops a trial whose valid score after an epoch is below the median of earlier trials at that
  epoch (on 2 cores most of a search's time goes to hopeless trials); with ``storage`` (e.g.
  ``sqlite:///saved/hyper.db``) a killed search continues where it stopped, its unfinished trial
  from that trial's last evaluated epoch (trials run with ``resume: True``).
- ``hyperopt``: RecBole's own ``HyperTuning`` (exhaustive, random or bayes), for users who know it;
  needs hyperopt 0.2.5 (``pip install ".[hyper]"``).

Every trial is selected on valid only; its test figure is the one at its best valid epoch, shown for
reference. What a search writes (the trial table, the best trial's full config as a yaml that
``--config_files`` accepts) is :mod:`recbole_dnr.hyper.tables`'s.
"""

import math
import os
import time
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from recbole.utils import set_color
from tqdm import tqdm

from recbole_dnr.config import Config
from recbole_dnr.errors import UserInputError, missing_extra
from recbole_dnr.hyper.space import read_params_file
from recbole_dnr.machine import machine
from recbole_dnr.quick_start import RunResult, TrainingStopped, objective_function
from recbole_dnr.storage import release

TOOLS = ("optuna", "hyperopt")
ALGOS = {"optuna": ("tpe", "random", "grid"), "hyperopt": ("exhaustive", "random", "bayes")}


@dataclass
class TrialRow:
    """One trial: its parameters and what it gave (``state``: complete | pruned | failed); a trial this
    process trained to the end carries its :class:`~recbole_dnr.quick_start.RunResult` (``result``)."""

    number: int
    params: dict
    state: str
    best_valid: float = math.nan
    test: float = math.nan
    epochs: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    note: str = ""
    curve: list = field(default_factory=list, repr=False)  # valid score after each evaluated epoch
    result: Optional[RunResult] = field(default=None, repr=False)
    machine: dict = field(default_factory=dict, repr=False)  # where it trained (recbole_dnr.machine)
    kept_files: list = field(default_factory=list, repr=False)  # the best trial's checkpoint and resume state

    @classmethod
    def from_run(cls, number, params, result, valid_metric, where):
        """The row of a complete trial: ``result`` (a RunResult) read for ``valid_metric``."""
        return cls(number=number, params=params, state="complete", best_valid=float(result.best_valid_score),
                   test=float((result.test or {}).get(valid_metric, math.nan)), epochs=result.epochs or 0,
                   best_epoch=result.best_epoch or 0, seconds=result.seconds or 0.0, curve=list(result.valid_curve),
                   result=result, machine=where)

    def record(self):
        """The row as JSON-able dict (a grid's committed trials); ``machine`` where it was recorded."""
        row = {k: getattr(self, k) for k in ("number", "params", "state", "best_valid", "test", "epochs",
                                             "best_epoch", "seconds", "note", "curve")}
        return {**row, "machine": self.machine} if self.machine else row


def _primitive(v):
    return v is None or isinstance(v, (bool, int, float, str))


def check_search(params, config_files, fixed):
    """Build the configs a search can reach at the edges of its space (every choice, both ends of every
    range; the first: each parameter at its first value) before anything is trained: a missing file,
    an unknown model or parameter, or a value out of range (``lambda_c uniform 0,2``) fails now, not
    trials later. Returns ``(valid_metric, bigger, config)`` of the first."""
    edges = {p.name: p.edges() for p in params}
    corners = [{name: values[k % len(values)] for name, values in edges.items()}
               for k in range(max([len(v) for v in edges.values()] or [1]))]
    configs = []
    for corner in corners:
        try:
            configs.append(Config(config_file_list=config_files, config_dict={**fixed, **corner}))
        except UserInputError as err:
            if not configs and not any(f"'{p.name}'" in str(err) for p in params):
                raise  # the first corner is the fixed config with the first values: not the space's fault
            if not configs:  # a parameter of the space is a mistyped key
                raise UserInputError(f"params file: {err}") from None
            raise UserInputError(f"params file: a trial at the edge of the space would fail: {err} (at "
                                 + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in corner.items()) + ")") from None
    config = configs[0]
    unknown = [n for n in getattr(config, "notes", []) if n.startswith("unknown option")
               and any(f"'{p.name}'" in n for p in params)]
    if unknown:  # every trial would train the same config
        raise UserInputError("params file: " + "; ".join(unknown) + ": search options the model reads "
                             "(recbole-dnr --help lists them)")
    return str(config["valid_metric"]).lower(), bool(config["valid_metric_bigger"]), config


def distribution(p, algo="tpe"):
    """The Optuna distribution of :class:`~recbole_dnr.hyper.space.Param` ``p`` (a choice of
    non-primitive values is searched by index)."""
    from optuna import distributions

    if p.kind == "choice" or algo == "grid":
        values = p.grid()
        return distributions.CategoricalDistribution(values if all(map(_primitive, values)) else list(range(len(values))))
    low, high = p.args[0], p.args[1]
    if p.kind == "uniform":
        return distributions.FloatDistribution(low, high)
    if p.kind == "loguniform":
        return distributions.FloatDistribution(math.exp(low), math.exp(high), log=True)
    top = p.grid()[-1]
    if p.integral:
        return distributions.IntDistribution(int(low), int(top), step=int(p.args[2]))
    return distributions.FloatDistribution(low, top, step=p.args[2])


def _internal(p, value, algo):
    """``value`` as Optuna stores it for ``p`` (the index of a non-primitive choice)."""
    dist = distribution(p, algo)
    choices = getattr(dist, "choices", None)
    if choices is not None and not all(map(_primitive, p.grid())):
        return p.grid().index(value)
    return value


def run_optuna(params, config_files, fixed, max_evals, algo="tpe", seed=2020, storage=None, study_name="recbole_dnr",
               prune=True, on_trial=None, history=(), start=(), progress=True, label=None, checked=None):
    """Run the search with Optuna; returns every :class:`TrialRow` of the study (earlier runs' too).
    ``history``: finished :class:`TrialRow` s of this search kept elsewhere (a grid's committed
    trials); those the study does not hold are added to it first, so a search whose storage was lost
    reruns only its unfinished trials. ``start``: ``(params, note)`` pairs a new search tries first
    (a config transferred from another dataset); a search that holds trials ignores them.
    ``progress``: a bar per trial over its epochs, with the last and best valid score (trials train
    quietly, as in RecBole's ``objective_function``, and one can take hours), named ``label(trial
    number)`` (default ``trial <number>``, the table's numbering). ``checked``: :func:`check_search`'s
    result where the caller has it already."""
    try:
        import optuna
    except ImportError:
        raise missing_extra("--tool=optuna needs Optuna", '"optuna>=3.6"', "hyper") from None
    valid_metric, bigger, config = checked or check_search(params, config_files, fixed)
    epoch_cap, progress = config["epochs"], progress and config["show_progress"] is not False
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if algo == "grid":
        if any(p.kind in ("uniform", "loguniform") for p in params):
            raise UserInputError("--algo=grid needs discrete parameters (choice, quniform); use tpe or random")
        search_space = {p.name: p.grid() if all(map(_primitive, p.grid())) else list(range(len(p.grid())))
                        for p in params}
        max_evals = min(max_evals, math.prod(len(v) for v in search_space.values()))

    def make_sampler(s):
        if algo == "grid":
            return optuna.samplers.GridSampler(search_space, seed=s)
        if algo == "random":
            return optuna.samplers.RandomSampler(seed=s)
        return optuna.samplers.TPESampler(seed=s, n_startup_trials=min(8, max(1, max_evals // 3)))

    sampler = make_sampler(seed)
    # n_min_trials: judge an epoch only against >= 4 trials that reached it. Trials end by early
    # stopping, so at late epochs the only curves left are the best ones; against a median of one
    # or two of them a trial still rising would be pruned and the first good trial would win.
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2, n_min_trials=4) if prune
              else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
                                direction="maximize" if bigger else "minimize", load_if_exists=True)
    held = [t.params for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    for row in history:
        if row.state not in ("complete", "pruned"):
            continue
        values = {p.name: _internal(p, row.params[p.name], algo) for p in params}
        if values in held:
            continue
        study.add_trial(optuna.trial.create_trial(
            params=values, distributions={p.name: distribution(p, algo) for p in params},
            value=row.best_valid if row.state == "complete" else None,
            state=optuna.trial.TrialState.COMPLETE if row.state == "complete" else optuna.trial.TrialState.PRUNED,
            intermediate_values={i: v for i, v in enumerate(row.curve)},
            user_attrs={"params": row.params, "test": row.test, "epochs": row.epochs, "best_epoch": row.best_epoch,
                        "seconds": row.seconds, "curve": row.curve}))
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    if finished and algo != "grid":
        # a seeded sampler restarted would draw its first points again (trials that repeat finished
        # ones): a continued search draws from seed + the trials it holds, still deterministic
        study.sampler = make_sampler(seed + finished)
    if not study.get_trials(deepcopy=False):
        for values, note in start:
            study.enqueue_trial({p.name: _internal(p, values[p.name], algo) for p in params},
                                user_attrs={"start_note": note})
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # a trial of a killed search: marked failed and queued again, so it runs (resumed) first
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        carried = {k: t.user_attrs[k] for k in ("start_note",) if k in t.user_attrs}  # where its config came from
        study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number, **carried})

    def suggest(trial, p):
        dist = distribution(p, algo)
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            picked = trial.suggest_categorical(p.name, dist.choices)
            return picked if all(map(_primitive, p.grid())) else p.grid()[picked]
        if isinstance(dist, optuna.distributions.IntDistribution):
            return trial.suggest_int(p.name, dist.low, dist.high, step=dist.step)
        return trial.suggest_float(p.name, dist.low, dist.high, step=dist.step, log=dist.log)

    def objective(trial):
        values = {p.name: suggest(trial, p) for p in params}
        started = time.perf_counter()
        where = machine()  # figures drift apart across CPU kinds (docs/tuning.md)
        trial.set_user_attr("machine", where)
        # no bar and no time left: early stopping, not the epoch cap, usually ends a trial
        bar = tqdm(total=values.get("epochs", epoch_cap) or None, unit="epoch", disable=not progress,
                   bar_format="{desc}: {n_fmt}/{total_fmt} epochs [{elapsed}, {rate_fmt}{postfix}]",
                   desc=set_color(label(trial.number) if label else f"trial {trial.number:>3}", "pink"))

        curve = []

        def report(epoch, score):
            trial.report(float(score), step=epoch)
            curve.append(float(score))
            bar.set_postfix_str(f"{valid_metric} {score:.4f}, best {max(curve) if bigger else min(curve):.4f}",
                                refresh=False)
            bar.update(epoch + 1 - bar.n)
            trial.set_user_attr("epochs", epoch + 1)
            trial.set_user_attr("curve", curve)
            if trial.should_prune():
                raise TrainingStopped(f"pruned after epoch {epoch + 1}")

        try:
            result = objective_function({**fixed, **values, "resume": True}, config_files, callback_fn=report,
                                        keep_state=True)
        except TrainingStopped:
            trial.set_user_attr("seconds", time.perf_counter() - started)
            raise optuna.TrialPruned() from None
        except UserInputError as err:  # this combination is not a valid config: the search goes on
            trial.set_user_attr("error", str(err))
            raise
        finally:
            bar.close()
        row = TrialRow.from_run(trial.number, values, result, valid_metric, where)
        for key in ("test", "epochs", "best_epoch", "seconds"):
            trial.set_user_attr(key, getattr(row, key))
        trial.set_user_attr("params", values)
        keep_if_best(study, trial, row.best_valid, bigger, [result.model_file, result.resume_file])
        return row.best_valid

    def after(study, trial):
        if on_trial:
            on_trial(_row_from_trial(trial, params))

    done = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()
                and t.state != optuna.trial.TrialState.FAIL])
    if max_evals > done:
        study.optimize(objective, n_trials=max_evals - done, catch=(UserInputError,), callbacks=[after])
    return [_row_from_trial(t, params) for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


def keep_if_best(study, trial, value, bigger, files):
    """Keep the checkpoint and finished resume state of the best complete trial only (``files``: this
    trial's). A run of that config and seed with ``resume: True`` (the seeds grid's cell at the search's
    seed, or ``run_recbole_dnr.py --config_files=<best.yaml> --resume``) then evaluates it instead of
    training again; every other trial's files are removed as soon as it is beaten."""
    files = [f for f in files if f]
    try:
        best = study.best_trial  # complete trials only: this one is still running
    except ValueError:
        best = None
    if best is not None and not (value > best.value if bigger else value < best.value):  # a tie keeps the first
        _remove_run_files(files)
        return
    if best is not None:
        _remove_run_files(best.user_attrs.get("kept_files") or [])
    trial.set_user_attr("kept_files", files)


def _remove_run_files(paths):
    for path in paths:
        for name in (path, path + ".lock"):  # a kept resume state's lock file is no longer held: it goes too
            if os.path.isfile(name):
                os.remove(name)
        release(path)


def _row_from_trial(trial, params):
    import optuna

    attrs = trial.user_attrs
    values = attrs.get("params")
    if values is None:  # pruned or failed before the end: rebuild the values from Optuna's record
        values = {}
        for p in params:
            v = trial.params.get(p.name)
            values[p.name] = p.grid()[v] if (p.kind == "choice" and not all(map(_primitive, p.grid()))) else v
    state = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned"}.get(
        trial.state, "failed")
    curve = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
    best = trial.value if trial.value is not None else (max(curve) if curve else math.nan)
    return TrialRow(number=trial.number, params=values, state=state, best_valid=best, curve=curve,
                    test=attrs.get("test", math.nan), epochs=attrs.get("epochs", len(curve)),
                    best_epoch=attrs.get("best_epoch", 0), seconds=attrs.get("seconds", 0.0),
                    kept_files=attrs.get("kept_files") or [], machine=attrs.get("machine") or {},
                    note=attrs.get("error", "") or trial_note(attrs.get("start_note", ""), "requeued_from" in attrs))


def trial_note(start_note, resumed):
    """A trial row's note: where its config came from (a transferred start) and whether it was
    resumed after its search was stopped. Study trial numbers stay out: a grid renumbers its rows."""
    return "; ".join(n for n in (start_note, "resumed after a stop" if resumed else "") if n)


def run_hyperopt(params, config_files, fixed, max_evals, algo="exhaustive", seed=2020, on_trial=None, checked=None):
    """Run the search with RecBole's ``HyperTuning`` (hyperopt); returns the :class:`TrialRow` list
    (``checked`` as in :func:`run_optuna`)."""
    try:
        import hyperopt  # noqa: F401
    except ImportError:
        raise missing_extra("--tool=hyperopt needs hyperopt 0.2.5 (0.3 breaks RecBole's exhaustive search)",
                            '"hyperopt==0.2.5" "setuptools<81"', "hyper") from None
    from recbole.trainer.hyper_tuning import HyperTuning

    valid_metric, bigger, _ = checked or check_search(params, config_files, fixed)
    space = {}
    for p in params:
        args = list(p.args)
        space.setdefault(p.kind, {})[p.name] = args
    by_name = {p.name: p for p in params}
    rows = []

    def objective(config_dict, config_file_list):
        values = {k: by_name[k].cast(v) if k in by_name else v for k, v in config_dict.items()}  # quniform -> int
        result = objective_function({**fixed, **values}, config_file_list, keep_state=True)
        row = TrialRow.from_run(len(rows), values, result, valid_metric, machine())
        files = [f for f in (result.get("model_file"), result.get("resume_file")) if f]
        held = best_row(rows, bigger)
        if held is not None and not (row.best_valid > held.best_valid if bigger else row.best_valid < held.best_valid):
            _remove_run_files(files)  # as keep_if_best: a tie keeps the first
        else:
            if held is not None:
                _remove_run_files(held.kept_files)
                held.kept_files = []
            row.kept_files = files
        rows.append(row)
        if on_trial:
            on_trial(row)
        return result

    os.environ["HYPEROPT_FMIN_SEED"] = str(seed)  # fmin's rstate: the same trials for the same seed
    tuner = HyperTuning(objective, params_dict=space, fixed_config_file_list=config_files, algo=algo,
                        max_evals=max_evals)
    if algo != "exhaustive":
        tuner.max_evals = max_evals
    tuner.run()
    return rows


def best_row(rows, bigger=True):
    done = [r for r in rows if r.state == "complete" and not math.isnan(r.best_valid)]
    if not done:
        return None
    return max(done, key=lambda r: (r.best_valid if bigger else -r.best_valid, -r.number))  # a tie: the first


def check_tool(tool):
    """``tool`` in our spelling: RecBole's (``Hyperopt``) in any case; RecBole's ``Ray`` is refused."""
    name = str(tool).lower()
    if name == "ray":
        raise UserInputError(f"--tool={tool}: Ray Tune is not supported (ray<=2.6.3, which RecBole's tool needs, "
                             f"does not install on Python 3.12+); the supported tools: {', '.join(TOOLS)}")
    if name not in TOOLS:
        raise UserInputError(f"--tool={tool}: expected one of {', '.join(TOOLS)}")
    return name


class SearchResult(NamedTuple):
    """What a search returns: its trials, the chosen one, the metric it was chosen on and in which
    direction (``bigger``: higher is better), and the epoch cap the trials ran under."""
    rows: list
    best: Optional[TrialRow]
    valid_metric: str
    bigger: bool
    epoch_cap: int


def search(params_file, config_files=None, fixed=None, tool="optuna", algo=None, max_evals=20, seed=2020,
           storage=None, study_name="recbole_dnr", prune=True, on_trial=None):
    """Run a search; returns a :class:`SearchResult`: what the trial table
    (:func:`recbole_dnr.hyper.tables.write_results`) and the trial plot are written from."""
    tool = check_tool(tool)
    algo = algo or ALGOS[tool][0]
    if algo not in ALGOS[tool]:
        raise UserInputError(f"--algo={algo}: {tool} takes {', '.join(ALGOS[tool])}")
    if max_evals < 1:
        raise UserInputError(f"--max_evals={max_evals}: expected at least 1 trial")
    params = read_params_file(params_file)
    fixed = dict(fixed or {})
    checked = check_search(params, config_files, fixed)  # every corner of the space, before any trial trains
    valid_metric, bigger, config = checked
    if tool == "optuna":
        rows = run_optuna(params, config_files, fixed, max_evals, algo, seed, storage, study_name, prune, on_trial,
                          checked=checked)
    else:
        rows = run_hyperopt(params, config_files, fixed, max_evals, algo, seed, on_trial, checked=checked)
    return SearchResult(rows, best_row(rows, bigger), valid_metric, bigger, config["epochs"])
