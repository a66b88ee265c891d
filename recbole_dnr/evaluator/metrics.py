"""List-wise metrics over each request's candidate list (definitions: docs/metrics.md).

All functions take ``scores [N, n]`` and binary ``labels [N, n]`` and return one value per list
``[N]`` plus a boolean ``[N]`` saying where the value is defined; the reported metric is the mean
over defined lists. Ranking ties are broken by the list's presented order (the retriever's order),
so a constant scorer reproduces the retriever.
"""

import math

import torch
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType


def ranked_relevance(scores, labels, k):
    """Labels of the top-``k`` candidates by score, ``[N, min(k, n)]`` (stable: ties keep list order)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return labels.gather(1, order[:, : min(k, scores.shape[1])]).float()


def _positives(labels):
    return labels.float().sum(1)


def hit_ratio(scores, labels, k):
    """H@k = |T ∩ P| / |P|; defined where |P| > 0."""
    npos = _positives(labels)
    hits = ranked_relevance(scores, labels, k).sum(1)
    return hits / npos.clamp(min=1), npos > 0


def any_hit(scores, labels, k):
    """HR@k = 1[T ∩ P ≠ ∅]; defined on every list."""
    hits = ranked_relevance(scores, labels, k).sum(1)
    return (hits > 0).float(), torch.ones_like(hits, dtype=torch.bool)


def precision(scores, labels, k):
    """P@k = |T ∩ P| / k; defined on every list."""
    hits = ranked_relevance(scores, labels, k).sum(1)
    return hits / k, torch.ones_like(hits, dtype=torch.bool)


def f1(scores, labels, k):
    """F1@k = 2 P@k H@k / (P@k + H@k), 0 when both are 0; defined where |P| > 0."""
    h, defined = hit_ratio(scores, labels, k)
    p, _ = precision(scores, labels, k)
    denom = p + h
    return torch.where(denom > 0, 2 * p * h / denom.clamp(min=1e-12), torch.zeros_like(h)), defined


def _precision_at_hits(rel):
    ranks = torch.arange(1, rel.shape[1] + 1, device=rel.device, dtype=rel.dtype)
    return (rel.cumsum(1) / ranks * rel).sum(1)


def mean_average_precision(scores, labels, k):
    """MAP@k = Σ_{i≤k} P@i·rel_i / min(k, |P|); defined where |P| > 0."""
    npos = _positives(labels)
    rel = ranked_relevance(scores, labels, k)
    return _precision_at_hits(rel) / torch.minimum(npos, torch.full_like(npos, k)).clamp(min=1), npos > 0


def map_librerank(scores, labels, k):
    """LibRerank's MAP@k = Σ_{i≤k} P@i·rel_i / (hits in top k), 0 without hits; every list."""
    rel = ranked_relevance(scores, labels, k)
    hits = rel.sum(1)
    return _precision_at_hits(rel) / hits.clamp(min=1), torch.ones_like(hits, dtype=torch.bool)


def ndcg(scores, labels, k):
    """NDCG@k, binary gains, ideal DCG over the list's own positives; defined where |P| > 0."""
    rel = ranked_relevance(scores, labels, k)
    discount = 1.0 / torch.log2(torch.arange(2, rel.shape[1] + 2, device=rel.device, dtype=rel.dtype))
    dcg = (rel * discount).sum(1)
    npos = _positives(labels)
    ideal_len = torch.minimum(npos, torch.full_like(npos, rel.shape[1])).long()
    idcg = torch.cat([torch.zeros(1, device=rel.device, dtype=rel.dtype), discount.cumsum(0)])[ideal_len]
    return dcg / idcg.clamp(min=1e-12), npos > 0


def list_auc(scores, labels, chunk=4096):
    """Per-list AUC over all candidates (ties count 1/2); defined where both classes occur."""
    out = []
    for s, y in zip(scores.split(chunk), labels.split(chunk)):
        y = y.float()
        diff = s.unsqueeze(2) - s.unsqueeze(1)  # [c, n, n]: s_i - s_j
        pair = y.unsqueeze(2) * (1 - y).unsqueeze(1)  # i positive, j negative
        wins = ((diff > 0).float() + 0.5 * (diff == 0).float()) * pair
        out.append(wins.sum((1, 2)) / pair.sum((1, 2)).clamp(min=1))
    values = torch.cat(out) if out else scores.new_zeros(0)
    npos = _positives(labels)
    return values, (npos > 0) & (npos < labels.shape[1])


class ListMetric(AbstractMetric):
    """A RecBole metric over candidate lists; ``fn(scores, labels, k)`` gives per-list values."""

    metric_type = EvaluatorType.RANKING
    metric_need = ["list.scores", "list.labels"]
    fn = None
    uses_topk = True

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    @property
    def name(self):
        return type(self).__name__.lower()

    def per_list(self, scores, labels):
        """``{key: (values [N], defined [N])}``; key is ``name@k`` (or ``name``)."""
        if not self.uses_topk:
            return {self.name: type(self).fn(scores, labels)}
        return {f"{self.name}@{k}": type(self).fn(scores, labels, k) for k in self.topk}

    def calculate_metric(self, dataobject):
        scores, labels = dataobject.get("list.scores"), dataobject.get("list.labels")
        result = {}
        for key, (values, defined) in self.per_list(scores, labels).items():
            mean = values[defined].mean().item() if defined.any() else math.nan
            result[key] = round(mean, self.decimal_place)
        return result


def _metric(name, fn, uses_topk=True):
    return type(name, (ListMetric,), {"fn": staticmethod(fn), "uses_topk": uses_topk, "__module__": __name__})


H = _metric("H", hit_ratio)
HR = _metric("HR", any_hit)
Precision = _metric("Precision", precision)
F1 = _metric("F1", f1)
MAP = _metric("MAP", mean_average_precision)
MAP_LibRerank = _metric("MAP_LibRerank", map_librerank)
NDCG = _metric("NDCG", ndcg)
AUC = _metric("AUC", list_auc, uses_topk=False)

LIST_METRICS = {cls.__name__.lower(): cls for cls in (H, HR, Precision, F1, MAP, MAP_LibRerank, NDCG, AUC)}
