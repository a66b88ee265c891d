"""List metrics against hand-computed values, plus invariants (hypothesis)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_dnr.evaluator import metrics as M

LOG2 = math.log2


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_basic_list_by_hand():
    # scores rank the candidates c0 > c1 > c2 > c3 > c4; positives are c1 and c3.
    s = t([0.9, 0.8, 0.7, 0.6, 0.5])
    y = t([0, 1, 0, 1, 0])
    k = 3
    assert M.hit_ratio(s, y, k)[0].item() == pytest.approx(1 / 2)
    assert M.any_hit(s, y, k)[0].item() == 1
    assert M.precision(s, y, k)[0].item() == pytest.approx(1 / 3)
    p, h = 1 / 3, 1 / 2
    assert M.f1(s, y, k)[0].item() == pytest.approx(2 * p * h / (p + h))
    # MAP@3: hit at rank 2 -> P@2 = 1/2; divided by min(3, 2) = 2
    assert M.mean_average_precision(s, y, k)[0].item() == pytest.approx(0.5 / 2)
    # LibRerank MAP: divided by hits in top 3 = 1
    assert M.map_librerank(s, y, k)[0].item() == pytest.approx(0.5)
    # NDCG@3: DCG = 1/log2(3); IDCG = 1 + 1/log2(3)
    assert M.ndcg(s, y, k)[0].item() == pytest.approx((1 / LOG2(3)) / (1 + 1 / LOG2(3)))
    # AUC: positives at ranks 2 and 4 of 5; pairs (pos > neg): c1 beats c2,c4 (2 of 3), c3 beats c4 (1 of 3)
    assert M.list_auc(s, y)[0].item() == pytest.approx(3 / 6)


def test_ties_follow_list_order_and_auc_counts_half():
    s = t([0.5, 0.5, 0.5, 0.5])
    y = t([0, 0, 1, 1])
    # all tied: top-2 keeps list order -> c0, c1 -> no hits
    assert M.hit_ratio(s, y, 2)[0].item() == 0
    assert M.list_auc(s, y)[0].item() == pytest.approx(0.5)


def test_no_positive_lists_are_undefined_where_they_should_be():
    s = t([0.3, 0.2, 0.1])
    y = t([0, 0, 0])
    for fn in (M.hit_ratio, M.f1, M.mean_average_precision, M.ndcg):
        value, defined = fn(s, y, 2)
        assert not defined[0] and value[0].item() == 0
    for fn in (M.precision, M.any_hit, M.map_librerank):
        value, defined = fn(s, y, 2)
        assert defined[0] and value[0].item() == 0
    assert not M.list_auc(s, y)[1][0]


def test_all_positive_list():
    s = t([0.1, 0.9, 0.5])
    y = t([1, 1, 1])
    assert M.ndcg(s, y, 2)[0].item() == pytest.approx(1.0)
    assert M.mean_average_precision(s, y, 2)[0].item() == pytest.approx(1.0)
    assert M.precision(s, y, 2)[0].item() == pytest.approx(1.0)
    assert M.hit_ratio(s, y, 2)[0].item() == pytest.approx(2 / 3)
    assert not M.list_auc(s, y)[1][0]  # one class only: skipped


def test_k_larger_than_list():
    s = t([0.9, 0.1, 0.5])
    y = t([0, 1, 0])
    k = 10
    assert M.hit_ratio(s, y, k)[0].item() == 1
    assert M.precision(s, y, k)[0].item() == pytest.approx(1 / 10)
    # the positive is at rank 3: DCG = 1/log2(4) = 0.5; IDCG = 1
    assert M.ndcg(s, y, k)[0].item() == pytest.approx(0.5)
    assert M.mean_average_precision(s, y, k)[0].item() == pytest.approx(1 / 3)


def test_metric_means_skip_undefined_lists():
    from types import SimpleNamespace

    s = t([0.9, 0.1], [0.9, 0.1])
    y = t([1, 0], [0, 0])
    cfg = {"topk": [1], "metric_decimal_place": 4}
    data = SimpleNamespace(get=lambda k: {"list.scores": s, "list.labels": y}[k])
    assert M.NDCG(cfg).calculate_metric(data) == {"ndcg@1": 1.0}  # the empty list is skipped
    assert M.Precision(cfg).calculate_metric(data) == {"precision@1": 0.5}  # counted as 0


@st.composite
def lists(draw):
    n = draw(st.integers(1, 12))
    scores = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return torch.tensor([scores]), torch.tensor([labels], dtype=torch.float32), draw(st.integers(1, 15))


@settings(max_examples=150, deadline=None)
@given(lists())
def test_metrics_in_unit_interval(data):
    s, y, k = data
    for fn in (M.hit_ratio, M.any_hit, M.precision, M.f1, M.mean_average_precision, M.map_librerank, M.ndcg):
        v, _ = fn(s, y, k)
        assert 0.0 <= v.item() <= 1.0 + 1e-6
    v, _ = M.list_auc(s, y)
    assert 0.0 <= v.item() <= 1.0


@settings(max_examples=150, deadline=None)
@given(lists())
def test_perfect_ranking_is_one_and_auc_is_order_free(data):
    s, y, k = data
    if y.sum() == 0:
        return
    perfect = y + 0.01 * torch.arange(y.shape[1], 0, -1)  # positives first
    assert M.ndcg(perfect, y, k)[0].item() == pytest.approx(1.0)
    assert M.mean_average_precision(perfect, y, k)[0].item() == pytest.approx(1.0)
    # AUC does not depend on the order the candidates are listed in
    perm = torch.randperm(y.shape[1])
    assert M.list_auc(s[:, perm], y[:, perm])[0].item() == pytest.approx(M.list_auc(s, y)[0].item())


@settings(max_examples=100, deadline=None)
@given(lists())
def test_auc_complement(data):
    s, y, _ = data
    v, defined = M.list_auc(s, y)
    if defined[0]:
        assert (v + M.list_auc(-s, y)[0]).item() == pytest.approx(1.0)


def test_slate_scope_scores_only_the_slate_items():
    from recbole_dnr.evaluator import ListEvaluator

    cfg = {"eval_scope": "slate", "metrics": ["NDCG", "H"], "topk": [1], "metric_decimal_place": 4}
    scores = t([0.9, 0.8, 0.1, 0.2], [0.1, 0.9, 0.8, 0.7])
    labels = t([0, 0, 1, 0], [1, 0, 0, 1])
    slate = torch.tensor([[False, True, True, False], [True, False, False, True]])
    ev = ListEvaluator(cfg)
    s, y = ev.restrict(scores, labels, slate)
    assert torch.allclose(s, t([0.8, 0.1], [0.1, 0.7])) and y.tolist() == [[0, 1], [1, 1]]
    # list 1: the slate's top item (0.8) is negative -> 0; list 2: both slate items positive -> 1
    assert ev.evaluate(scores, labels, slate)["ndcg@1"] == pytest.approx(0.5)
    full = ListEvaluator({**cfg, "eval_scope": "candidates"}).evaluate(scores, labels, slate)
    assert full["ndcg@1"] == pytest.approx(0.0)  # over all candidates the top items are negatives
    with pytest.raises(ValueError, match="eval_scope"):
        ListEvaluator({**cfg, "eval_scope": "everything"})


def test_retrieval_metrics_by_hand():
    """Retriever NDCG@n / recall@n count every positive of the label window, found or not."""
    import numpy as np

    from recbole_dnr.evaluator.retrieval import retrieval_ndcg, retrieval_recall

    label = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    n_pos = np.array([3, 0, 1])
    # row 0: DCG 1 + 1/log2(4) = 1.5; ideal over 3 positives 1 + 1/log2(3) + 1/2 = 2.1309
    assert retrieval_ndcg(label, n_pos) == pytest.approx([1.5 / (1.5 + 1 / math.log2(3)), 0.0, 1 / math.log2(3)])
    assert retrieval_recall(label, n_pos) == pytest.approx([2 / 3, 0.0, 1.0])
