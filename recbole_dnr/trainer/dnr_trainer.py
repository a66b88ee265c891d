"""DNRTrainer: the DNR schedule on top of ListTrainer.

Epochs 1..λ_e (``lambda_e``): heuristic noise, θ step on L_θ = L_direct + λ_m L_z.
Later epochs (if ``use_learned_generator``): learned generator; after each θ step,
``generator_steps`` φ steps on λ_adv L_adv + λ_x L_x with their own optimizer. A φ step
back-propagates through the backbone into x' but accumulates gradients only in φ
(``backward(inputs=φ)``), and only the φ optimizer steps, so θ and its optimizer state stay
bit-identical. Checkpoints add the φ optimizer and the phase, so resuming crosses the switch.
The schedule lives in :class:`DNRSchedule`, so a trainer whose model holds a DNR inside (CoRR
with ``ranker: DNR_X``) runs the same phases and φ steps.
"""

import torch
from recbole.utils import set_color

from recbole_dnr.model.dnr import HEURISTIC, LEARNED
from recbole_dnr.trainer.list_trainer import ListTrainer


class DNRSchedule:
    """Phases and φ steps of one :class:`~recbole_dnr.model.dnr.DNR` module (``dnr``)."""

    def __init__(self, config, dnr, logger, sync=None):
        self.dnr, self.logger = dnr, logger
        self.sync = sync  # sync(params, n_lists): sums φ's gradients over ranks in a distributed run
        self.lambda_e = config["lambda_e"]
        self.use_learned = config["use_learned_generator"]
        self.generator_steps = config["generator_steps"]
        self.phi = list(dnr.phi_parameters())
        self.optimizer = torch.optim.Adam(self.phi, lr=config["generator_learning_rate"])
        self.loss_sum = 0.0

    def phase_for(self, epoch_idx):
        """Phase of 0-based epoch ``epoch_idx``: 1-based epochs ≤ λ_e are heuristic."""
        return LEARNED if self.use_learned and epoch_idx >= self.lambda_e else HEURISTIC

    def start_epoch(self, epoch_idx):
        phase = self.phase_for(epoch_idx)
        if phase != self.dnr.phase:
            self.logger.info(set_color(f"DNR phase: {self.dnr.phase} -> {phase}", "yellow") + f" at epoch {epoch_idx}")
        self.dnr.phase = phase
        self.loss_sum = 0.0

    def generator_step(self, interaction):
        """One φ step on λ_adv L_adv + λ_x L_x; θ receives no gradient and no update."""
        self.optimizer.zero_grad()
        n, value = len(interaction), 0.0
        if n:  # a rank's part of a distributed batch may be empty; it still joins the sum
            loss = self.dnr.generator_loss(interaction)
            loss.backward(inputs=self.phi)
            value = loss.item()
        if self.sync is not None:
            self.sync(self.phi, n)
        self.optimizer.step()
        return value

    def after_theta_step(self, interaction):
        if self.dnr.phase == LEARNED:
            for _ in range(self.generator_steps):
                self.loss_sum += self.generator_step(interaction)

    def state(self):
        return {"gen_optimizer": self.optimizer.state_dict(), "phase": self.dnr.phase}

    def load_state(self, checkpoint, start_epoch):
        self.optimizer.load_state_dict(checkpoint["gen_optimizer"])
        self.dnr.phase = self.phase_for(start_epoch)


class DNRTrainer(ListTrainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.schedule = DNRSchedule(config, model, self.logger, self.sync_gradients)

    def phase_for(self, epoch_idx):
        return self.schedule.phase_for(epoch_idx)

    def generator_step(self, interaction):
        return self.schedule.generator_step(interaction)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.schedule.start_epoch(epoch_idx)
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        if self.model.phase == LEARNED:
            self.tensorboard.add_scalar("Generator_loss", self.schedule.loss_sum, epoch_idx)
        return loss

    def _after_theta_step(self, interaction, epoch_idx):
        self.schedule.after_theta_step(interaction)

    def _extra_state(self):
        return self.schedule.state()

    def _load_extra_state(self, checkpoint):
        self.schedule.load_state(checkpoint, self.start_epoch)
