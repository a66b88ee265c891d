"""The retriever as a model: matrix factorisation, s_re(u, i) = <p_u, q_i> (RecBole's BPR-MF
form, 128-d by default), trained jointly with the ranker under CoRR."""

import torch
import torch.nn as nn


class MFRetriever(nn.Module):
    """User and item vectors ``[n_users, d]``, ``[n_items, d]`` (item 0 = padding)."""

    def __init__(self, n_users, n_items, dim, init=None, user_field="user_id"):
        super().__init__()
        self.user_field = user_field
        self.user_embedding = nn.Embedding(n_users, dim)
        self.item_embedding = nn.Embedding(n_items, dim)
        if init is not None:  # (user_emb, item_emb) of a trained retriever
            with torch.no_grad():
                self.user_embedding.weight.copy_(init[0])
                self.item_embedding.weight.copy_(init[1])
        else:  # RecBole's BPR initialisation
            nn.init.xavier_normal_(self.user_embedding.weight)
            nn.init.xavier_normal_(self.item_embedding.weight)

    def all_scores(self, batch):
        """s_re of every item for the users of ``batch`` (``[B]`` under ``user_field``): ``[B, n_items]``."""
        return self.user_embedding(batch[self.user_field]) @ self.item_embedding.weight.T

    def embeddings(self):
        """``(user_emb, item_emb)`` detached on CPU, what the list builder takes."""
        return self.user_embedding.weight.detach().cpu(), self.item_embedding.weight.detach().cpu()
