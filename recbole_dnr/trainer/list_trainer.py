"""ListTrainer: RecBole's Trainer for list data (rerankers).

Kept from RecBole: ``fit`` (early stopping on ``valid_metric``, checkpoint on improvement,
TensorBoard, colour logs), the optimizer factory, loss logging. Changed: the epoch loop
(clips only θ, exposes a hook for extra steps), evaluation over candidate lists with
:class:`~recbole_dnr.evaluator.ListEvaluator`, atomic checkpoints and torch>=2.6 loading.
"""

import os
import time
import uuid

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.nn.utils import clip_grad_norm_
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from recbole_dnr import distributed, storage
from recbole_dnr.errors import UserInputError
from recbole_dnr.evaluator import ListEvaluator
from recbole_dnr.fields import LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.trainer.recbole_pretrain import recbole_pretrain
from recbole_dnr.trainer.resume import ResumeState, capture_rng, restore_rng


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (the message names epoch, batch and requests)."""


def selected_epoch(curve):
    """The epoch (1-based) whose checkpoint early stopping kept, from the valid curve; 0 for none.

    RecBole's ``early_stopping`` takes a tie with the best so far as an improvement (``>=``) and
    saves that epoch, and valid scores are rounded to 4 decimals, so ties happen: the checkpoint is
    the *last* epoch that reaches the curve's maximum, not the first."""
    if not curve:
        return 0
    return len(curve) - int(np.argmax(np.asarray(curve, dtype=float)[::-1]))


