"""CoRR: Cooperative Retriever and Ranker (Huang, Lian, Chen, Liu, Xie, Chen; WWW 2023).

The retriever (MF, s_re(u, i) = <p_u, q_i>, or a RecBole sequential model, s_re(r, i) = <q_r, e_i>
from request r's history) and the ranker (any registered backbone, or DNR_X)
train together on each training request's label-window positives:

- the ranker's negatives are drawn from the retriever, q(i | u) ∝ exp(s_re(u, i)) over the items
  the user has not rated (fault 1 of the paper: train the ranker on the items it will see);
- both minimise a sampled softmax with the logQ correction s̃ = s - log q (q detached);
- the retriever also minimises KL(p_ranker ‖ p_retriever) over the sampled negatives, a
  self-normalised importance-sampling estimate of the full-catalogue KL (faults 2 and 3: soft
  labels from the ranker instead of hard zeros, and the ranker's order imposed on the retriever).

The ranker is list-wise, so each request's sample is presented as a list of ``candidate_num``
candidates (its positives, then negatives) in the retriever's order with x = the retriever's
scores normalised per list, the same shape and feature as at inference. At evaluation the
retriever retrieves every request's top-n anew and the ranker reranks them (CoRRTrainer).
Symbols and where this follows the authors' code: docs/method.md.
"""

import torch
from recbole.data.interaction import Interaction

from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, LABEL, REQUEST_ID, SCORE, SLATE_MASK
from recbole_dnr.model.abstract_reranker import ListRecommender
from recbole_dnr.options import choice, integer, number
from recbole_dnr.registry import get_backbone, get_model, register_model
from recbole_dnr.retrieval import (
    MFRetriever,
    SequentialRetriever,
    distillation_kl,
    get_sampler,
    sampled_softmax_loss,
)
from recbole_dnr.retrieval.sampler import SAMPLERS, exclusion_mask
from recbole_dnr.retrieval.spec import is_sequential, retriever_class

WINDOW_POSITIVE, PRIOR_LO, PRIOR_HI = "window_positive", "prior_lo", "prior_hi"
MODES = ("joint", "alternating")


def ranker_class(name):
    """A registered backbone, ``DNR_<Backbone>``, or a RecBole model as a reranker."""
    if not name:
        raise UserInputError("CoRR needs a ranker: set ranker: <Backbone> (e.g. PRM, DLCM, SASRec, DNR_PRM)")
    if name.startswith("DNR_"):
        return get_model(name)
    if name in ("CoRR", "Retriever"):
        raise UserInputError(f"ranker: {name} cannot rank under CoRR; use a backbone (PRM, DLCM, SASRec, DNR_PRM, ...)")
    return get_backbone(name, role="ranker")


def corr_retriever_class(config):
    """The RecBole class of CoRR's trainable retriever: BPR (MF) or a sequential model; checked
    by Config before any data is read."""
    from recbole.model.general_recommender import BPR

    name = config["retriever_model"] or "BPR"
    model_class = retriever_class(name)
    if is_sequential(model_class):
        if config["corr_retriever_init"] == "pretrained":
            raise UserInputError(f"corr_retriever_init: pretrained copies the list retriever's user and item vectors "
                                 f"into CoRR's MF retriever; a sequential retriever ({name}) has per-request queries "
                                 "instead. Use corr_retriever_init: scratch")
        return model_class
    if model_class is not BPR:
        raise UserInputError(f"CoRR trains an MF (BPR) or a sequential retriever jointly with the ranker; "
                             f"retriever_model {name} is neither: use BPR, or SASRec / GRU4Rec / NARM ...")
    return model_class


