"""Entry points: ``build`` (a run ready to train), ``fit_and_test`` (train it, test it: a
:class:`RunResult`), ``run_recbole_dnr`` (both) and ``objective_function`` (a quiet one).

Same shape as RecBole-GNN's quick_start; never imports ``recbole.quick_start`` (ray).
"""

import csv
import logging
import os
import time
from logging import getLogger
from typing import NamedTuple

import numpy as np
import torch
from recbole.utils import init_logger, init_seed, set_color

from recbole_dnr import distributed, storage
from recbole_dnr.config import Config
from recbole_dnr.data import create_dataset, data_preparation
from recbole_dnr.data.download import download_dataset, download_source
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.quick_start.result import RunResult
from recbole_dnr.registry import is_reranker
from recbole_dnr.trainer import get_trainer
from recbole_dnr.trainer.list_trainer import selected_epoch

MIN_FREE = 16 << 20  # bytes: headroom for logs and small files on the checkpoint disk
CHECKPOINT_FIX = "set checkpoint_dir to a folder you can write, on a disk with space"


class BuiltRun(NamedTuple):
    """A run ready to train (what :func:`build` returns; unpacks as a tuple)."""

    config: Config
    dataset: object  # ListDataset in the list pipeline, RecBole's Dataset in its own
    splits: tuple  # (train, valid, test) dataloaders
    model: torch.nn.Module
    trainer: object

    @property
    def lists(self):
        """True in our list pipeline (rerankers, DNR, CoRR), False in RecBole's own (the config's model
        type): what the entry points ask, rather than each testing the model type."""
        return is_reranker(self.config)


