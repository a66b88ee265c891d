"""CoRR's losses over a list of sampled candidates, with the logQ correction s̃ = s - log q
(q detached): the sampled softmax (each positive against the negatives) and the distillation
KL(p_ranker ‖ p_retriever) over the negatives, a self-normalised importance-sampling estimate of
the full-catalogue KL (it converges to it as the sample grows: tests/model/test_corr.py)."""

import torch
import torch.nn.functional as F


def _corrected(scores, log_q, mask):
    return (scores - log_q.detach()).masked_fill(~mask, float("-inf"))


def sampled_softmax_loss(scores, log_q, pos_mask, neg_mask):
    """Mean over positives of -log softmax_{{j} ∪ N}(s̃)_j, i.e. softplus(logsumexp_N s̃ - s̃_j).

    scores, log_q ``[B, n]``; pos_mask (positive slots), neg_mask (negative slots, accidental hits
    removed) ``[B, n]`` bool. Rows without a positive or a negative add nothing."""
    lse_neg = torch.logsumexp(_corrected(scores, log_q, neg_mask), dim=1, keepdim=True)  # [B, 1]
    s_pos = scores - log_q.detach()
    per = F.softplus(lse_neg - s_pos)
    ok = pos_mask & neg_mask.any(1, keepdim=True)
    return (per * ok).sum() / ok.sum().clamp(min=1)


def distillation_kl(teacher, student, log_q, neg_mask):
    """KL(p_t ‖ p_s) over the negatives, p = softmax(s - log q); the teacher is detached, so the
    gradient reaches the student (the retriever) only. Mean over rows with a negative. ``[B, n] -> []``"""
    # masked slots hold -inf; zero them before the product, or -inf - -inf = nan reaches autograd
    log_pt = torch.log_softmax(_corrected(teacher.detach(), log_q, neg_mask), dim=1).masked_fill(~neg_mask, 0.0)
    log_ps = torch.log_softmax(_corrected(student, log_q, neg_mask), dim=1).masked_fill(~neg_mask, 0.0)
    terms = log_pt.exp() * (log_pt - log_ps) * neg_mask
    rows = neg_mask.any(1)
    return terms.sum(1)[rows].sum() / rows.sum().clamp(min=1)
