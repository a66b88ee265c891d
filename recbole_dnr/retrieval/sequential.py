"""A RecBole sequential model as the retriever (``retriever_model: SASRec``, GRU4Rec, NARM, ...).

Its query is the request's history, not the user: q_r = forward(last L items before the request)
``[d]`` and s_re(r, i) = <q_r, e_i>, which is the model's own ``full_sort_predict`` for
``REPRESENTATION_MODELS`` (checked after training). It is trained the RecBole way (RecBole's
Trainer, the model's own loss, e.g. SASRec's CE over all items) on next-item prediction over the
given log rows only: the targets are those rows, and the sequences are built from them alone, so a
cross-fitting fold's held-out slates are neither targets nor inputs. Vectors are returned per
request id: ``{"request": [R, d], "item": [n_items, d]}``.
"""

import logging

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_dnr import protocol
from recbole_dnr.errors import UserInputError
from recbole_dnr.fields import HISTORY_ITEM
from recbole_dnr.recbole_models import SequenceLoader, recbole_sequence, sequence_forward
from recbole_dnr.retrieval.spec import check_sequential, retriever_config


def train_sequential(rconf, dataset, log, requests, model_class, rows, trainer_class, show_progress=False):
    """Train ``model_class`` (built on RecBole's ``dataset``) on the original log rows ``rows`` of
    the sorted ``log``; query vectors of every request of ``requests`` ``(starts, users)``."""
    order, users, items, _, _ = log
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    sub = np.sort(inverse[np.asarray(rows)])  # positions in the (user, time)-sorted log
    s_users, s_items = users[sub], items[sub]
    targets = np.flatnonzero(np.arange(len(sub)) > protocol.user_bounds(s_users)[s_users])
    window = rconf["MAX_ITEM_LIST_LENGTH"]  # = max_history (retriever_config)
    hist, _, _ = protocol.history(s_items, np.zeros_like(s_items), s_users, targets, window)
    seq, length = recbole_sequence(torch.as_tensor(hist), window)
    model = model_class(rconf, dataset).to(rconf["device"])
    fields = {model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: length, model.USER_ID: torch.as_tensor(s_users[targets]),
              model.ITEM_ID: torch.as_tensor(s_items[targets])}
    logging.getLogger().info(f"Retriever {model_class.__name__}: {len(targets)} next-item targets of "
                             f"{len(rows)} training interactions, {rconf['epochs']} epochs, d={rconf['embedding_size']}")
    trainer = trainer_class(rconf, model)
    trainer.fit(SequenceLoader(fields, rconf["train_batch_size"], rconf["seed"]), None, verbose=False, saved=False,
                show_progress=show_progress)
    trainer.tensorboard.close()
    return request_vectors(model, log, requests, window)


@torch.no_grad()
def request_vectors(model, log, requests, window, batch=4096):
    """``{"request": q [R, d], "item": e [n_items, d]}`` for the requests ``(starts, users)`` of the
    sorted ``log`` (each query encodes the last ``window`` items before the request)."""
    model.eval()
    _, users, items, _, _ = log
    starts, req_users = requests
    hist, _, _ = protocol.history(items, np.zeros_like(items), users, starts, window)
    seq, length = recbole_sequence(torch.as_tensor(hist), window)
    u = torch.as_tensor(req_users)
    q = torch.cat([sequence_forward(model, seq[i:i + batch], length[i:i + batch], u[i:i + batch]).cpu()
                   for i in range(0, len(starts), batch)]) if len(starts) else torch.zeros(0, 1)
    e = model.item_embedding.weight.detach().cpu()
    k = min(8, len(starts))
    check = model.full_sort_predict(Interaction({model.ITEM_SEQ: seq[:k], model.ITEM_SEQ_LEN: length[:k],
                                                 model.USER_ID: u[:k]})).view(k, -1).cpu()
    if not torch.allclose(check, q[:k] @ e.T, rtol=1e-4, atol=1e-4):
        raise UserInputError(f"retriever_model {type(model).__name__}: its scores are not <sequence vector, item "
                             "vector>; use SASRec, GRU4Rec, NARM, ...")
    return {"request": q, "item": e}


class SequentialRetriever(torch.nn.Module):
    """A RecBole sequential model as CoRR's trainable retriever: s_re(r, i) = <q_r, e_i>, with
    q_r the model's encoding of request r's history (the last ``window`` items) ``[B, d]`` and
    e_i its item embeddings; trained by CoRR's losses instead of the model's own (the CoRR
    authors' SASRec retriever). Built on RecBole's ``dataset`` with the retriever's config
    (``retriever_embedding_size`` sets ``hidden_size``; the rest from RecBole's yaml); ``log`` and
    ``requests`` ``(starts, users)`` are what :meth:`embeddings` encodes."""

    def __init__(self, config, dataset, log, requests, model_class):
        super().__init__()
        check_sequential(model_class.__name__)
        rconf = retriever_config(config, model_class)
        self.model = model_class(rconf, dataset)
        self.window = rconf["MAX_ITEM_LIST_LENGTH"]
        self.user_field = config["USER_ID_FIELD"]
        self._log, self._requests = log, requests

    def all_scores(self, batch):
        """s_re of every item for the requests of ``batch`` (their history): ``[B, n_items]``."""
        seq, length = recbole_sequence(batch[HISTORY_ITEM], self.window)
        q = sequence_forward(self.model, seq, length, batch[self.user_field])
        return q @ self.model.item_embedding.weight.T

    def embeddings(self):
        """``{"request": q [R, d], "item": e [n_items, d]}`` of every request (what the list builder takes)."""
        was_training = self.model.training
        out = request_vectors(self.model, self._log, self._requests, self.window)
        self.model.train(was_training)
        return out
