"""EGRerankTrainer: EGRerank's two phases on top of ListTrainer.

Epochs 1..``egr_evaluator_epochs``: the evaluator (θ, the main optimizer) on L_direct, the logged
lists' BCE; early stopping is held off (the generator has not trained yet) and validation measures
the evaluator's own order. Then ``epochs`` generator epochs: PPO against the frozen evaluator with the
generator's own optimizer (swapped in as ``self.optimizer`` for the epoch, so clipping, distributed
gradient sums and the step apply to it alone); at the switch the best valid score is reset, so the
kept checkpoint is a trained generator's. Checkpoints add the generator's optimizer; the phase
follows from the epoch (and ``generator_on`` is saved with the weights), so resuming crosses the switch.
"""

import numpy as np
import torch
from recbole.utils import set_color

from recbole_dnr.trainer.list_trainer import ListTrainer

EVALUATOR, GENERATOR = "evaluator", "generator"


class EGRerankTrainer(ListTrainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.evaluator_epochs = config["egr_evaluator_epochs"]
        self.epochs = self.evaluator_epochs + config["epochs"]
        self.gen_optimizer = torch.optim.Adam(model.generator.parameters(), lr=config["egr_generator_learning_rate"],
                                              weight_decay=config["egr_generator_weight_decay"])

    def phase_for(self, epoch_idx):
        """Phase of 0-based epoch ``epoch_idx``."""
        return EVALUATOR if epoch_idx < self.evaluator_epochs else GENERATOR

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self.phase_for(epoch_idx) == EVALUATOR:
            self.cur_step = 0  # never stop early before the generator has trained
            self.model.generator_on.fill_(False)
            return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        if epoch_idx == self.evaluator_epochs:
            self.logger.info(set_color("EGRerank phase: evaluator -> generator", "yellow") + f" at epoch {epoch_idx}")
            self.best_valid_score = -np.inf if self.valid_metric_bigger else np.inf
            self.cur_step = 0
        self.model.generator_on.fill_(True)
        self.optimizer, self.gen_optimizer = self.gen_optimizer, self.optimizer
        try:
            return super()._train_epoch(train_data, epoch_idx, self.model.generator_loss, show_progress)
        finally:
            self.optimizer, self.gen_optimizer = self.gen_optimizer, self.optimizer

    def _extra_state(self):
        return {"egr_gen_optimizer": self.gen_optimizer.state_dict()}

    def _load_extra_state(self, checkpoint):
        self.gen_optimizer.load_state_dict(checkpoint["egr_gen_optimizer"])
