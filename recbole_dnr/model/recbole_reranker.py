"""RecBole's own recommenders as list rerankers.

``python run_recbole_dnr.py --model=SASRec --dataset=ml-100k --list_mode=slate`` (any list key
given by the user, e.g. ``list_mode``, turns a RecBole model into a reranker of our lists), or
``model: RecBoleReranker`` + ``recbole_model: SASRec`` in a config file; ``DNR_SASRec`` wraps it in
DNR like any backbone. Without list keys ``--model=SASRec`` is RecBole's own pipeline.

RecBole's class, built from its own yaml defaults, does the encoding: the request's history
(the same history our lists carry, liked and disliked items alike, as RecBole's sequences) is
given as RecBole's right-padded ``item_id_list [B, L]`` + ``item_length [B]`` (the last
``L = min(MAX_ITEM_LIST_LENGTH, max_history)`` items) and ``user_id [B]``, and each candidate is
scored as RecBole scores an item. General models (BPR, NeuMF, LightGCN, ...) score from the user
id; graph models see the training period's user-item graph only (``RequestSet.inter_matrix``).
Context-aware models (DeepFM, DCN, xDeepFM, WideDeep, AutoInt, ...: CoRR's rankers) embed the two
fields a candidate carries, user id and item id (``RequestSet.fields``), and are scored by their
logit: ``forward`` where their own loss is ``BCEWithLogitsLoss`` (``predict`` is its sigmoid), the
logit of ``forward`` where it is ``BCELoss`` (DCNV2, KD_DAGFM: ``forward`` is already a probability).
Feature models (SASRecF, GRU4RecF, FDSA, DIN) read the .item/.user tables ``load_col`` loaded
(``RequestSet.get_item_feature``, one row per id) for the history's items (and DIN's candidates).
"""

import torch
from recbole.model.abstract_recommender import AbstractRecommender, ContextRecommender

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM
from recbole_dnr.model.abstract_reranker import ListBackbone, ScoreFeature
from recbole_dnr.recbole_models import (
    REPRESENTATION_MODELS,
    find_recbole_class,
    forward_args,
    history_window,
    recbole_class,
    recbole_sequence,
)
from recbole_dnr.registry import register_model, register_resolver

# Models whose full_sort_predict is a probability over all items (their own loss is the NLL of its log):
# scored by log p, the logit L_direct and late fusion act on. The CPR models' full_sort_predict also
# computes their loss from the target item, which a list has not: their probability is asked for alone.
LOG_PROBABILITY_MODELS = ("RepeatNet", "GRU4RecCPR", "SASRecCPR")

# Models whose full_sort_predict is exactly forward(...) @ item_embedding.weight.T (checked for
# each in tests/model/test_recbole_reranker.py). They are scored from the sequence representation u [B, D]
# and the candidates' embeddings, which also lets x enter early (added to the candidate
# embedding). Every other model is scored by gathering its own full_sort_predict (or predict).