class ListTrainer(Trainer):
    def __init__(self, config, model):
        self.distributed = distributed.is_distributed(config)
        if self.distributed:
            # RecBole would wrap the model in DDP with device_ids (GPU only); gradients are summed
            # by recbole_dnr.distributed instead (DNR's φ-only steps, uneven last batches).
            config["single_spec"] = True
            try:
                super().__init__(config, model)
            finally:
                config["single_spec"] = False
        else:
            super().__init__(config, model)
        self.evaluator = ListEvaluator(config)
        self.resume = ResumeState(config)
        self.valid_curve = []  # valid score of each evaluation, across a resume
        # loaders also evaluated after every valid evaluation, e.g. {"test": test_data} (a benchmark cell's
        # test curve); their metrics land in eval_curves[name], one dict per evaluation, across a resume
        self.curve_loaders = {}
        self.eval_curves = {}
        self.resumed_after = None  # the epoch a resumed run continued after
        self.epoch_seconds = []  # training seconds of each epoch, across a resume
        self.fit_seconds_before = 0.0  # time the processes before a resume spent in fit
        self.fit_seconds_restored = 0.0  # what the resume state held: earlier processes' fit time only
        self._fit_started = None
        self._time_epochs()
        self.last_eval = None
        self.checkpoint_extras = {}  # more entries of every checkpoint (quick_start adds "serving")
        # RecBole names checkpoints <model>-<time to the second>: two runs started in the same
        # second (parallel jobs sharing checkpoint_dir) would overwrite each other's best model.
        stem = os.path.splitext(os.path.basename(self.saved_model_file))[0]
        self.saved_model_file = os.path.join(
            self.checkpoint_dir, f"{stem}-{config['dataset']}-seed{config['seed']}-{uuid.uuid4().hex[:8]}.pth")
        # RecBole's writer logs to a CWD-relative folder from a background thread; anchor it, so a
        # later chdir (notebooks, tests) cannot make its flushes fail.
        log_dir = os.path.abspath(self.tensorboard.log_dir)
        self.tensorboard.close()
        self.tensorboard = SummaryWriter(log_dir)
        if self.distributed:
            distributed.broadcast_module(self.model)  # every rank starts from rank 0's initialisation
            self.saved_model_file = distributed.broadcast_object(self.saved_model_file)
            self.logger.info(set_color("Distributed", "yellow") + f": {distributed.describe()}; each rank trains on "
                             f"its part of every batch of {config['train_batch_size']} lists")

    # -------------------------------------------------------------- optimisation
    def _build_optimizer(self, **kwargs):
        params = list(kwargs.pop("params", self.model.theta_parameters()))
        if not params:
            return None  # a parameter-free model (the Retriever floor)
        return super()._build_optimizer(params=params, **kwargs)

    def _theta_params(self):
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._fit_started = time.perf_counter()
        try:
            return self._fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        finally:
            self.fit_seconds_before, self._fit_started = self.fit_seconds(), None

    def _fit(self, train_data, valid_data, verbose, saved, show_progress, callback_fn):
        if self.optimizer is None:
            self.logger.info(set_color("Nothing to train", "yellow") + f": {self.config['model']} has no parameters")
            if saved:
                self._save_checkpoint(-1, verbose=verbose)
            if valid_data:
                self.best_valid_score, self.best_valid_result = self._valid_epoch(valid_data, show_progress)
            return self.best_valid_score, self.best_valid_result
        if self.distributed and min(len(train_data.requests), train_data.step) < distributed.world_size():
            raise UserInputError(f"batches of {min(len(train_data.requests), train_data.step)} training lists "
                                 f"cannot be shared by {distributed.world_size()} processes: use fewer processes")
        if self.config["recbole_pretrain"] and self.distributed:
            raise UserInputError("recbole_pretrain runs RecBole's own trainer, which is GPU-only when "
                                 "distributed: pre-train in one process, or set recbole_pretrain: False")
        generator = getattr(train_data, "generator", None)
        if saved and (self.config["resume"] or self.config["resume_state"]):
            self.resume.claim()  # before reading: another process training this run would overwrite its state
        state = self._load_resume_state() if self.config["resume"] else None
        if self.config["recbole_pretrain"] and state is None:  # a resumed run's weights are past pre-training
            self._recbole_pretrain(train_data)
        if state is not None:
            finished = self._restore(state, generator, saved)
            if callback_fn:  # the evaluations before the stop, so that the hook sees the whole valid curve
                for i, score in enumerate(self.valid_curve):
                    callback_fn((i + 1) * self.eval_step - 1, score)
            if finished:
                return self.best_valid_score, self.best_valid_result

        def after_epoch(epoch_idx, valid_score):
            # RecBole calls this after each evaluation, past the best-checkpoint save
            self.valid_curve.append(float(valid_score))
            for name, loader in self.curve_loaders.items():
                self.eval_curves.setdefault(name, []).append(self.side_evaluate(loader))
            if saved and self.config["resume_state"]:
                self.resume.save(self, epoch_idx, generator)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        result = super().fit(train_data, valid_data, verbose, saved, show_progress, after_epoch)
        if saved and valid_data and self.eval_step > 0 and self.config["resume_state"]:
            self.resume.save(self, max(self.train_loss_dict, default=-1), generator, finished=True)
        return result

    def fit_seconds(self):
        """Seconds spent in ``fit`` by this run, the processes before a resume included."""
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self.fit_seconds_before + running

    def _time_epochs(self):
        """Record each epoch's training time (the most derived ``_train_epoch``, DNR's φ steps included);
        wrapped once, at construction, however often ``fit`` runs."""
        train_epoch = self._train_epoch

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = train_epoch(*args, **kwargs)
            self.epoch_seconds.append(time.perf_counter() - start)
            return out

        self._train_epoch = timed

    def _load_resume_state(self):
        state = self.resume.load(self.device, self.logger)
        if self.distributed and len(set(distributed.gather_objects(state is not None))) > 1:
            raise UserInputError(f"{self.resume.path} is visible to some processes only: resuming a run of several "
                                 "machines needs a checkpoint_dir they share (or copy the file to each)")
        if state is None:
            self.logger.info(set_color("Resume", "yellow") + f": no saved state for this run ({self.resume.path}); "
                             "starting from epoch 0")
        return state

    def _restore(self, state, generator, saved):
        """Continue from a resume state; True when that run had finished training."""
        finished = self.resume.restore(self, state, generator)
        self.resumed_after = state["epoch"]
        if saved and not os.path.isfile(self.saved_model_file):
            raise UserInputError(f"{self.resume.path} names the best checkpoint {self.saved_model_file}, "
                                 "which is gone: delete the resume file to start afresh")
        self.logger.info(set_color("Resume", "yellow") + f": {self.resume.path}, after epoch {state['epoch']}"
                         + (" (training had finished)" if finished else ""))
        return finished

    def _recbole_pretrain(self, train_data):
        """Pre-train every RecBole model inside the reranker (also under DNR) the RecBole way."""
        for module in self.model.modules():
            if getattr(module, "recbole_pretrainable", False):
                recbole_pretrain(self.config, module, train_data.requests)

    def _after_theta_step(self, interaction, epoch_idx):
        """Hook for extra optimisation steps after each θ step (DNR's generator step)."""

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        total = None
        iter_data = (
            tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
            if show_progress else train_data
        )
        theta = self._theta_params()
        for batch_idx, interaction in enumerate(iter_data):
            interaction = interaction.to(self.device)
            self.optimizer.zero_grad()
            n = len(interaction)  # 0 only for a rank's empty part of a distributed run's last batch
            if n:
                losses = loss_func(interaction)
                parts = losses if isinstance(losses, tuple) else (losses,)
                loss = sum(parts)
                self._check_finite(loss, interaction, epoch_idx, batch_idx)
                loss.backward()
            self.sync_gradients(theta, n)
            if self.clip_grad_norm:
                clip_grad_norm_(theta, **self.clip_grad_norm)
            self.optimizer.step()
            if n:
                values = tuple(p.item() for p in parts)
                total = values if total is None else tuple(a + b for a, b in zip(total, values))
            self._after_theta_step(interaction, epoch_idx)
        if self.distributed:  # the mean over ranks of each rank's sum of batch losses
            total = tuple(v / distributed.world_size() for v in distributed.all_sum(list(total)))
        if total is None:
            return 0.0
        return total if len(total) > 1 else total[0]

    def _check_finite(self, loss, interaction, epoch_idx, batch_idx):
        """Stop at a NaN/Inf loss, before the step that would spread it into the weights, naming
        the batch; the checkpoint of the best valid epoch so far is left as it was."""
        if torch.isfinite(loss):
            return
        ids = interaction[REQUEST_ID][:8].tolist() if REQUEST_ID in interaction.interaction else []
        saved = self.saved_model_file if os.path.isfile(self.saved_model_file) else "none yet"
        raise NonFiniteLossError(
            f"training loss is {loss.item()} at epoch {epoch_idx}, batch {batch_idx} (request ids {ids}"
            f"{' ...' if len(interaction) > len(ids) else ''}); nothing was stepped. Last good checkpoint: {saved}. "
            "Lower learning_rate, set clip_grad_norm, or check the inputs of these requests.")

    def sync_gradients(self, params, n_lists):
        """Sum ``params``' gradients over ranks (weights: lists per rank); nothing in one process."""
        if self.distributed:
            distributed.average_gradients(params, n_lists)

    # -------------------------------------------------------------- checkpoints
    def _extra_state(self):
        return {}

    def _load_extra_state(self, checkpoint):
        pass

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            **self._extra_state(),
            **self.checkpoint_extras,
        }
        if distributed.rank() == 0:
            storage.save(state, path)
        distributed.barrier()  # the other ranks may read it next (load_best_model)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def resume_checkpoint(self, resume_file):
        checkpoint = storage.load(resume_file, map_location=self.device)
        self.saved_model_file = str(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        if checkpoint["optimizer"] is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        self._load_extra_state(checkpoint)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    # -------------------------------------------------------------- evaluation
    @torch.no_grad()
    def predict_lists(self, eval_data, show_progress=False):
        """Scores ``[N, n]`` plus user, candidates, x, z, slate mask and request id of every request in ``eval_data`` (CPU), in loader order."""
        self.model.eval()
        iter_data = (
            tqdm(eval_data, total=len(eval_data), ncols=100, desc=set_color("Evaluate   ", "pink"))
            if show_progress else eval_data
        )
        fields = {"user": self.config["USER_ID_FIELD"], "items": self.config["ITEM_ID_FIELD"],
                  SCORE: SCORE, LABEL: LABEL, SLATE_MASK: SLATE_MASK, REQUEST_ID: REQUEST_ID}
        keep = {k: [] for k in ["scores", *fields]}
        for interaction in iter_data:
            interaction = interaction.to(self.device)
            keep["scores"].append(self.model.predict(interaction).float().cpu())
            for k, field in fields.items():
                keep[k].append(interaction[field].cpu())
        out = {k: torch.cat(v) for k, v in keep.items()}
        if self.config["eval_positives"] == "window":  # count the liked items the retriever missed
            n_window = eval_data.requests.window_positive_count(out[REQUEST_ID].numpy())
            out["missed"] = (n_window - out[LABEL].sum(1).long()).clamp(min=0)
        return out

    def load_model(self, model_file=None):
        """Load the weights of ``model_file`` (default: this run's best checkpoint)."""
        path = model_file or self.saved_model_file
        checkpoint = storage.load(path, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {path}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return
        if load_best_model:
            self.load_model(model_file)
        eval_data = self.eval_lists(eval_data)
        out = self.predict_lists(eval_data, show_progress)
        if self.distributed:  # every rank scores its part; all compute the metrics of the whole split
            out = distributed.gather_lists(out, eval_data.positions())
        self.last_eval = out
        result = self.evaluator.evaluate(out["scores"], out[LABEL], out[SLATE_MASK], out.get("missed"))
        return self.extend_result(result, eval_data)

    def side_evaluate(self, eval_data):
        """Metrics of the current weights on ``eval_data`` that leave training as it was: every random
        state (a diffusion model samples while predicting) and the last evaluation's lists are restored."""
        generator = getattr(eval_data, "generator", None)
        rng, last = capture_rng(generator), self.last_eval
        try:
            return {k: float(v) for k, v in self.evaluate(eval_data, load_best_model=False).items()}
        finally:
            restore_rng(rng, generator)
            self.last_eval = last

    def eval_lists(self, eval_data):
        """The loader an evaluation scores (CoRR retrieves its lists anew here)."""
        return eval_data

    def extend_result(self, result, eval_data):
        """Hook to add metrics of the evaluated lists to ``result``."""
        return result
