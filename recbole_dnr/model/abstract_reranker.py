"""Reranker bases. A reranker scores every candidate of a request: ``[B, n]``.

Shared parts live here, once: the retriever-score feature (:class:`ScoreFeature`, how x
enters a backbone), the backbone contract DNR relies on (:class:`ListBackbone`: ``encode`` ->
``head_logits``, the list loss L_direct), and for our own backbones the candidate tokens, the
user state from history (``model/history.py``) and the scoring head (:class:`NeuralReranker`). Such a backbone only says how it encodes a list of tokens
(``encode_list``).
"""

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import InputType

from recbole_dnr.errors import ModelType, UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE
from recbole_dnr.model.features import side_features
from recbole_dnr.model.history import HISTORY_ENCODERS, make_history_encoder
from recbole_dnr.model.layers import make_dropout
from recbole_dnr.model.noise import perturb_scores
from recbole_dnr.options import choice, flag, integer, number
from recbole_dnr.retrieval.spec import RETRIEVER_KEYS, retriever_class


class ListRecommender(AbstractRecommender):
    """Base of every list model: input a batch of lists, output a score per candidate ``[B, n]``."""

    type = ModelType.RERANK
    input_type = InputType.LISTWISE
    is_backbone = False
    trainable = True  # False: nothing to train, so epochs: 0 is allowed (the Retriever floor)
    # this class's own option specs (recbole_dnr.options), beside its yaml; option_specs merges them
    options = {}
    export_blocker = None  # why predict cannot be traced for ONNX/TorchScript (a sentence), or None

    def __init__(self, config, dataset):
        super().__init__()
        self.config = config
        self.ITEM_ID = config["ITEM_ID_FIELD"]
        self.USER_ID = config["USER_ID_FIELD"]
        self.n_items = dataset.num(self.ITEM_ID)
        self.device = config["device"]

    @classmethod
    def check_config(cls, cfg):
        """Settings this model relies on that need more than a type or range check, checked when
        :class:`~recbole_dnr.config.Config` is built (before any data is read); raise
        :class:`UserInputError`. ``cfg``: the final config dict."""
        if cfg.get("retriever_model") is not None:
            retriever_class(cfg["retriever_model"])  # a RecBole model that can retrieve
        weak = cfg.get("probe_weak_retriever")
        if weak and (not isinstance(weak, dict) or set(weak) - set(RETRIEVER_KEYS)):
            raise UserInputError(f"probe_weak_retriever must be a dict of retriever settings "
                                 f"({sorted(RETRIEVER_KEYS)}), e.g. {{retriever_embedding_size: 8}}; got {weak}")

    @classmethod
    def option_specs(cls, cfg=None):
        """{key: :class:`~recbole_dnr.options.Option`} Config checks this model's settings against:
        the ``options`` of its classes (base first, a subclass may redeclare a key), after those of
        its ``defaults_class`` (CoRR's ranker). ``cfg``: the config's keys."""
        specs = {}
        for klass in reversed(cls.__mro__):
            specs.update(vars(klass).get("options", {}))
        defaults = cls.defaults_class(cfg or {})
        return specs if defaults is cls else {**defaults.option_specs(cfg), **specs}

    @classmethod
    def prepare_for_serving(cls, config):
        """Change ``config`` (a trained run's) before the model is rebuilt to load its checkpoint."""

    @classmethod
    def defaults_class(cls, given):
        """The class whose yamls give this model's defaults (``given``: the user's keys)."""
        return cls

    def theta_parameters(self):
        """Parameters of the reranker q_θ (what the main optimizer trains)."""
        return self.parameters()

    def predict(self, interaction):
        """Scores ``[B, n]`` of the candidates (higher = shown first)."""
        raise NotImplementedError

    def full_sort_predict(self, interaction):
        return self.predict(interaction)