class RecBoleReranker(ListBackbone):
    """Scores each request's candidates ``[B, n]`` with a RecBole recommender (``recbole_model``).

    Representation models (``REPRESENTATION_MODELS``): h_i = u ⊙ e_i ``[B, n, D]`` and the head
    sums over D, so with ``score_fusion: none`` the logit is RecBole's own score u·e_i; ``early``
    adds the x embedding to e_i (u·(e_i + g(x_i))), ``late`` adds it to h_i (u·e_i + Σ g(x_i)).
    Other models: h = RecBole's score ``[B, n, 1]``; ``late`` adds g(x) ``[B, n, 1]``; ``early`` is
    refused (the score is all we see). Trained on the lists with L_direct like every backbone.
    """

    recbole_model = None  # set on the per-model classes made by recbole_reranker_class
    recbole_pretrainable = True  # recbole_pretrain: True trains its RecBole model first (trainer/recbole_pretrain.py)
    user_facing = False  # users name the RecBole model (--model=SASRec --list_mode=slate), not this adapter

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        name = self.recbole_model or config["recbole_model"]
        model_class = recbole_class(name)
        self.window = history_window(config)
        try:
            self.model = model_class(config, dataset)
        except (AttributeError, KeyError, TypeError, ValueError, NotImplementedError) as e:
            raise UserInputError(
                f"RecBole's {name} cannot be built as a reranker ({type(e).__name__}: {e}). It needs more than "
                f"user ids, item ids, item sequences, the training graph and the item/user features of load_col "
                f"(e.g. a knowledge graph); "
                f"use a sequential model such as {', '.join(REPRESENTATION_MODELS[:4])}, a context-aware one such "
                f"as DeepFM or DCN, or BPR.") from e
        if hasattr(self.model, "NEG_ITEM_SEQ"):  # DIEN: its predict reads the negatives its auxiliary loss sampled
            raise UserInputError(
                f"RecBole's {name} cannot be built as a reranker: it reads a sequence of sampled negative items "
                f"({self.model.NEG_ITEM_SEQ}) even when it predicts, which a request does not carry; use DIN, "
                f"SASRecF or another sequential model")
        self.ITEM_SEQ = self.ITEM_ID + config["LIST_SUFFIX"]
        self.ITEM_SEQ_LEN = config["ITEM_LIST_LENGTH_FIELD"]
        fusion = config["score_fusion"]
        self.representation = name in REPRESENTATION_MODELS
        if self.representation:
            self._forward_args = forward_args(self.model)
            d = self.h_dim = self.model.item_embedding.embedding_dim
            self.score_feature = ScoreFeature(d, fusion)
        else:
            if fusion == "early":
                raise UserInputError(
                    f"score_fusion: early needs the candidate embeddings the model scores against; RecBole's "
                    f"{name} is scored through its own predict, so use score_fusion: late or none "
                    f"(early works for {', '.join(REPRESENTATION_MODELS)}).")
            self.h_dim = 1
            self.score_feature = ScoreFeature(1, fusion, width=config["hidden_size"])
            overridden = type(self.model).full_sort_predict is not AbstractRecommender.full_sort_predict
            self._full_sort = overridden
            # CTR models output a click probability; L_direct and late fusion act on logits
            self._context = isinstance(self.model, ContextRecommender)
            own_loss = getattr(self.model, "loss", None) or getattr(self.model, "loss_fn", None)
            self._probability_forward = isinstance(own_loss, torch.nn.BCELoss)
            self._log_probability = name in LOG_PROBABILITY_MODELS
        if name == "Pop":  # Pop counts items in its calculate_loss, which a reranker never calls
            counts = torch.as_tensor(dataset.inter_matrix("csr").sum(axis=0), dtype=torch.float32,
                                     device=config["device"]).view(-1, 1)  # a plain attribute: .to() skips it
            self.model.item_cnt, self.model.max_cnt = counts, counts.max(dim=0)[0]
        # what RecBole's models cache between calls (other_parameter_name, still None: LightGCN's and
        # NGCF's restore_user_e / restore_item_e, DMF's i_embedding) is cleared by their own
        # calculate_loss, which a reranker never calls: see _clear_caches
        self._caches = [n for n in getattr(self.model, "other_parameter_name", None) or []
                        if getattr(self.model, n, 0) is None]

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        # RecBole's feature-rich sequential models (SASRecF, GRU4RecF, FDSA) embed the item fields their
        # yaml's selected_features names, read from the loaded .item file (load_col None loads every field)
        selected, load_col = cfg.get("selected_features") or [], cfg.get("load_col")
        loaded = (load_col.get("item") or []) if isinstance(load_col, dict) else None
        missing = [f for f in selected if loaded is not None and f not in loaded]
        if missing:
            name = cls.recbole_model or cfg.get("recbole_model")
            raise UserInputError(
                f"RecBole's {name} cannot be built as a reranker without its item features: it embeds "
                f"selected_features: {list(selected)}, and load_col loads no .item field {missing}. Name them in "
                f"load_col, e.g. load_col: {{inter: [user_id, item_id, rating, timestamp], item: [item_id, "
                f"release_year, class]}}, or use the shipped variant experiments/variants/features-ml-100k.yaml "
                f"(--config_files=features-ml-100k)")

    def _clear_caches(self):
        for name in self._caches:
            setattr(self.model, name, None)

    def train(self, mode=True):
        """Also drops the inner model's cached embeddings: a switch of mode follows training steps or a
        checkpoint load (the best epoch's weights), and the cache holds embeddings of earlier weights."""
        if hasattr(self, "_caches"):  # nn.Module.__init__ has not run our __init__ yet
            self._clear_caches()
        return super().train(mode)

    def recbole_interaction(self, interaction):
        """RecBole's input fields for the requests: sequence ``[B, L]``, its length ``[B]``, user ``[B]``."""
        seq, length = recbole_sequence(interaction[HISTORY_ITEM], self.window)
        return {self.ITEM_SEQ: seq, self.ITEM_SEQ_LEN: length, self.USER_ID: interaction[self.USER_ID]}

    def _recbole_scores(self, inter, items):
        """RecBole's score of every candidate ``[B, n]``, through the model's own prediction."""
        if self.training:  # each step's embeddings come from this step's weights (and graph)
            self._clear_caches()
        if self._log_probability:
            if hasattr(self.model, "calculate_loss_prob"):  # the CPR models
                p = self.model.calculate_loss_prob(inter, only_compute_prob=True)[1]
                if self.model.post_remove_context:
                    p = p.scatter(1, inter[self.ITEM_SEQ], 0)
            else:
                p = self.model.full_sort_predict(inter)
            return torch.log(p.view(items.shape[0], -1).gather(1, items) + 1e-8)  # 1e-8: as their own loss
        if self._full_sort:
            return self.model.full_sort_predict(inter).view(items.shape[0], -1).gather(1, items)
        n = items.shape[1]
        flat = {k: v.repeat_interleave(n, dim=0) for k, v in inter.items()}
        flat[self.ITEM_ID] = items.reshape(-1)
        if not self._context:
            return self.model.predict(flat).view(items.shape)
        out = self.model(flat)
        return (torch.logit(out, eps=1e-6) if self._probability_forward else out).view(items.shape)

    def encode(self, interaction, x):
        """h ``[B, n, D]`` (u ⊙ e_i) for representation models, else RecBole's score ``[B, n, 1]``."""
        items = interaction[self.ITEM_ID]
        inter = self.recbole_interaction(interaction)
        if not self.representation:
            return self._recbole_scores(inter, items).unsqueeze(-1)
        args = {"seq": inter[self.ITEM_SEQ], "len": inter[self.ITEM_SEQ_LEN], "user": inter[self.USER_ID]}
        u = self.model(*[args[a] for a in self._forward_args])
        e = self.score_feature.early(self.model.item_embedding(items), x)
        return u.unsqueeze(1) * e

    def score_head(self, h, x):
        return self.score_feature.late(h, x).sum(-1)


register_model(RecBoleReranker)

_CLASSES = {}


def recbole_reranker_class(name):
    """The reranker class for RecBole model ``name``: named ``name`` (so logs, checkpoints and
    result tables say ``SASRec``), cached so pickled checkpoints resolve it (module ``__getattr__``)."""
    if name not in _CLASSES:
        recbole_class(name)  # fails with the list of names if RecBole has no such model
        _CLASSES[name] = type(name, (RecBoleReranker,), {"recbole_model": name, "__module__": __name__})
    return _CLASSES[name]


def __getattr__(name):
    """Resolve the per-model classes by name, so pickled checkpoints load back."""
    try:
        return recbole_reranker_class(name)
    except UserInputError:
        raise AttributeError(name) from None


def _resolve_backbone(name):
    """A RecBole model name as a reranker backbone (the registry asks for names it does not hold)."""
    return recbole_reranker_class(name) if find_recbole_class(name) is not None else None


register_resolver("backbone", _resolve_backbone)
