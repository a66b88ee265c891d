"""Resumable training: the state a killed run needs to finish as if it had never stopped.

RecBole's checkpoint holds the *best* epoch's weights, so resuming from it replays epochs with a
different optimizer state and random streams. After every evaluated epoch :class:`ResumeState`
writes the *last* epoch: weights, optimizer(s), early-stopping counters, the best valid result,
the path of the best checkpoint, and every random stream the next epoch draws from (torch, numpy,
python, the training loader's generator; per rank in a distributed run). ``resume: True``
(``--resume``) loads it, so the continued run reaches the same final metrics as an uninterrupted
run with the same seed, including across DNR's phase switch (tests/test_reliability.py).

The file is ``<checkpoint_dir>/resume/<model>-<dataset>-seed<seed>-<hash>.pth``, the hash taken
over every config value that can change training (device, progress bars, output folders and the
launcher's options are left out; ml-100k's folder inside RecBole's package counts relative to it),
so only the same run picks it up. It is removed when the run
completes (training and test evaluation), except a search's best trial's: kept finished, so that a
later run of that config and seed evaluates its checkpoint instead of training
(``run_recbole_dnr(keep_state=True)``). A run claims it (``<file>.lock``, held until the process
ends) before reading it: a second process with the same config and seed, which would overwrite the
first's state every epoch, stops with an error instead (a benchmark cell waits for the first,
then copies its result).
"""

import hashlib
import json
import os
import random

import numpy as np
import torch

from recbole_dnr import distributed, storage
from recbole_dnr.errors import UserInputError

# config keys that do not change what training computes (some differ between the ranks of one
# distributed run: Config silences ranks > 0 through state / show_progress / verbose)
VOLATILE = {"device", "gpu_id", "use_gpu", "local_rank", "nproc", "world_size", "offset", "ip", "port",
            "single_spec", "resume", "resume_state", "show_progress", "state", "verbose", "log_wandb", "wandb_project",
            "worker",
            "save_predictions", "predictions_dir", "checkpoint_dir", "reproducibility",
            "download", "download_url", "download_timeout"}


# options added after runs were keyed: at this value they change nothing, so they are left out of the
# hash and the runs keyed before them (resume files, finished benchmark cells) keep their keys
NEUTRAL = {"score_train_noise": 0.0, "history_encoder": "mean", "history_feedback": True, "history_layers": 2,
           "user_interaction": "add", "token_norm": False, "embedding_init_std": None, "list_context": True,
           "side_features": False,
           "position_embedding": None}


def portable_data_path(path):
    """``path`` as the run key sees it: a folder inside RecBole's installed package (where ml-100k is
    read from, whatever ``data_path`` says) becomes ``<recbole>/...``, so the same run keeps its key
    from another checkout or virtualenv; any other path is kept as given."""
    import recbole  # the installed package's folder, not a path in the config

    root = os.path.dirname(os.path.abspath(recbole.__file__))
    full = os.path.normpath(os.path.abspath(str(path)))
    if full.startswith(root + os.sep):
        return "<recbole>/" + os.path.relpath(full, root).replace(os.sep, "/")
    return path


def run_payload(config, portable=True):
    """The config values that determine training: what :func:`run_key` hashes (``portable=False``: the
    ``data_path`` as given, as keys were taken before :func:`portable_data_path`)."""
    payload = {k: v for k, v in config.final_config_dict.items()
               if k not in VOLATILE and not (k in NEUTRAL and v == NEUTRAL[k])}
    if portable and payload.get("data_path"):
        payload["data_path"] = portable_data_path(payload["data_path"])
    return payload


def payload_blob(payload):
    return json.dumps(payload, sort_keys=True, default=str)


def payload_key(payload):
    """16-hex hash of a :func:`run_payload`."""
    return hashlib.sha1(payload_blob(payload).encode()).hexdigest()[:16]


def run_key(config):
    """16-hex hash of the config values that determine training."""
    return payload_key(run_payload(config))


def run_config(config):
    """:func:`run_payload` as JSON (what a finished cell records, to name the values that changed when
    its run key no longer matches its config)."""
    return json.loads(payload_blob(run_payload(config)))


def earlier_run_keys(config):
    """Other keys this very run was recorded under: before :func:`portable_data_path`, ml-100k's folder
    inside RecBole's package counted as its absolute path (here: this install's)."""
    return {payload_key(run_payload(config, portable=False))} - {run_key(config)}