def build(model=None, dataset=None, config_file_list=None, config_dict=None, argv=None):
    """Config, dataset, dataloaders, model and trainer, ready to ``fit`` (a :class:`BuiltRun`).
    ``argv``: ``--key=value`` config overrides from a command line (:class:`~recbole_dnr.config.Config`)."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    argv=argv)
    url = download_source(config)  # a missing dataset is the whole message, not the end of a config dump
    init_seed(config["seed"], config["reproducibility"])
    parallel = distributed.is_distributed(config)
    with distributed.rank_zero_first(parallel):  # RecBole creates its folders check-then-create
        # RecBole writes ./log and ./log_tensorboard under the working directory
        storage.check_writable("log", what="log folder", fix="run from a folder you can write (RecBole writes "
                               "./log and ./log_tensorboard under the working directory)")
        init_logger(config)
        storage.check_writable(config["checkpoint_dir"], MIN_FREE, "checkpoint_dir", CHECKPOINT_FIX)
        if url is not None and download_source(config) is not None:  # rank 0 downloads; the others find it there
            download_dataset(config, url, show_progress=config["show_progress"])
    logger = getLogger()
    logger.info(config)
    for note in getattr(config, "notes", []):
        logger.warning(note)
    ds = create_dataset(config)
    logger.info(ds)
    with distributed.rank_zero_first(parallel):  # rank 0 builds (and caches) the lists; the others read them
        train_data, valid_data, test_data = data_preparation(config, ds)
    init_seed(config["seed"] + distributed.rank(), config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)
    # best checkpoint + resume state (weights and Adam's two moments each) + the temp file of a write
    need = 3 * 3 * 4 * sum(p.numel() for p in model.parameters()) + MIN_FREE
    storage.check_writable(config["checkpoint_dir"], need, "checkpoint_dir", CHECKPOINT_FIX)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"], config.model_class)(config, model)
    built = BuiltRun(config, ds, (train_data, valid_data, test_data), model, trainer)
    if built.lists:
        trainer.checkpoint_extras["serving"] = train_data.requests.lists.serving_state()  # Recommender.load needs no retraining
    return built


def results_table(valid, test):
    """Valid and test metrics side by side, as text."""
    keys = list((valid or test or {}).keys())
    w = max([16] + [len(k) + 2 for k in keys])  # CoRR's retriever_recall@50 is longer than 16
    lines = [f"{'metric':<{w}}{'valid':>10}{'test':>10}"]
    for k in keys:
        lines.append(f"{k:<{w}}{(valid or {}).get(k, float('nan')):>10.4f}{(test or {}).get(k, float('nan')):>10.4f}")
    return "\n".join(lines)


class TrainingStopped(Exception):
    """Raised by a ``callback_fn`` to end a run after an evaluation (a pruned search trial); the run's
    resume state is discarded, and the exception goes on to the caller."""


def run_recbole_dnr(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, callback_fn=None,
                    keep_model=True, keep_state=False, argv=None, per_request=False):
    """Train ``model`` on ``dataset`` and evaluate on test; returns a :class:`RunResult` (which also
    reads as RecBole's result dict: ``result["test_result"]``). Its ``model_file`` (a saved
    reranker's) is what :class:`recbole_dnr.serve.Recommender` loads.
    ``callback_fn(epoch, valid_score)`` runs after each evaluation (RecBole's hook; a resumed run first
    replays the evaluations it restored);
    ``keep_model=False`` deletes the best checkpoint once it has been tested; ``keep_state=True`` keeps
    the finished run's resume state (``resume_file``), so a later run of the same config and seed with
    ``resume: True`` evaluates that checkpoint instead of training again (a search's best trial).
    ``argv``: ``--key=value`` config overrides from a command line; ``per_request``: also the test
    metrics of each request (``result.per_request``)."""
    started = time.perf_counter()
    built = build(model, dataset, config_file_list, config_dict, argv)
    if keep_state and not built.lists:
        keep_model = False  # RecBole's own pipeline keeps no resume state: its checkpoint alone is not kept

    def drop_model():
        if saved and not keep_model and distributed.rank() == 0 and os.path.isfile(built.trainer.saved_model_file):
            os.remove(built.trainer.saved_model_file)

    try:
        result = fit_and_test(built, saved, callback_fn, started, "keep" if keep_state and keep_model else "discard",
                              per_request)
    except TrainingStopped:  # (any other failure keeps it: a resumed run needs its best checkpoint)
        drop_model()
        raise
    drop_model()
    if not keep_model:
        result.model_file = None
    return result


def fit_and_test(built, saved=True, callback_fn=None, started=None, state="discard", per_request=False):
    """Train ``built`` (:func:`build`'s), evaluate its selected checkpoint on test once: a :class:`RunResult`.

    ``started``: ``time.perf_counter()`` when the run began (default: now), for ``seconds``.
    ``state``, the list pipeline's resume state once the run is complete: ``"discard"`` it, ``"keep"``
    it (``resume_file``; its lock released for the run that will read it), or ``"hold"`` it as it is,
    claimed, for a caller that discards it once it has stored the result (a benchmark cell: a process
    waiting on the same run then finds the stored result)."""
    if state not in ("discard", "keep", "hold"):
        raise ValueError(f"state={state!r}: expected 'discard', 'keep' or 'hold'")
    started = time.perf_counter() if started is None else started
    config, ds, (train_data, valid_data, test_data), _, trainer = built
    logger = getLogger()
    try:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=callback_fn)
    except TrainingStopped:
        if built.lists:
            trainer.resume.discard()  # a stopped run is not to be continued
        raise
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    logger.info("\n" + results_table(best_valid_result, test_result))
    for note in getattr(config, "notes", []):
        if note.startswith("unknown option"):  # said again: the first time scrolled away above the config dump
            logger.warning(note)
    curve = list(getattr(trainer, "valid_curve", None) or [])
    losses = getattr(trainer, "train_loss_dict", None)
    result = RunResult(
        model=config["model"], valid=best_valid_result, test=test_result, best_valid_score=best_valid_score,
        valid_score_bigger=config["valid_metric_bigger"], valid_curve=curve,
        train_loss_curve=[float(np.sum(losses[e])) for e in sorted(losses)] if losses is not None else [],
        epochs=len(losses) if losses is not None else None, best_epoch=selected_epoch(curve) if curve else None,
        # a resumed run's cost includes the training of the processes before it (a trial resumed after a
        # session ended would otherwise count its last part only); fit_seconds_before would count this
        # process's fit twice: fit adds its own time to it when it returns
        seconds=time.perf_counter() - started + getattr(trainer, "fit_seconds_restored", 0.0))
    if not built.lists:
        return result
    if saved:
        result.model_file = os.path.abspath(trainer.saved_model_file)  # Recommender.load(model_file) serves it
    result.list_stats = test_data.requests.lists.stats
    if per_request:
        result.per_request = per_request_metrics(trainer)
    if config["save_predictions"] and distributed.rank() == 0:
        result.predictions_file = save_predictions(config, ds, trainer)
    if state == "keep" and saved and os.path.isfile(trainer.resume.path):
        result.resume_file = os.path.abspath(trainer.resume.path)
        storage.release(trainer.resume.path)  # kept, and free for the run that will read it
    elif state != "hold":
        trainer.resume.discard()  # the run is complete: nothing left to resume
    return result


def per_request_metrics(trainer):
    """The last evaluated split's metrics per request: ``{"request_id": [R], <metric>: [R]}``, nan where a
    metric is undefined for a request (no positive among its candidates)."""
    out = trainer.last_eval
    arrays = {"request_id": out[REQUEST_ID].numpy()}
    per_list = trainer.evaluator.per_list(out["scores"], out[LABEL], out[SLATE_MASK], out.get("missed"))
    for key, (values, defined) in per_list.items():
        arrays[key] = np.where(defined.numpy(), values.numpy(), np.nan)
    return arrays


def save_predictions(config, dataset, trainer):
    """Write the last evaluated split (test) as CSV, one row per candidate (docs/predictions.md)."""
    out = trainer.last_eval
    per_list = trainer.evaluator.per_list(out["scores"], out[LABEL], out["slate_mask"])
    folder = config["predictions_dir"] or os.path.join(config["checkpoint_dir"], "predictions")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{config['model']}-{config['dataset']}-seed{config['seed']}.csv")
    users = dataset.id2token(dataset.uid_field, out["user"].numpy())
    items = dataset.id2token(dataset.iid_field, out["items"].numpy())
    k = max(config["topk"])
    order = torch.sort(out["scores"], dim=1, descending=True, stable=True).indices
    rerank_pos = torch.empty_like(order)
    rerank_pos.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
    metric_keys = list(per_list)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request_id", "user", "input_rank", "item", "x", "z", "score", "rerank_rank", "in_topk"] + metric_keys)
        for r in range(out["scores"].shape[0]):
            mvals = [f"{per_list[m][0][r].item():.6f}" if per_list[m][1][r] else "" for m in metric_keys]
            for j in range(out["scores"].shape[1]):
                rank = int(rerank_pos[r, j]) + 1
                w.writerow([int(out[REQUEST_ID][r]), users[r], j + 1, items[r, j], f"{out[SCORE][r, j].item():.6f}",
                            int(out[LABEL][r, j]), f"{out['scores'][r, j].item():.6f}", rank, int(rank <= k)] + mvals)
    os.replace(tmp, path)
    getLogger().info(set_color("Predictions", "green") + f": {path}")
    return path


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, nproc=1, world_size=-1,
        ip="localhost", port="5678", group_offset=0, argv=None):
    """``run_recbole_dnr`` in one process, or in ``nproc`` processes on this machine joining a world
    of ``world_size`` (all machines; default ``nproc``) whose rank 0 listens on ``ip:port``; this
    machine's ranks are ``group_offset .. group_offset + nproc - 1`` (RecBole's ``run``).
    ``argv``: ``--key=value`` config overrides from a command line.
    Returns rank 0's :class:`RunResult` on the machine that runs it, None elsewhere."""
    world = distributed.check_launch(nproc, world_size, ip, port, group_offset)
    if world == 1:
        return run_recbole_dnr(model, dataset, config_file_list, config_dict, saved, argv=argv)
    import torch.multiprocessing as mp

    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    argv=argv)
    distributed.require_reranker(is_reranker(config), config["model"])  # before any process starts
    config_dict = dict(config_dict or {})
    config_dict.update(world_size=world, ip=ip, port=str(port), nproc=nproc, offset=group_offset)
    queue = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_run_rank, args=(model, dataset, config_file_list, config_dict, saved, argv, queue), nprocs=nproc)
    except mp.ProcessExitedException:
        if not queue.empty():
            kind, value = queue.get()
            if kind == "error":  # a usage mistake a rank found: its message, not two tracebacks
                raise UserInputError(value) from None
        raise
    while not queue.empty():
        kind, value = queue.get()
        if kind == "result":
            return value
    return None


