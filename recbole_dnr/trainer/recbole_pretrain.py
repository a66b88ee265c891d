"""``recbole_pretrain: True``: before list fine-tuning, a RecBole model used as a reranker is
trained the RecBole way (RecBole's ``Trainer`` and the model's own ``calculate_loss``, e.g.
SASRec's CE over all items) on next-item prediction over the training period: every training
interaction with at least one earlier one is a target, its last ``L`` predecessors the sequence
(RecBole's sequential augmentation). Valid/test slates and later interactions are never seen."""

import copy
import logging

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_dnr import protocol
from recbole_dnr.recbole_models import SequenceLoader, recbole_sequence


def training_sequences(requests, window):
    """(users ``[R]``, left-padded predecessors ``[R, window]``, targets ``[R]``) of the training period."""
    cfg = requests.config
    _, users, items, _, _ = requests.log_arrays()
    starts, splits, _ = protocol.cut_requests(users, cfg["slate_size"], cfg["valid_slates"], cfg["test_slates"])
    rows = np.flatnonzero(protocol.training_rows(users, starts, splits))
    rows = rows[rows > protocol.user_bounds(users)[users[rows]]]
    hist, _, _ = protocol.history(items, np.zeros_like(items), users, rows, window)
    return users[rows], hist, items[rows]


def recbole_pretrain(config, reranker, requests):
    """Train ``reranker.model`` (a RecBole sequential model) with RecBole's trainer for
    ``recbole_pretrain_epochs`` epochs on the training period of the log behind ``requests`` (a
    training :class:`~recbole_dnr.data.request_set.RequestSet`)."""
    model = reranker.model  # Config checked that it is sequential with loss_type CE
    users, hist, targets = training_sequences(requests, reranker.window)
    seq, length = recbole_sequence(torch.as_tensor(hist), reranker.window)
    fields = {reranker.ITEM_SEQ: seq, reranker.ITEM_SEQ_LEN: length, reranker.USER_ID: torch.as_tensor(users),
              reranker.ITEM_ID: torch.as_tensor(targets)}
    cfg = copy.copy(config)
    cfg.final_config_dict = dict(config.final_config_dict)
    cfg["epochs"] = config["recbole_pretrain_epochs"]
    cfg["learning_rate"] = config["recbole_pretrain_learning_rate"] or config["learning_rate"]
    cfg["clip_grad_norm"] = None
    logging.getLogger().info(set_color("RecBole pre-training", "green") + f": {type(model).__name__}, "
                             f"{len(targets)} next-item targets of the training period, {cfg['epochs']} epochs")
    trainer = Trainer(cfg, model)
    trainer.fit(SequenceLoader(fields, cfg["train_batch_size"], config["seed"]), None, saved=False,
                show_progress=config["show_progress"])
    trainer.tensorboard.close()