class ScoreFeature(nn.Module):
    """How the retriever score x ``[B, n]`` enters a backbone (one module for every backbone).

    ``score_fusion: none``: never (the paper's score-free PRM). ``early``: x is embedded and added
    to each candidate token before the encoder (≈ the paper's "c score"). ``late``: x is embedded
    and added to the encoder output before the head (the DNR group's σ(W·(h + x)); ≈ "+ score"), so
    a pass with other scores x' re-runs only the head. ``weight``: x weighs the backbone's output,
    logit = s + w·logit(x) with w = softplus(a) ≥ 0 learned (≈ "w score"): the probability's odds
    are the backbone's odds times x's odds to the power w, so the score is monotone in x for a fixed
    h, x = 0.5 is neutral, and the BCE-with-logits path and DNR's head-only rerun are kept. The
    embedding is a 1 -> ``width`` -> ``hidden`` MLP. While :meth:`ignoring_x` is active every form
    acts as ``none`` (``predict_without_score``).
    """

    FUSIONS = ("none", "early", "late", "weight")

    def __init__(self, hidden, fusion, width=None):
        super().__init__()
        if fusion not in self.FUSIONS:
            raise UserInputError(f"score_fusion must be one of {list(self.FUSIONS)}, got '{fusion}'")
        self.fusion = fusion
        width = width or hidden
        self.proj = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, hidden)) \
            if fusion in ("early", "late") else None
        # softplus(0.5413) = 1: start from the plain product of odds
        self.weight_raw = nn.Parameter(torch.tensor(0.5413)) if fusion == "weight" else None
        self._ignore_x = False

    @property
    def encoder_reads_x(self):
        """True iff the encoder output h depends on x (then a pass on x' must re-encode)."""
        return self.fusion == "early"

    def _uses(self, form):
        return self.fusion == form and not self._ignore_x

    def embed(self, x):
        return self.proj(x.unsqueeze(-1))

    def early(self, tokens, x):
        return tokens + self.embed(x) if self._uses("early") else tokens

    def late(self, h, x):
        return h + self.embed(x) if self._uses("late") else h

    def weigh(self, logits, x):
        """``weight`` fusion on the final logits ``[B, n]``."""
        if not self._uses("weight"):
            return logits
        return logits + F.softplus(self.weight_raw) * torch.logit(x.clamp(1e-4, 1 - 1e-4))

    @contextlib.contextmanager
    def ignoring_x(self):
        """Score as if ``score_fusion`` were ``none`` (the group code's evaluation without x)."""
        self._ignore_x = True
        try:
            yield
        finally:
            self._ignore_x = False


class ListBackbone(ListRecommender):
    """A reranker DNR can wrap: ``encode(interaction, x) -> h`` then ``head_logits(h, x) -> [B, n]``.

    Subclasses set ``self.score_feature`` (:class:`ScoreFeature`) and implement ``encode`` and
    ``score_head``; x may enter only through ``score_feature``, so ``score_fusion`` means the
    same thing for every backbone, and unless it is ``early`` h does not depend on x.
    Loss L_direct = list-wise BCE against z (or ``list_loss: attention_rank``).
    """

    is_backbone = True
    h_dim = None  # width of h's last axis (read by DNR's conditioned generator); set by subclasses
    options = {
        "score_fusion": choice(*ScoreFeature.FUSIONS),
        "score_train_noise": number("σ of the training-time noise on x, >= 0 (0 = off)", 0),
    }

    def encode(self, interaction, x):
        """h ``[B, n, ...]``; x ``[B, n]`` may be used only through ``score_feature.early``."""
        raise NotImplementedError

    def score_head(self, h, x):
        """Backbone-specific logits ``[B, n]`` from h; x may be used only through ``score_feature.late``."""
        raise NotImplementedError

    def head_logits(self, h, x):
        """Logits ``[B, n]`` from h (``score_head``, then the ``weight`` fusion if chosen)."""
        return self.score_feature.weigh(self.score_head(h, x), x)

    def forward(self, interaction, x=None):
        """Logits of q_θ(z | x) ``[B, n]``; ``x`` defaults to the real retriever scores."""
        x = interaction[SCORE] if x is None else x
        return self.head_logits(self.encode(interaction, x), x)

    def list_loss(self, logits, z):
        """-log q_θ(z | ·) over ``[B, n]``: ``list_loss: bce`` (per-candidate binary cross-entropy,
        the default) or ``attention_rank`` (SetRank's: cross-entropy between the softmax of the
        logits and a^z_i = τ(z_i)/Σ_k τ(z_k), τ(z) = e^z·1[z>0]; lists without a positive add 0)."""
        if self.config["list_loss"] == "attention_rank":
            return attention_rank_loss(logits, z)
        return F.binary_cross_entropy_with_logits(logits, z)

    def aux_loss(self, interaction, h):
        """A backbone's own extra training loss on h (e.g. PIER's evaluator and hinge), or None.
        Added to L_direct by ``calculate_loss`` and by DNR's θ loss."""
        return None

    def calculate_loss(self, interaction):
        """L_direct = -E_x log q_θ(z | x) (+ the backbone's ``aux_loss``). With ``score_train_noise: σ``
        the training x is x + σ·N(0, 1) re-normalised per list: a naive noise-robust use of x, the
        baseline DNR's denoising is measured against (evaluation always sees the real x)."""
        x = interaction[SCORE]
        sigma = self.config["score_train_noise"] or 0.0
        if sigma and self.training:
            x = perturb_scores(x, sigma)
        h = self.encode(interaction, x)
        loss = self.list_loss(self.head_logits(h, x), interaction[LABEL])
        aux = self.aux_loss(interaction, h)
        return loss if aux is None else (loss, aux)

    def score(self, interaction):
        """Evaluation scores ``[B, n]`` (the logits; PIER overrides it)."""
        return self.forward(interaction)

    def predict(self, interaction):
        """``score``; with ``predict_without_score: True`` as if x were never given (the DNR group
        code's evaluation, a reported variant, not a default)."""
        if self.config["predict_without_score"]:
            with self.score_feature.ignoring_x():
                return self.score(interaction)
        return self.score(interaction)


