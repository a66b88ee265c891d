"""DNRTrainer: the DNR schedule on top of ListTrainer.

Epochs 1..λ_e (``lambda_e``): heuristic noise, θ step on L_θ = L_direct + λ_m L_z.
Later epochs (if ``use_learned_generator``): learned generator; after each θ step,
``generator_steps`` φ steps on λ_adv L_adv + λ_x L_x with their own optimizer. A φ step
back-propagates through the backbone into x' but accumulates gradients only in φ
(``backward(inputs=φ)``), and only the φ optimizer steps, so θ and its optimizer state stay
bit-identical. Checkpoints add the φ optimizer and the phase, so resuming crosses the switch.
"""

import torch
from recbole.utils import set_color

from recbole_dnr.model.dnr import HEURISTIC, LEARNED
from recbole_dnr.trainer.list_trainer import ListTrainer


class DNRTrainer(ListTrainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.lambda_e = config["lambda_e"]
        self.use_learned = config["use_learned_generator"]
        self.generator_steps = config["generator_steps"]
        self.phi = list(model.phi_parameters())
        self.gen_optimizer = torch.optim.Adam(self.phi, lr=config["generator_learning_rate"])
        self.generator_loss_sum = 0.0

    def phase_for(self, epoch_idx):
        """Phase of 0-based epoch ``epoch_idx``: 1-based epochs ≤ λ_e are heuristic."""
        return LEARNED if self.use_learned and epoch_idx >= self.lambda_e else HEURISTIC

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        phase = self.phase_for(epoch_idx)
        if phase != self.model.phase:
            self.logger.info(set_color(f"DNR phase: {self.model.phase} -> {phase}", "yellow") + f" at epoch {epoch_idx}")
        self.model.phase = phase
        self.generator_loss_sum = 0.0
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        if phase == LEARNED:
            self.tensorboard.add_scalar("Generator_loss", self.generator_loss_sum, epoch_idx)
        return loss

    def generator_step(self, interaction):
        """One φ step on λ_adv L_adv + λ_x L_x; θ receives no gradient and no update."""
        self.gen_optimizer.zero_grad()
        loss = self.model.generator_loss(interaction)
        loss.backward(inputs=self.phi)
        self.gen_optimizer.step()
        return loss.item()

    def _after_theta_step(self, interaction, epoch_idx):
        if self.model.phase == LEARNED:
            for _ in range(self.generator_steps):
                self.generator_loss_sum += self.generator_step(interaction)

    def _extra_state(self):
        return {"gen_optimizer": self.gen_optimizer.state_dict(), "phase": self.model.phase}

    def _load_extra_state(self, checkpoint):
        self.gen_optimizer.load_state_dict(checkpoint["gen_optimizer"])
        self.model.phase = self.phase_for(self.start_epoch)
