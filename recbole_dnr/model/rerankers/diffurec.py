"""DiffuRec (Li, Sun, Li, ACM TOIS 2023, "DiffuRec: A Diffusion Model for Sequential
Recommendation"; official code WHUIR/DiffuRec) as a reranker of our lists."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL
from recbole_dnr.model.abstract_reranker import ListBackbone, NeuralReranker, ScoreFeature
from recbole_dnr.model.diffusion import BETA_SCHEDULES, GaussianDiffusion, timestep_embedding
from recbole_dnr.model.history import TransformerHistory
from recbole_dnr.options import choice, integer, number
from recbole_dnr.registry import register_model

NEG_INF = float("-inf")


@register_model
class DiffuRec(ListBackbone):
    """Diffusion over the target item's embedding, denoised by a Transformer over the ordered history.

    - Forward process q(x_t | x₀ = e_target) with DiffuRec's ``trunc_lin`` schedule, T =
      ``diffurec_steps`` (``model/diffusion.py``).
    - Denoiser f_θ(history, x_t, t) = x̂₀ ``[B, D]``: z = x_t + MLP(sinusoid(t·1000/T)); every history
      token gets λ ⊙ z added (λ ~ N(δ, δ) elementwise in training, λ = δ at evaluation; δ =
      ``diffurec_lambda``); the tokens go through our transformer history reader
      (:class:`~recbole_dnr.model.history.TransformerHistory`), read at the newest slot.
    - Training target [ours, for our lists]: per list and step, one liked candidate drawn uniformly
      (every liked slate item is a target over the epochs); lists without a liked candidate add
      no diffusion loss (their pass starts from x₀ = 0 at t = T−1). Diffusion loss
      ``diffurec_loss``: ``full_ce`` = CE of softmax(x̂₀ Eᵀ) over the whole catalogue (the
      published one) or ``list_ce`` = over the 50 candidates [ours]; weighted by
      ``diffurec_loss_weight`` and added to L_direct (BCE on the logits below, from the same pass).
    - Evaluation: the reverse chain over ``diffurec_eval_steps`` respaced steps (~ = T). With
      ``diffurec_eval_chain: mean`` (default) x_T = 0 and no σ_t ε is added: deterministic, and each
      request's scores do not depend on its batch. ``random`` is the public code's single random
      chain (x_T ~ N(0, I), σ_t ε; scores change from call to call).
    - Candidate i: h_i = x̂₀ ⊙ e_i ``[B, n, D]``, logit_i = Σ_d h_i (= x̂₀·e_i, DiffuRec's rounding
      score); padding candidates score −∞.

    Reads the history only. x enters through ``score_fusion`` (late: + g(x) summed into the logit;
    weight; none = DiffuRec's own x-free score); early fusion is refused (the denoiser never sees
    the candidates). For ``DNR_DiffuRec`` the score head is what DNR perturbs: x' reaches only the
    fusion term, the denoiser is x-free.

    Differs from the public code: history padding is masked as attention keys (the public code
    masks query rows, so real items attend to padding) and recency position embeddings are added
    (the public code has none); the padding item's embedding is fixed at 0; post-norm ReLU encoder
    layers (public: pre-norm, GELU), one dropout ``dropout_prob`` (public: 0.3 on embeddings);
    deterministic evaluation (above); respaced evaluation as an option; the target comes from our
    lists, not every prefix of a sequence; scores over the 50 candidates, not the catalogue.
    """

    # the backbone sizes and the history reader's keys, as our other backbones, plus DiffuRec's own
    options = {
        **NeuralReranker.options,
        "diffurec_steps": integer("diffusion steps T, >= 2", 2),
        "diffurec_eval_steps": integer("reverse steps at evaluation (respaced; ~ = diffurec_steps)", 1),
        "diffurec_lambda": number("δ of the uncertainty λ ~ N(δ, δ) on the noisy target, >= 0", 0),
        "diffurec_loss_weight": number("weight of the diffusion cross-entropy, >= 0", 0),
        "diffurec_schedule": choice(*BETA_SCHEDULES),
        "diffurec_eval_chain": choice("mean", "random"),
        "diffurec_loss": choice("full_ce", "list_ce"),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["hidden_size"]
        self.h_dim = d
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)  # torch's N(0, 1), as the public code
        std = config["embedding_init_std"]
        if std is not None:
            nn.init.normal_(self.item_embedding.weight, 0.0, std)
            with torch.no_grad():
                self.item_embedding.weight[0].zero_()
        self.denoiser = TransformerHistory(self.item_embedding, d, config)
        self.step_mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        self.T = config["diffurec_steps"]
        self.diffusion = GaussianDiffusion(BETA_SCHEDULES[config["diffurec_schedule"]](self.T))
        self.eval_diffusion = self.diffusion.respaced(config["diffurec_eval_steps"] or self.T)
        self.delta = config["diffurec_lambda"]
        self.eval_chain = config["diffurec_eval_chain"]
        self.loss_form, self.loss_weight = config["diffurec_loss"], config["diffurec_loss_weight"]
        self.score_feature = ScoreFeature(d, config["score_fusion"])
        self._train_pass = None  # (x̂₀, target index, has target) of the training pass, for aux_loss

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        if cfg.get("score_fusion") == "early":
            raise UserInputError("DiffuRec cannot take score_fusion: early: its denoiser reads the history only "
                                 "and never sees the candidates; use late, weight or none")
        if cfg.get("side_features"):
            raise UserInputError("DiffuRec reads item ids only: set side_features: False")
        steps, eval_steps = cfg.get("diffurec_steps"), cfg.get("diffurec_eval_steps")
        if steps is not None and eval_steps is not None and eval_steps > steps:
            raise UserInputError(f"diffurec_eval_steps={eval_steps} exceeds diffurec_steps={steps}: the evaluation "
                                 f"chain keeps some of the T training steps; set diffurec_eval_steps <= {steps} or ~")

    def denoise(self, interaction, x_t, t, lam):
        """x̂₀ ``[B, D]`` from x_t ``[B, D]`` at steps t ``[B]``; lam: λ (a float or ``[B, H, D]``)."""
        z = x_t + self.step_mlp(timestep_embedding(t * (1000.0 / self.T), self.h_dim))
        return self.denoiser(interaction[HISTORY_ITEM], interaction[HISTORY_LABEL], lam * z.unsqueeze(1))

    def training_pass(self, interaction):
        """One denoiser pass at a random step: (x̂₀ ``[B, D]``, target index ``[B]``, has a target ``[B]``)."""
        items = interaction[self.ITEM_ID]
        liked = interaction[LABEL] * (items > 0)
        has = liked.sum(1) > 0
        # lists without a liked candidate draw any real one: its loss is masked, but must stay finite
        pick = torch.multinomial(liked + (~has).float().unsqueeze(1) * (items > 0), 1).squeeze(1)
        x0 = self.item_embedding(items.gather(1, pick.unsqueeze(1)).squeeze(1)) * has.unsqueeze(1)
        B, d = x0.shape
        t = torch.where(has, torch.randint(0, self.T, (B,), device=x0.device), torch.full_like(pick, self.T - 1))
        x_t = self.diffusion.q_sample(x0, t, torch.randn_like(x0))
        H = interaction[HISTORY_ITEM].shape[1]
        lam = self.delta + self.delta * torch.randn(B, H, d, device=x0.device)
        return self.denoise(interaction, x_t, t, lam), pick, has

    def generate(self, interaction):
        """x̂₀ ``[B, D]`` by the reverse chain (``diffurec_eval_chain``)."""
        B, d = interaction[self.ITEM_ID].shape[0], self.h_dim
        device = interaction[self.ITEM_ID].device
        random = self.eval_chain == "random"
        x_T = torch.randn(B, d, device=device) if random else torch.zeros(B, d, device=device)
        noise = (lambda shape: torch.randn(shape, device=device)) if random else None
        return self.eval_diffusion.reverse(lambda x, t: self.denoise(interaction, x, t, self.delta), x_T, noise)

    def encode(self, interaction, x):
        """h = x̂₀ ⊙ e_i ``[B, n, D]`` (x is not read: the denoiser sees the history only)."""
        if self.training:
            x0_hat, pick, has = self.training_pass(interaction)
            self._train_pass = (x0_hat, pick, has)  # the diffusion loss reads the same pass (aux_loss)
        else:
            x0_hat = self.generate(interaction)
        return x0_hat.unsqueeze(1) * self.item_embedding(interaction[self.ITEM_ID])

    def score_head(self, h, x):
        """logit_i = Σ_d h_i (+ the late fusion term) ``[B, n]``."""
        return self.score_feature.late(h, x).sum(-1)

    def aux_loss(self, interaction, h):
        """``diffurec_loss_weight`` · the diffusion CE of the training pass (None outside training)."""
        if self._train_pass is None:
            return None
        x0_hat, pick, has = self._train_pass
        self._train_pass = None
        items = interaction[self.ITEM_ID]
        if self.loss_form == "full_ce":
            logits = (x0_hat @ self.item_embedding.weight.T)[:, 1:]  # padding is never a target
            target = items.gather(1, pick.unsqueeze(1)).squeeze(1) - 1
        else:
            logits, target = h.sum(-1).masked_fill(items == 0, NEG_INF), pick
        ce = F.cross_entropy(logits, target, reduction="none")
        return self.loss_weight * (ce * has).sum() / has.sum().clamp(min=1)

    def score(self, interaction):
        """Evaluation logits ``[B, n]``; padding candidates get −∞."""
        items = interaction[self.ITEM_ID]
        return self.forward(interaction).masked_fill(items == 0, NEG_INF)