def attention_rank_loss(logits, z):
    """SetRank's attention rank loss ``[B, n] -> []`` (Pang et al. 2020, Eq. 9)."""
    tau = torch.where(z > 0, torch.exp(z), torch.zeros_like(z))
    total = tau.sum(1, keepdim=True)
    has_pos = total.squeeze(1) > 0
    target = tau / total.clamp(min=1e-12)
    per_list = -(target * F.log_softmax(logits, dim=1)).sum(1)
    return (per_list * has_pos).sum() / logits.shape[0]


class ItemVectors(nn.Module):
    """e_i + the item's side features ``[...] -> [..., D]`` (what the history reader and the tokens embed)."""

    def __init__(self, embedding, features):
        super().__init__()
        self.embedding, self.features = embedding, features

    def forward(self, ids):
        return self.embedding(ids) + self.features(ids)


class NeuralReranker(ListBackbone):
    """Base of our trainable backbones. q_θ(z | x, u): tokens -> ``encode_list`` -> head -> logits ``[B, n]``.

    Token of candidate i from its item embedding e_i and the user state u ``[B, D]`` (``history_encoder``):
    ``user_interaction: add`` gives e_i + u, ``product`` gives e_i ⊙ u (SASRec's u·e_i is its sum, which
    the head adds to its MLP); ``token_norm`` layer-normalises e_i and u first (the DNR group's PV).
    Then + the position embedding of the retriever's order (``position_embedding``; default the
    backbone's ``uses_position``) (+ x when ``score_fusion: early``). ``list_context: False`` skips
    ``encode_list`` (each candidate scored alone: an ablation). ``embedding_init_std``: N(0, std)
    embeddings (RecBole's models use 0.02; ~ keeps torch's N(0, 1)). ``side_features``: the loaded
    ``.item`` fields join e_i (candidates and history alike) and the ``.user`` fields join u
    (``model/features.py``).
    """

    uses_position = True
    options = {
        "hidden_size": integer("model dimension", 1),
        "inner_size": integer("feed-forward dimension", 1),
        "n_layers": integer("encoder layers", 1),
        "n_heads": integer("attention heads", 1),
        "dropout_prob": number("dropout probability in [0, 1)", 0, 1, open_hi=True),
        "attn_dropout_prob": number("attention dropout probability in [0, 1)", 0, 1, open_hi=True),
        "history_encoder": choice(*HISTORY_ENCODERS),
        "history_feedback": flag("history tokens carry each earlier item's feedback"),
        "history_layers": integer("layers of the transformer history encoder", 1),
        "user_interaction": choice("add", "product"),
        "token_norm": flag("LayerNorm the item embedding and the user state before they meet"),
        "embedding_init_std": number("std of the N(0, std) embedding init, > 0 (~ = torch's N(0, 1))", 0,
                                     open_lo=True),
        "list_context": flag("run the backbone's list encoder (False: each candidate alone)"),
        "side_features": flag("embed the loaded .item/.user fields into e_i and u"),
        "position_embedding": flag("add the retriever-order position embedding (~ = backbone's choice)"),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["hidden_size"]
        self.hidden_size = self.h_dim = d
        self.n_candidates = config["candidate_num"]
        given = config["position_embedding"]
        self.uses_position = self.uses_position if given is None else given
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)
        self.position_embedding = nn.Embedding(self.n_candidates, d) if self.uses_position else None
        self.item_features = self.user_features = None
        if config["side_features"]:
            self.item_features, self.user_features = side_features(dataset, config, d)
        # the history reader embeds its items as the candidates are embedded
        vectors = self.item_embedding if self.item_features is None else ItemVectors(self.item_embedding,
                                                                                      self.item_features)
        self.history_encoder = make_history_encoder(config, vectors, d)
        self.score_feature = ScoreFeature(d, config["score_fusion"])
        self.dropout = make_dropout(config["dropout_prob"], config["fast_path"])
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
        self.interaction = config["user_interaction"]
        self.list_context = config["list_context"]
        self.token_norm = nn.ModuleList([nn.LayerNorm(d), nn.LayerNorm(d)]) if config["token_norm"] else None
        std = config["embedding_init_std"]
        if std is not None:
            for module in self.modules():
                if isinstance(module, nn.Embedding):
                    nn.init.normal_(module.weight, 0.0, std)
                    if module.padding_idx is not None:
                        with torch.no_grad():
                            module.weight[module.padding_idx].zero_()

    def item_vectors(self, ids):
        """ids ``[...] -> [..., D]``: the item embedding (+ its side features with ``side_features``)."""
        e = self.item_embedding(ids)
        return e if self.item_features is None else e + self.item_features(ids)

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        load_col = cfg.get("load_col") or {}
        if cfg.get("side_features") and not (isinstance(load_col, dict) and ({"item", "user"} & set(load_col))):
            raise UserInputError(
                "side_features: True needs the .item/.user fields to embed in load_col, e.g. load_col: {inter: "
                "[user_id, item_id, rating, timestamp], item: [item_id, release_year, class], user: [user_id, age, "
                "gender, occupation]}; the shipped variants features-ml-100k and features-ml-1m-u1to2999 set it "
                "(--config_files=features-ml-100k)")

    def encode_list(self, tokens):
        """Backbone-specific list encoder: ``[B, n, D] -> [B, n, D]``."""
        raise NotImplementedError

    def user_state(self, interaction):
        """u ``[B, D]`` from the request's history (+ the user's side features)."""
        u = self.history_encoder(interaction[HISTORY_ITEM], interaction[HISTORY_LABEL])
        return u if self.user_features is None else u + self.user_features(interaction[self.USER_ID])

    def encode(self, interaction, x):
        """h ``[B, n, D]``; x ``[B, n]`` is used here only with early fusion."""
        tokens = self.candidate_tokens(interaction, x)
        return self.encode_list(tokens) if self.list_context else tokens

    def candidate_tokens(self, interaction, x):
        """Candidate tokens ``[B, n, D]`` (item, user state, position, x when early), after dropout."""
        items = interaction[self.ITEM_ID]
        e, u = self.item_vectors(items), self.user_state(interaction).unsqueeze(1)
        if self.token_norm is not None:
            e, u = self.token_norm[0](e), self.token_norm[1](u)
        tokens = e + u if self.interaction == "add" else e * u
        if self.uses_position:
            tokens = tokens + self.position_embedding(torch.arange(items.shape[1], device=items.device))
        return self.dropout(self.score_feature.early(tokens, x))

    def score_head(self, h, x):
        """Logits ``[B, n]`` from h ``[B, n, D]``; x ``[B, n]`` is used here only with late fusion."""
        h = self.score_feature.late(h, x)
        logits = self.head(h).squeeze(-1)
        return logits + h.sum(-1) if self.interaction == "product" else logits