def state_path(config):
    name = f"{config['model']}-{config['dataset']}-seed{config['seed']}-{run_key(config)}.pth"
    return os.path.join(config["checkpoint_dir"], "resume", name)


def key_of(path):
    """The run key in a resume file's name (:func:`state_path`), or None when it is not one."""
    name = os.path.basename(path or "")
    return name[:-len(".pth")].rsplit("-", 1)[-1] if name.endswith(".pth") else None


def capture_rng(loader_generator):
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
             "loader": loader_generator.get_state() if loader_generator is not None else None}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state, loader_generator):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if loader_generator is not None and state["loader"] is not None:
        loader_generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeState:
    """Writes and reads one run's resume file (rank 0 writes; every rank reads)."""

    def __init__(self, config):
        self.path = state_path(config)
        self.parallel = distributed.is_distributed(config)

    def save(self, trainer, epoch, loader_generator, finished=False):
        rng = capture_rng(loader_generator)
        rngs = distributed.gather_objects(rng) if self.parallel else [rng]
        state = {
            "epoch": epoch,
            "finished": finished,
            "cur_step": trainer.cur_step,
            "best_valid_score": trainer.best_valid_score,
            "best_valid_result": trainer.best_valid_result,
            "best_model_file": trainer.saved_model_file,
            "train_loss_dict": dict(trainer.train_loss_dict),
            "valid_curve": list(trainer.valid_curve),
            "eval_curves": {k: list(v) for k, v in trainer.eval_curves.items()},
            "epoch_seconds": list(trainer.epoch_seconds),
            "fit_seconds": trainer.fit_seconds(),
            "state_dict": trainer.model.state_dict(),
            "other_parameter": trainer.model.other_parameter(),
            "optimizer": trainer.optimizer.state_dict(),
            "rng": rngs,
            **trainer._extra_state(),
        }
        if distributed.rank() == 0:
            storage.save(state, self.path)
        distributed.barrier()

    def claim(self, wait=False, on_wait=None):
        """Make this process the only one training this run (rank 0 speaks for a distributed run)."""
        if distributed.rank() != 0:
            return
        if not storage.claim(self.path, wait=wait, on_wait=on_wait):
            raise UserInputError(f"another process is training this very run (same config and seed; it holds "
                                 f"{self.path}.lock): wait for it to finish, or change the seed or checkpoint_dir")

    def load(self, device, logger=None):
        """The saved state, or None when this run has none or it is damaged (then training restarts)."""
        if not os.path.isfile(self.path):
            return None
        try:
            return storage.load(self.path, map_location=device)
        except storage.CorruptFileError as err:
            if logger:
                logger.warning(f"Damaged resume state ignored, training from epoch 0: {err}")
            return None

    def restore(self, trainer, state, loader_generator):
        """Put ``state`` into ``trainer``; True when that run had already finished training."""
        rngs = state["rng"]
        world = distributed.world_size() if self.parallel else 1
        if len(rngs) != world:
            raise UserInputError(f"{self.path} was written by {len(rngs)} process(es); resume it with the same "
                                 f"number (got {world}), or delete it to start afresh")
        trainer.start_epoch = state["epoch"] + 1
        trainer.cur_step = state["cur_step"]
        trainer.best_valid_score = state["best_valid_score"]
        trainer.best_valid_result = state["best_valid_result"]
        trainer.saved_model_file = state["best_model_file"]
        trainer.train_loss_dict.update(state["train_loss_dict"])
        trainer.valid_curve[:] = state["valid_curve"]
        trainer.eval_curves.update(state.get("eval_curves", {}))  # states written before these curves: none
        trainer.epoch_seconds[:] = state.get("epoch_seconds", [])  # states written before timing was kept: none
        trainer.fit_seconds_before = trainer.fit_seconds_restored = state.get("fit_seconds", 0.0)
        trainer.model.load_state_dict(state["state_dict"])
        trainer.model.load_other_parameter(state.get("other_parameter"))
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer._load_extra_state(state)
        restore_rng(rngs[distributed.rank() if self.parallel else 0], loader_generator)
        return state["finished"] or trainer.cur_step > trainer.stopping_step or trainer.start_epoch >= trainer.epochs

    def discard(self):
        if distributed.rank() == 0 and os.path.isfile(self.path):
            os.remove(self.path)
        storage.release(self.path, remove=True)
