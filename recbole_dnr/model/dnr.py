"""DNR: Denoising Neural Reranker (Mao, Liu et al.), wrapping any registered backbone.

Reranking = denoising the retriever's scores x toward the feedback z. The backbone is the
reranker q_θ(z | x, u); the generator p_φ(x' | z) exists only in training, so ``predict`` is
the backbone's forward on the real x and inference costs exactly the backbone's.
Symbol-to-code map: docs/method.md.
"""

import torch

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import LABEL, SCORE
from recbole_dnr.model.abstract_reranker import ListRecommender
from recbole_dnr.model.noise import (
    GENERATOR_FORMS,
    NOISES,
    SQUASHES,
    LearnedNoise,
    base_noise,
    score_kl,
    synthesize,
)
from recbole_dnr.options import choice, flag, integer, number
from recbole_dnr.registry import get_backbone, get_model, model_name, register_model, register_resolver

HEURISTIC, LEARNED = "heuristic", "learned"


@register_model
class DNR(ListRecommender):
    """``DNR_<Backbone>`` (or ``model: DNR`` + ``backbone: <Backbone>``) for any backbone.

    θ = ``backbone`` parameters, φ = ``generator`` parameters. ``phase`` is set by the trainer:
    ``heuristic`` (ε = u) for epochs ≤ λ_e, then ``learned`` (ε = u + f_φ).
    """

    backbone_name = None
    trainer_name = "DNRTrainer"
    user_facing = False  # typed as DNR_<Backbone> (model: DNR needs a backbone key as well)
    options = {
        "noise": choice(*NOISES),
        "noise_squash": choice(*SQUASHES),
        "lambda_c": number("noise share of x' = (1 - lambda_c) z + lambda_c eps, in [0, 1]", 0, 1),
        "lambda_m": number("weight of L_z, >= 0", 0),
        "lambda_e": integer("heuristic-noise epochs, >= 0", 0),
        "lambda_adv": number("weight of L_adv, >= 0", 0),
        "lambda_x": number("weight of L_x, >= 0", 0),
        "use_learned_generator": flag("learned noise after lambda_e"),
        "generator_form": choice(*GENERATOR_FORMS),
        "generator_hidden_size": integer("generator MLP width", 1),
        "generator_learning_rate": number("generator step size, > 0", 0, open_lo=True),
        "generator_steps": integer("φ steps per θ step", 0),
        "kl_bins": integer("histogram bins of L_x", 2),
    }

    @classmethod
    def option_specs(cls, cfg=None):
        """The backbone's options, then DNR's."""
        name = cls.backbone_name or (cfg or {}).get("backbone")
        own = super().option_specs(cfg)
        return {**get_backbone(name).option_specs(cfg), **own} if name else own

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        if (cfg.get("score_train_noise") or 0) > 0:
            raise UserInputError(f"score_train_noise={cfg['score_train_noise']}: it is a baseline for DNR (a plain "
                                 f"backbone trained on noisy x); {model_name(cls)} trains on its own synthetic x'. "
                                 "Set score_train_noise: 0, or use the backbone alone (e.g. --model=PRM)")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        name = self.backbone_name or config["backbone"]
        if not name:
            raise UserInputError("DNR needs a backbone: use model DNR_<Backbone> or set backbone: <Backbone>")
        self.backbone = get_backbone(name)(config, dataset)
        self.noise = config["noise"]
        self.noise_squash = config["noise_squash"]
        self.lambda_c = config["lambda_c"]
        self.lambda_m = config["lambda_m"]
        self.lambda_adv = config["lambda_adv"]
        self.lambda_x = config["lambda_x"]
        self.kl_bins = config["kl_bins"]
        self.generator_form = config["generator_form"]
        self.generator = LearnedNoise(config["generator_hidden_size"], self.generator_form,
                                      cond_dim=self.backbone.h_dim)
        self.phase = HEURISTIC
        self._encoded = None  # (batch, h.detach()) of the last θ step, reused by the φ step (late/no fusion)

    def theta_parameters(self):
        return self.backbone.parameters()

    def phi_parameters(self):
        return self.generator.parameters()

    def synthetic_scores(self, interaction, h=None, u=None):
        """x' ``[B, n]`` from p_φ(x' | z) under the current phase (differentiable in φ); h (the
        backbone's encoder output) is read only by the ``conditioned`` generator, detached; u is
        the base noise (drawn here if not given)."""
        z, x = interaction[LABEL], interaction[SCORE]
        u = base_noise(self.noise, z) if u is None else u
        if self.phase != LEARNED:
            return synthesize(z, u, self.lambda_c, self.noise_squash)
        cond = h.detach() if self.generator_form == "conditioned" else None
        out = self.generator(u, z, x, cond)
        return out if self.generator_form == "direct" else synthesize(z, out, self.lambda_c, self.noise_squash)

    def real_and_synthetic_logits(self, interaction, h, x_syn):
        """Logits on x and on x' from h = encode(x). Unless the encoder reads x (early fusion),
        only the head reruns on x'."""
        bb = self.backbone
        late = not bb.score_feature.encoder_reads_x
        self._encoded = (interaction, h.detach()) if late and self.training else None
        h_syn = h if late else bb.encode(interaction, x_syn)
        return bb.head_logits(h, interaction[SCORE]), bb.head_logits(h_syn, x_syn)

    def _logits_on(self, interaction, x_syn):
        """q_θ logits on x'. Unless the encoder reads x, its output does not depend on x', so the φ
        step reuses h from this batch's θ step (detached: gradients reach x' through the head only)."""
        bb = self.backbone
        if self._encoded is not None and self._encoded[0] is interaction:
            return bb.head_logits(self._encoded[1], x_syn)
        return bb(interaction, x_syn)

    def calculate_loss(self, interaction):
        """L_θ = L_direct + λ_m L_z (+ the backbone's own ``aux_loss``), returned as a tuple of
        terms (RecBole's trainer sums them); x' is detached."""
        z = interaction[LABEL]
        if self.lambda_m == 0:
            return self.backbone.calculate_loss(interaction)
        u = base_noise(self.noise, z)  # drawn before the encoder's dropout: the random stream of before
        h = self.backbone.encode(interaction, interaction[SCORE])
        x_syn = self.synthetic_scores(interaction, h, u).detach()
        real, syn = self.real_and_synthetic_logits(interaction, h, x_syn)
        losses = (self.backbone.list_loss(real, z), self.lambda_m * self.backbone.list_loss(syn, z))
        aux = self.backbone.aux_loss(interaction, h)
        return losses if aux is None else losses + (aux,)

    def generator_loss(self, interaction):
        """λ_adv L_adv + λ_x L_x; L_adv = log q_θ(z | x') = -BCE (minimised over φ; θ is not stepped)."""
        z, x = interaction[LABEL], interaction[SCORE]
        h = None
        if self.generator_form == "conditioned":
            h = self._encoded[1] if self._encoded is not None and self._encoded[0] is interaction else None
            if h is None:
                with torch.no_grad():
                    h = self.backbone.encode(interaction, x)
        x_syn = self.synthetic_scores(interaction, h)
        l_adv = -self.backbone.list_loss(self._logits_on(interaction, x_syn), z)
        l_x = score_kl(x_syn, x, self.kl_bins)
        return self.lambda_adv * l_adv + self.lambda_x * l_x

    def predict(self, interaction):
        return self.backbone.predict(interaction)


_DNR_CLASSES = {}


def dnr_class(name):
    """The class ``DNR_<Backbone>`` for ``name`` of that form (made once per backbone), else None."""
    if not name.startswith("DNR_"):
        return None
    backbone_name = name[len("DNR_"):]
    if backbone_name not in _DNR_CLASSES:
        get_backbone(backbone_name)  # fails with the list of backbones
        _DNR_CLASSES[backbone_name] = type(name, (DNR,), {"backbone_name": backbone_name, "__module__": __name__})
    return _DNR_CLASSES[backbone_name]


register_resolver("model", dnr_class)


def __getattr__(name):
    """Resolve ``DNR_<Backbone>`` classes by name, so pickled checkpoints (which hold the
    config and its model class) load back."""
    if name.startswith("DNR_"):
        return get_model(name)
    raise AttributeError(name)
