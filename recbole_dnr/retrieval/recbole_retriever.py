"""A RecBole model as the retriever (``retriever_model``: BPR by default, LightGCN, NGCF, ...,
or a sequential one through :mod:`~recbole_dnr.retrieval.sequential`), trained with RecBole's own
Trainer on the training period; it hands back the vectors whose inner products are its scores.

The retriever's score of (user, item) is an inner product ``<p_u, q_i>`` of the model's user and
item vectors (BPR's embeddings; a graph model's propagated ones, read from its ``forward()``).
Scoring and top-k search over those vectors: :mod:`~recbole_dnr.retrieval.topk` (exact) and
:mod:`~recbole_dnr.retrieval.ann` (approximate).
"""

import logging

import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader
from recbole.data.interaction import Interaction
from recbole.model.general_recommender import BPR
from recbole.sampler import Sampler
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_dnr.errors import UserInputError
from recbole_dnr.retrieval.sequential import train_sequential
# LATER_KEYS, RETRIEVER_KEYS and queries: also read from here by the list dataset and the probes
from recbole_dnr.retrieval.spec import LATER_KEYS, RETRIEVER_KEYS, is_sequential, queries  # noqa: F401
from recbole_dnr.retrieval.spec import retriever_class, retriever_config


class PairDataLoader(AbstractDataLoader):
    """BPR triples (user, item, negative item) over the log rows a retriever may see.

    Rows come as index arrays of the sorted log (no dataset copy, no per-user Python sets);
    negatives are uniform over the items 1..n-1 the user has not rated among those rows, as
    RecBole's uniform ``Sampler`` draws them, but drawn for a whole batch at once: rejected
    draws (rated items) are redrawn until none is left.
    """

    def __init__(self, config, dataset, users, items, shuffle=True):
        self._pairs = (torch.as_tensor(users, dtype=torch.long), torch.as_tensor(items, dtype=torch.long))
        self._n_items = dataset.item_num
        self._rated = torch.unique(self._pairs[0] * self._n_items + self._pairs[1])  # sorted codes
        full = torch.bincount(self._rated // self._n_items) >= self._n_items - 1
        if bool(full.any()):  # no negative to draw: the redraw loop would never end
            raise UserInputError(f"user(s) {torch.nonzero(full).flatten()[:5].tolist()} rated every item, so BPR "
                                 "has no negative for them: relax user_inter_num_interval or add items")
        self._fields = (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["NEG_PREFIX"] + config["ITEM_ID_FIELD"])
        super().__init__(config, dataset, sampler=None, shuffle=shuffle)

    def _init_batch_size_and_step(self):
        self.step = self.config["train_batch_size"]
        self.set_batch_size(self.step)

    @property
    def sample_size(self):
        return len(self._pairs[0])

    def negatives(self, users):
        """One unrated item per user of ``users [B]``, uniform over the catalogue's unrated items."""
        neg = torch.randint(1, self._n_items, users.shape, generator=self.generator)
        todo = torch.arange(len(users))
        while len(todo):
            codes = users[todo] * self._n_items + neg[todo]
            pos = torch.searchsorted(self._rated, codes).clamp(max=len(self._rated) - 1)
            todo = todo[self._rated[pos] == codes]
            neg[todo] = torch.randint(1, self._n_items, todo.shape, generator=self.generator)
        return neg

    def __iter__(self):
        n = self.sample_size
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        users, items = self._pairs
        for lo in range(0, n, self.step):
            idx = order[lo: lo + self.step]
            u = users[idx]
            yield Interaction(dict(zip(self._fields, (u, items[idx], self.negatives(u)))))


class RetrieverTrainer(Trainer):
    """RecBole's Trainer; Adam runs as one fused kernel per tensor with ``retriever_loader: fast``."""

    def _build_optimizer(self, **kwargs):
        optimizer = super()._build_optimizer(**kwargs)
        if self.config["retriever_loader"] == "fast" and type(optimizer) is torch.optim.Adam:
            group = optimizer.param_groups[0]
            optimizer = torch.optim.Adam(group["params"], lr=group["lr"], weight_decay=group["weight_decay"],
                                         fused=True)
        return optimizer


def train_retriever(config, dataset, log, requests, rows, seed):
    """Train the retriever (``retriever_model``, BPR-MF by default), seeded with ``seed``, on the
    interaction rows ``rows`` (original row ids) of ``dataset`` (RecBole's: the model is built on
    it); ``log`` is its (user, time)-sorted log and ``requests`` ``(starts, users)`` the requests a
    sequential retriever returns a query for.

    ``retriever_loader: fast`` feeds RecBole's Trainer from index arrays (:class:`PairDataLoader`);
    ``recbole`` (the lists of before) copies the rows into a dataset and uses RecBole's sampler
    and ``TrainDataLoader``. A model other than BPR is built on a copy holding only ``rows``, so a
    graph model's graph is the training period's. Returns ``(user_vectors [n_users, d],
    item_vectors [n_items, d])`` on CPU.
    """
    logger = logging.getLogger()
    model_class = retriever_class(config["retriever_model"] or "BPR")
    rconf = retriever_config(config, model_class)
    rconf["seed"] = seed
    init_seed(rconf["seed"], rconf["reproducibility"])
    if is_sequential(model_class):
        return train_sequential(rconf, dataset, log, requests, model_class, rows, RetrieverTrainer,
                                config["show_progress"])
    rows_t = torch.as_tensor(rows, dtype=torch.long)
    if rconf["retriever_loader"] == "fast":
        f = dataset.inter_feat
        users, items = f[dataset.uid_field][rows_t], f[dataset.iid_field][rows_t]
        train_ds = dataset if model_class is BPR else dataset.copy(dataset.inter_feat[rows_t])
        loader = PairDataLoader(rconf, dataset, users, items, shuffle=True)
    else:
        train_ds = dataset.copy(dataset.inter_feat[rows_t])
        sampler = Sampler(["train"], [train_ds], rconf["train_neg_sample_args"]["distribution"]).set_phase("train")
        loader = TrainDataLoader(rconf, train_ds, sampler, shuffle=True)
    model = model_class(rconf, train_ds).to(rconf["device"])
    logger.info(f"Retriever {model_class.__name__}: {len(rows)} training interactions, {rconf['epochs']} epochs, "
                f"d={rconf['embedding_size']}")
    trainer = RetrieverTrainer(rconf, model)
    trainer.fit(loader, None, verbose=False, saved=False, show_progress=config["show_progress"])
    trainer.tensorboard.close()  # flush now: its folder is relative to the current directory
    return two_tower_vectors(model)


@torch.no_grad()
def two_tower_vectors(model):
    """``(user_vectors, item_vectors)`` whose inner products are ``model``'s scores: BPR's
    embeddings, else the pair its ``forward()`` returns, checked against ``full_sort_predict``."""
    model.eval()
    if type(model) is BPR:
        return model.user_embedding.weight.detach().cpu(), model.item_embedding.weight.detach().cpu()
    out = model.forward()
    name = type(model).__name__
    if not (isinstance(out, tuple) and len(out) == 2 and out[0].dim() == 2 and out[1].dim() == 2
            and out[0].shape[0] == model.n_users and out[1].shape[0] == model.n_items):
        raise UserInputError(f"retriever_model {name}: its forward() does not return (user vectors, item vectors); "
                             "use a two-tower general model (BPR, LightGCN, NGCF, ...)")
    users = torch.arange(1, min(model.n_users, 9))
    full = model.full_sort_predict(Interaction({model.USER_ID: users})).view(len(users), -1).cpu()
    if not torch.allclose(full, out[0][users].cpu() @ out[1].cpu().T, rtol=1e-4, atol=1e-4):
        raise UserInputError(f"retriever_model {name}: its scores are not inner products of the vectors its "
                             "forward() returns; use a two-tower general model (BPR, LightGCN, NGCF, ...)")
    return out[0].detach().cpu(), out[1].detach().cpu()
