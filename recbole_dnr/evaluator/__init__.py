"""List-wise evaluation: metrics over each request's candidate list, and their RecBole registration."""

from collections import OrderedDict

import torch

from recbole.evaluator import register as _register
from recbole.evaluator.collector import DataStruct

from recbole_dnr.evaluator.metrics import LIST_METRICS, ListMetric
from recbole_dnr.errors import UserInputError


def register_list_metrics():
    """Put our metric names into RecBole's registry in place (RecBole validates names against it).

    Names RecBole already has (ndcg, map, auc, precision) keep RecBole's entry there, so RecBole
    models run through our entry point keep RecBole's meaning; reranker models resolve every
    metric name in :data:`LIST_METRICS` instead (see :class:`ListEvaluator`).
    """
    for name, cls in LIST_METRICS.items():
        if name not in _register.metrics_dict:
            _register.metrics_dict[name] = cls
            _register.metric_information[name] = cls.metric_need
            _register.metric_types[name] = cls.metric_type


class ListEvaluator:
    """RecBole-style evaluator for rerankers: ``metrics`` and ``topk`` come from the config.

    ``eval_scope: candidates`` scores the whole candidate list (default); ``slate`` scores only
    the exposed slate items (a diagnostic: the DNR group's draft evaluator ranks all candidates, docs/metrics.md).
    """

    def __init__(self, config, scope=None):
        self.config = config
        self.scope = scope or config["eval_scope"] or "candidates"
        if self.scope not in ("candidates", "slate"):
            raise UserInputError(f"eval_scope must be 'candidates' or 'slate', got '{self.scope}'")
        self.metrics = [LIST_METRICS[m.lower()](config) for m in config["metrics"]]

    def restrict(self, scores, labels, slate_mask):
        if self.scope == "candidates":
            return scores, labels
        size = int(slate_mask[0].sum())
        if size == 0 or not bool((slate_mask.sum(1) == size).all()):
            raise UserInputError("eval_scope: slate needs list_mode: slate (every list has the same slate size)")
        idx = slate_mask.float().argsort(dim=1, descending=True, stable=True)[:, :size].sort(1).values
        return scores.gather(1, idx), labels.gather(1, idx)

    @staticmethod
    def with_missed(scores, labels, slate_mask, missed):
        """Append, per list, ``missed[r]`` positives the list does not hold (``eval_positives:
        window``: liked items the retriever did not retrieve) as candidates scored -inf: they count
        in every metric's positives and are never ranked above a real candidate."""
        if missed is None or not bool((missed > 0).any()):
            return scores, labels, slate_mask
        m = int(missed.max())
        pad = torch.arange(m).unsqueeze(0) < missed.unsqueeze(1)
        return (torch.cat([scores, torch.full((len(scores), m), float("-inf"), dtype=scores.dtype)], 1),
                torch.cat([labels, pad.to(labels.dtype)], 1),
                torch.cat([slate_mask, torch.zeros(len(scores), m, dtype=slate_mask.dtype)], 1))

    def per_list(self, scores, labels, slate_mask, missed=None):
        """``{metric_key: (values [N], defined [N])}`` for every configured metric."""
        scores, labels, slate_mask = self.with_missed(scores, labels, slate_mask, missed)
        scores, labels = self.restrict(scores, labels, slate_mask)
        out = OrderedDict()
        for metric in self.metrics:
            out.update(metric.per_list(scores, labels))
        return out

    def evaluate(self, scores, labels, slate_mask, missed=None):
        """Mean of each metric over the lists where it is defined, as RecBole's ``OrderedDict``."""
        scores, labels, slate_mask = self.with_missed(scores, labels, slate_mask, missed)
        scores, labels = self.restrict(scores, labels, slate_mask)
        data = DataStruct()
        data.set("list.scores", scores)
        data.set("list.labels", labels)
        result = OrderedDict()
        for metric in self.metrics:
            result.update(metric.calculate_metric(data))
        return result


register_list_metrics()

__all__ = ["LIST_METRICS", "ListMetric", "ListEvaluator", "register_list_metrics"]