@register_model
class CoRR(ListRecommender):
    """``model: CoRR`` + ``ranker: <Backbone | DNR_Backbone | RecBole model>``; settings in
    ``properties/model/CoRR.yaml``. ``predict`` is the ranker's, so inference costs the ranker's
    (plus one retrieval per request, done by the trainer)."""

    trainer_name = "CoRRTrainer"
    options = {
        "corr_mode": choice(*MODES),
        "corr_alternate_epochs": integer("alternating: epochs of each stage", 1),
        "corr_sampler": choice(*SAMPLERS),
        "corr_sampler_temperature": number("T of q ∝ exp(s_re / T), > 0", 0, open_lo=True),
        "corr_kd_weight": number("lambda_KD, >= 0", 0),
        "corr_retriever_weight": number("w_re, >= 0", 0),
        "corr_ranker_loss": choice("softmax", "own"),
        "corr_retriever_init": choice("scratch", "pretrained"),
        "corr_retriever_learning_rate": number("the retriever's step size, > 0", 0, open_lo=True),
    }

    @classmethod
    def prepare_for_serving(cls, config):
        config["corr_retriever_init"] = "scratch"  # the weights come from the checkpoint: nothing to fit

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        corr_retriever_class(cfg)  # its trainable retriever, before any data is read

    @classmethod
    def defaults_class(cls, given):
        """The ranker's defaults first (its backbone yamls, DNR's), then CoRR.yaml."""
        return ranker_class(given.get("ranker") or "PRM")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if config["list_mode"] != "retrieve":
            raise UserInputError("CoRR trains the retriever that builds the lists, so it needs list_mode: retrieve "
                                 f"(got {config['list_mode']})")
        if config["probe_sigmas"] or config["probe_weak_retriever"]:
            raise UserInputError("the robustness probes corrupt the stored lists' x, but CoRR retrieves its lists anew "
                                 "at every evaluation: unset probe_sigmas and probe_weak_retriever for CoRR")
        self.ranker = ranker_class(config["ranker"])(config, dataset)
        self.is_dnr = hasattr(self.ranker, "backbone")
        if self.is_dnr and config["corr_ranker_loss"] != "own":
            raise UserInputError(f"ranker {config['ranker']} trains by DNR's own loss (L_direct + λ_m L_z): set "
                                 "corr_ranker_loss: own")
        lists = getattr(dataset, "parent", dataset)  # the ListDataset behind a split
        self.retriever = self._build_retriever(config, dataset, lists)
        self.sampler = get_sampler(config)
        self.n = config["candidate_num"]
        self.kd_weight = config["corr_kd_weight"]
        self.retriever_weight = config["corr_retriever_weight"]
        self.score_norm = config["score_norm"]
        self.log_items = lists.sorted_log_items()
        self.corr_phase = "joint"  # joint | ranker | retriever (set by the trainer in alternating mode)

    def _build_retriever(self, config, dataset, lists):
        """BPR-MF (default) or a RecBole sequential model (``retriever_model: SASRec``, ...)."""
        model_class = corr_retriever_class(config)
        if is_sequential(model_class):
            starts, _, req_users = lists.request_layout()
            return SequentialRetriever(config, lists, lists.log_arrays(), (starts, req_users), model_class)
        init = dataset.lists.retriever_embeddings() if config["corr_retriever_init"] == "pretrained" else None
        return MFRetriever(dataset.user_num, self.n_items, config["retriever_embedding_size"], init,
                           user_field=self.USER_ID)

    def theta_parameters(self):
        return list(self.ranker.theta_parameters()) + list(self.retriever.parameters())

    def ranker_logits(self, interaction):
        """The ranker's logits ``[B, n]`` on the lists' real x (DNR: its backbone's)."""
        return (self.ranker.backbone if self.is_dnr else self.ranker)(interaction)

    def sample_lists(self, batch, s_all):
        """Each request's list: its window positives first, then negatives drawn from the sampler
        over the items the user has not rated, re-ordered by s_re (the retriever's order, as at
        inference). Returns the ranker's ``Interaction`` and ``(s_re, log_q, pos, neg) [B, n]``."""
        pos = batch[WINDOW_POSITIVE]  # [B, W], 0 = none
        pos = pos.gather(1, torch.argsort((pos == 0).to(torch.int8), dim=1, stable=True))  # positives first
        n_pos = (pos > 0).sum(1, keepdim=True)
        allowed = exclusion_mask(self.n_items, batch[PRIOR_LO], batch[PRIOR_HI], self.log_items)
        neg, _, log_q_all = self.sampler.sample(s_all.detach(), allowed, self.n)
        slot = torch.arange(self.n).unsqueeze(0)
        is_pos = slot < n_pos
        cand = torch.where(is_pos, pos.gather(1, slot.clamp(max=pos.shape[1] - 1).expand_as(neg)),
                           neg.gather(1, (slot - n_pos).clamp(min=0)))
        hit = ~is_pos & (cand.unsqueeze(2) == pos.unsqueeze(1)).any(2) & (cand > 0)  # a window positive drawn
        s_re = s_all.gather(1, cand)
        order = torch.argsort(s_re.detach(), dim=1, descending=True, stable=True)
        cand, s_re, is_pos, hit = (t.gather(1, order) for t in (cand, s_re, is_pos, hit))
        log_q = log_q_all.gather(1, cand)
        x = s_re.detach()
        if self.score_norm == "sigmoid":
            x = torch.sigmoid(x)
        else:
            lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
            x = (x - lo) / (hi - lo).clamp(min=1e-12)
        label = (is_pos | hit).float()
        fields = {self.USER_ID: batch[self.USER_ID], self.ITEM_ID: cand, SCORE: x, LABEL: label,
                  SLATE_MASK: is_pos | hit}
        for key in (HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, REQUEST_ID):
            fields[key] = batch[key]
        return Interaction(fields), (s_re, log_q, is_pos, ~is_pos & ~hit)

    def calculate_loss(self, batch):
        """(ℓ_ranker, w_re ℓ_retriever, λ_KD KL) on one batch of training requests; in the
        alternating phases the other side's terms are absent and its forward runs without grad."""
        train_retriever = self.corr_phase in ("joint", "retriever")
        train_ranker = self.corr_phase in ("joint", "ranker")
        with torch.set_grad_enabled(train_retriever):
            s_all = self.retriever.all_scores(batch)
        inter, (s_re, log_q, pos, neg) = self.sample_lists(batch, s_all)
        own_loss = train_ranker and self.config["corr_ranker_loss"] == "own"
        # under its own loss the ranker trains through calculate_loss; s_ra then only teaches the
        # retriever (detached in the KL), so it needs no graph. The forward still runs: dropout
        # draws the same random numbers whichever loss is set
        with torch.set_grad_enabled(train_ranker and not own_loss):
            s_ra = self.ranker_logits(inter)
        if own_loss:
            own = self.ranker.calculate_loss(inter)
            l_ra = sum(own) if isinstance(own, tuple) else own
        else:
            with torch.set_grad_enabled(train_ranker):
                l_ra = sampled_softmax_loss(s_ra, log_q, pos, neg)
        self.last_lists = inter  # the ranker's lists of this step (a DNR ranker's φ step reuses them)
        terms = []
        if train_ranker:
            terms.append(l_ra)
        if train_retriever:
            terms.append(self.retriever_weight * sampled_softmax_loss(s_re, log_q, pos, neg))
            terms.append(self.kd_weight * distillation_kl(s_ra, s_re, log_q, neg))
        return tuple(terms)

    def predict(self, interaction):
        return self.ranker.predict(interaction)