def _run_rank(local_rank, model, dataset, config_file_list, config_dict, saved, argv, queue):
    config_dict = dict(config_dict, local_rank=local_rank)
    try:
        result = run_recbole_dnr(model, dataset, config_file_list, config_dict, saved, argv=argv)
    except UserInputError as err:
        queue.put(("error", str(err)))
        raise SystemExit(1)
    if distributed.rank() == 0:
        queue.put(("result", result))
    distributed.barrier()
    import torch.distributed as dist

    dist.destroy_process_group()


def objective_function(config_dict=None, config_file_list=None, saved=True, callback_fn=None, keep_model=True,
                       keep_state=False):
    """Quiet run for tests and hyper-parameter search (RecBole-GNN's signature): a :class:`RunResult`,
    which reads as the dict RecBole's ``HyperTuning`` expects (model, best_valid_score,
    valid_score_bigger, best_valid_result, test_result)."""
    config_dict = dict(config_dict or {})
    config_dict.setdefault("state", "ERROR")
    config_dict.setdefault("show_progress", False)
    logging.basicConfig(level=logging.ERROR)
    return run_recbole_dnr(config_dict=config_dict, config_file_list=config_file_list, saved=saved,
                           callback_fn=callback_fn, keep_model=keep_model, keep_state=keep_state)
