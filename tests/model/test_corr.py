"""CoRR: the importance-sampled distillation KL, the sampler, the losses by hand, gradient flow
(teacher = ranker), lists retrieved anew, and an end-to-end run on the ml-100k slice."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from recbole_dnr.quick_start.quick_start import build, run_recbole_dnr
from recbole_dnr.retrieval import ExactSoftmaxSampler, UniformSampler, distillation_kl, sampled_softmax_loss
from recbole_dnr.retrieval.sampler import exclusion_mask
from recbole_dnr.errors import UserInputError

from conftest import smoke_config


def corr_config(slice_root, **overrides):
    return smoke_config(slice_root, **{"model": "CoRR", "epochs": 1, **overrides})


def _kl_estimate(teacher, student, k, g):
    items, log_q, _ = ExactSoftmaxSampler().sample(student, torch.ones_like(student, dtype=torch.bool), k, generator=g)
    return float(distillation_kl(teacher.gather(1, items), student.gather(1, items), log_q,
                                 torch.ones_like(items, dtype=torch.bool)))


def _exact_kl(teacher, student):
    return float((teacher.softmax(1) * (teacher.log_softmax(1) - student.log_softmax(1))).sum())


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_importance_sampled_kl_converges_to_the_exact_kl(seed):
    """Negatives drawn from the student (the retriever), both softmaxes on s - log q: the
    self-normalised estimate of KL(p_t ‖ p_s) over the full catalogue is consistent."""
    g = torch.Generator().manual_seed(seed)
    teacher, student = torch.randn(1, 12, generator=g), torch.randn(1, 12, generator=g)
    exact = _exact_kl(teacher, student)
    assert abs(_kl_estimate(teacher, student, 100_000, g) - exact) < 0.1 * max(exact, 0.05)


def test_importance_sampled_kl_error_shrinks_with_the_sample():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(1, 12, generator=g), torch.randn(1, 12, generator=g)) for _ in range(20)]
    err = [np.mean([abs(_kl_estimate(t, s, k, g) - _exact_kl(t, s)) for t, s in pairs]) for k in (20, 500, 20_000)]
    assert err[0] > err[1] > err[2]


def test_negatives_follow_the_retriever_distribution_and_skip_excluded_items():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0, 0.5, 3.0]])
    allowed = torch.tensor([[False, True, True, True, True, False]])  # item 0 = padding, item 5 rated
    items, log_q, log_q_all = ExactSoftmaxSampler().sample(logits, allowed, 40_000, generator=g)
    counts = torch.bincount(items.flatten(), minlength=6).numpy()
    assert counts[0] == 0 and counts[5] == 0
    q = torch.softmax(logits[0, 1:5].double(), 0).numpy()
    assert stats.chisquare(counts[1:5], q * counts.sum()).pvalue > 1e-3
    assert torch.allclose(log_q, log_q_all.gather(1, items))
    assert torch.allclose(log_q_all[0, 1:5].exp(), torch.tensor(q, dtype=torch.float32), atol=1e-6)
    uniform = UniformSampler().log_q(logits, allowed)
    assert torch.allclose(uniform[0, 1:5], torch.full((4,), -math.log(4)))
    assert ExactSoftmaxSampler(temperature=0.5).log_q(logits, allowed)[0, 2] > log_q_all[0, 2]  # sharper
    with pytest.raises(UserInputError, match="no item left"):
        ExactSoftmaxSampler().sample(logits, torch.zeros_like(allowed), 3)


def test_exclusion_mask_by_hand():
    log_items = torch.tensor([3, 1, 4, 2, 5])
    m = exclusion_mask(6, torch.tensor([0, 3]), torch.tensor([2, 5]), log_items, extra=torch.tensor([[0], [1]]))
    assert m.tolist() == [[False, False, True, False, True, True], [False, False, False, True, True, False]]


def test_sampled_softmax_and_kl_by_hand():
    s = torch.tensor([[2.0, 1.0, 0.0, 5.0]])
    log_q = torch.tensor([[-1.0, -2.0, -1.0, -1.0]])
    pos = torch.tensor([[True, False, False, False]])
    neg = torch.tensor([[False, True, True, False]])  # slot 3: an accidental hit, left out
    # s̃ = s - log q = [3, 3, 1, .]; loss = -log(e^3 / (e^3 + e^3 + e^1))
    expected = -math.log(math.exp(3) / (math.exp(3) + math.exp(3) + math.exp(1)))
    assert sampled_softmax_loss(s, log_q, pos, neg).item() == pytest.approx(expected, rel=1e-6)
    t = torch.tensor([[0.0, 0.0, 1.0, 9.0]])  # teacher over negatives: s̃ = [., 2, 2, .] -> uniform
    # student over negatives: s̃ = [., 3, 1, .]; KL(u || p) = Σ 0.5 (log 0.5 - log p_i)
    p = torch.softmax(torch.tensor([3.0, 1.0]), 0)
    kl = float((0.5 * (math.log(0.5) - p.log())).sum())
    assert distillation_kl(t, s, log_q, neg).item() == pytest.approx(kl, rel=1e-6)


def test_distillation_reaches_the_retriever_only(slice_root, in_session_dir):
    config, ds, (train, _, _), model, trainer = build(config_dict=corr_config(slice_root))
    units = trainer.training_requests(train._dataset)
    b = units[torch.arange(16)]
    model.train()
    s_all = model.retriever.all_scores(b)
    inter, (s_re, log_q, pos, neg) = model.sample_lists(b, s_all)
    assert (inter["label"][pos] == 1).all() and pos.any(1).all()
    assert torch.equal(inter[model.ITEM_ID].gather(1, torch.argsort(s_re.detach(), 1, descending=True)),
                       inter[model.ITEM_ID])  # retriever order
    kd = distillation_kl(model.ranker_logits(inter), s_re, log_q, neg)
    kd.backward()
    assert model.retriever.user_embedding.weight.grad.abs().sum() > 0
    assert model.retriever.item_embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.ranker.parameters())


def test_own_loss_ranker_teaches_without_a_graph_and_trains_by_its_own_loss(slice_root, in_session_dir):
    """corr_ranker_loss: own — the teacher forward for the KL builds no graph (it is detached
    there); the ranker's gradient is exactly its own loss's on the sampled lists."""
    config, ds, (train, _, _), model, trainer = build(config_dict=corr_config(slice_root, corr_ranker_loss="own"))
    b = trainer.training_requests(train._dataset)[torch.arange(16)]
    model.eval()  # no dropout: the two backward passes below see the same forward
    grad_modes, encode = [], model.ranker.encode

    def recording_encode(*args, **kwargs):
        grad_modes.append(torch.is_grad_enabled())
        return encode(*args, **kwargs)

    model.ranker.encode = recording_encode  # every ranker pass encodes; module hooks miss calculate_loss
    sum(model.calculate_loss(b)).backward()
    del model.ranker.encode
    assert grad_modes == [False, True]  # teacher for the KL, then the ranker's own loss
    joint = [p.grad.clone() for p in model.ranker.parameters() if p.grad is not None]
    assert model.retriever.item_embedding.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    own = model.ranker.calculate_loss(model.last_lists)
    (sum(own) if isinstance(own, tuple) else own).backward()
    alone = [p.grad for p in model.ranker.parameters() if p.grad is not None]
    assert len(joint) == len(alone) > 0 and all(torch.allclose(a, b) for a, b in zip(joint, alone))


def test_retrieving_with_the_list_retriever_reproduces_the_stored_lists(slice_root, in_session_dir):
    config, ds, (_, valid, _), model, trainer = build(config_dict=corr_config(slice_root))
    split = valid.requests
    lists = split.lists
    fresh = lists.retrieve_split(split, lists.retriever_embeddings())
    for key in ("item_id", "score", "label", "history_item", "request_id"):
        assert torch.equal(fresh.inter[key], split.inter[key]), key
    m = fresh.retriever_metrics
    assert ((m["recall@50"] >= 0) & (m["recall@50"] <= 1)).all() and (m["ndcg@50"] <= 1 + 1e-9).all()
    assert float(m["recall@50"].mean()) == pytest.approx(lists.stats["valid_retriever_recall"], abs=1e-4)
    # AUC of x over each retrieved list, NaN where a list lacks a positive or a negative
    assert torch.equal(m["auc"].isnan(), ~((fresh.inter["label"].sum(1) > 0) & (fresh.inter["label"].sum(1) < 50)))
    assert float(m["auc"].nanmean()) == pytest.approx(lists.stats["valid_retriever_auc"], abs=1e-4)


@pytest.mark.parametrize("extra", [{}, {"corr_mode": "alternating", "corr_alternate_epochs": 1, "epochs": 2},
                                   {"ranker": "DNR_PRM", "corr_ranker_loss": "own", "lambda_e": 1, "epochs": 2},
                                   {"ranker": "DeepFM"}])  # the authors' MF-setting ranker, RecBole's own
def test_corr_runs_end_to_end(slice_root, in_session_dir, extra):
    result = run_recbole_dnr(config_dict=corr_config(slice_root, **extra))
    test = result["test_result"]
    assert 0 <= test["ndcg@6"] <= 1 and 0 < test["retriever_recall@50"] <= 1 and 0 < test["retriever_auc"] < 1


def test_dnr_ranker_under_corr_runs_its_learned_generator(slice_root, in_session_dir):
    from recbole_dnr.model.dnr import LEARNED

    config, ds, (train, valid, _), model, trainer = build(config_dict=corr_config(
        slice_root, ranker="DNR_PRM", corr_ranker_loss="own", lambda_e=1, epochs=2))
    phi_before = [p.detach().clone() for p in model.ranker.phi_parameters()]
    trainer.fit(train, valid, saved=False, show_progress=False)
    assert model.ranker.phase == LEARNED
    assert any(not torch.equal(a, b) for a, b in zip(phi_before, model.ranker.phi_parameters()))
    assert trainer.dnr_schedule.optimizer.state_dict()["state"]


def test_corr_bad_settings_are_clear_errors(slice_root, in_session_dir):
    with pytest.raises(UserInputError, match="list_mode: retrieve"):
        build(config_dict=corr_config(slice_root, list_mode="slate"))
    with pytest.raises(UserInputError, match="corr_ranker_loss: own"):
        build(config_dict=corr_config(slice_root, ranker="DNR_PRM"))
    with pytest.raises(UserInputError, match="eval_positives: window"):
        build(config_dict=smoke_config(slice_root, model="PRM", eval_positives="window"))
    with pytest.raises(UserInputError, match="unset probe_sigmas"):
        build(config_dict=corr_config(slice_root, probe_sigmas=[0, 0.1]))
    with pytest.raises(UserInputError, match="corr_sampler"):
        build(config_dict=corr_config(slice_root, corr_sampler="midx"))


def test_alternating_phases_train_one_side_at_a_time(slice_root, in_session_dir):
    config, ds, (train, _, _), model, trainer = build(config_dict=corr_config(
        slice_root, corr_mode="alternating", corr_alternate_epochs=2))
    assert [trainer.phase_for(e) for e in range(6)] == ["retriever", "retriever", "ranker", "ranker", "retriever", "retriever"]
    b = trainer.training_requests(train._dataset)[torch.arange(8)]
    model.train()
    model.corr_phase = "ranker"
    terms = model.calculate_loss(b)
    assert len(terms) == 1
    sum(terms).backward()
    assert model.retriever.user_embedding.weight.grad is None
    assert any(p.grad is not None for p in model.ranker.parameters())
    model.zero_grad(set_to_none=True)
    model.corr_phase = "retriever"
    terms = model.calculate_loss(b)
    assert len(terms) == 2  # retriever's sampled softmax + distillation
    sum(terms).backward()
    assert model.retriever.user_embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.ranker.parameters())


def test_zero_retriever_weights_keep_the_pretrained_retriever(slice_root, in_session_dir):
    """w_re = lambda_KD = 0 with the retriever warm-started (experiments/grids/corr.yaml's CoRR-SASRec-frozen):
    a trained epoch leaves the retriever the independent BPR, so only the ranker's training differs
    from the independent pipeline; with w_re = 1 the same epoch moves it."""
    def retriever_after_one_epoch(weight):
        config, ds, (train, valid, _), model, trainer = build(config_dict=corr_config(
            slice_root, corr_retriever_init="pretrained", corr_retriever_weight=weight, corr_kd_weight=0.0,
            weight_decay=0.0))
        before = [p.detach().clone() for p in model.retriever.parameters()]
        trainer.fit(train, valid, verbose=False, saved=False)
        return before, list(model.retriever.parameters()), model
    before, after, model = retriever_after_one_epoch(0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.ranker.parameters())
    before, after, _ = retriever_after_one_epoch(1.0)
    assert not all(torch.equal(a, b) for a, b in zip(before, after))


def test_retriever_model_lightgcn_builds_lists_from_its_propagated_vectors(slice_root, in_session_dir):
    config, ds, (train, valid, _), _, _ = build(config_dict=smoke_config(
        slice_root, model="Retriever", retriever_model="LightGCN", retriever_epochs=2, list_mode="retrieve"))
    bpr = build(config_dict=smoke_config(slice_root, model="Retriever", retriever_epochs=2, list_mode="retrieve"))[2][0]
    lists = valid.requests.lists
    assert lists.cache_path() != bpr.requests.lists.cache_path()  # the retriever's identity is in the list cache key
    fresh = lists.retrieve_split(valid.requests, lists.retriever_embeddings())
    assert torch.equal(fresh.inter["item_id"], valid.requests.inter["item_id"])
    with pytest.raises(UserInputError, match="sequential retriever must score"):
        build(config_dict=smoke_config(slice_root, model="Retriever", retriever_model="BERT4Rec"))
    with pytest.raises(UserInputError, match="retriever_model must be"):
        build(config_dict=smoke_config(slice_root, model="Retriever", retriever_model="NoSuch"))


def test_sasrec_retriever_queries_per_request(slice_root, in_session_dir):
    """A sequential retriever: one query per request from its history (two requests of one user
    differ), lists reproduced from the cached vectors, trained on the given rows only."""
    cfg = smoke_config(slice_root, model="Retriever", retriever_model="SASRec", retriever_epochs=1,
                       list_mode="retrieve", retriever_fit="crossfit", crossfit_folds=2, max_history=8)
    config, ds, (train, valid, test), _, _ = build(config_dict=cfg)
    lists = test.requests.lists
    vectors = lists.retriever_embeddings()
    starts, _, req_users = ds.request_layout()
    assert vectors["request"].shape[0] == len(starts)
    same_user = np.flatnonzero(req_users == req_users[0])[:2]
    assert not torch.allclose(vectors["request"][same_user[0]], vectors["request"][same_user[1]])
    fresh = lists.retrieve_split(test.requests, vectors)
    assert torch.equal(fresh.inter["item_id"], test.requests.inter["item_id"])
    assert 0 < lists.stats["test_retriever_recall"] <= 1
    with pytest.raises(UserInputError, match="per-request queries"):
        build(config_dict={**cfg, "model": "CoRR", "corr_retriever_init": "pretrained", "retriever_fit": "holdout"})


def test_missed_positives_count_against_the_list_by_hand():
    from recbole_dnr.evaluator import ListEvaluator
    from recbole_dnr.evaluator.metrics import hit_ratio, ndcg

    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4]])
    labels = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    slate = torch.zeros(2, 3, dtype=torch.bool)
    s, y, m = ListEvaluator.with_missed(scores, labels, slate, torch.tensor([1, 2]))
    assert s.shape == (2, 5) and y.tolist() == [[0, 1, 0, 1, 0], [0, 0, 0, 1, 1]] and not m.any()
    assert torch.isinf(s[:, 3:]).all()
    v, defined = ndcg(s, y, 3)
    # list 1: its one held positive at rank 3 (DCG 1/log2 4 = 0.5); ideal over 2 positives = 1 + 1/log2 3
    assert v[0].item() == pytest.approx(0.5 / (1 + 1 / math.log2(3)))
    assert defined.tolist() == [True, True] and v[1].item() == 0  # nothing retrieved: defined, and 0
    assert ndcg(scores, labels, 3)[1].tolist() == [True, False]  # candidates scope: list 2 left out
    h, _ = hit_ratio(s, y, 3)
    assert h.tolist() == [0.5, 0.0]


def test_distillation_gradient_has_no_nan_with_masked_slots():
    s_ra = torch.randn(3, 5)
    s_re = torch.randn(3, 5, requires_grad=True)
    log_q = torch.full((3, 5), -2.0)
    neg = torch.tensor([[False, True, True, True, False], [True] * 5, [False, False, True, True, True]])
    with torch.autograd.detect_anomaly():
        distillation_kl(s_ra, s_re, log_q, neg).backward()
    assert torch.isfinite(s_re.grad).all() and (s_re.grad[~neg] == 0).all()


def test_corr_with_a_sequential_retriever(slice_root, in_session_dir):
    """CoRR's retriever as SASRec: training scores (from each request's history) equal the
    per-request vectors the evaluation retrieves with; distillation trains SASRec, not the ranker;
    a run completes; non-MF general retrievers are a clear error."""
    cfg = corr_config(slice_root, retriever_model="SASRec", retriever_epochs=1, list_mode="retrieve",
                      retriever_fit="holdout", max_history=8, retriever_embedding_size=16)
    config, ds, (train, _, _), model, trainer = build(config_dict=cfg)
    b = trainer.training_requests(train._dataset)[torch.arange(8)]
    model.eval()
    with torch.no_grad():
        s_all = model.retriever.all_scores(b)
        vectors = model.retriever.embeddings()
    expected = vectors["request"][b["request_id"]] @ vectors["item"].T
    assert torch.allclose(s_all, expected, atol=1e-4)
    model.train()
    s_all = model.retriever.all_scores(b)
    inter, (s_re, log_q, _, neg) = model.sample_lists(b, s_all)
    distillation_kl(model.ranker_logits(inter), s_re, log_q, neg).backward()
    assert model.retriever.model.item_embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.ranker.parameters())
    result = run_recbole_dnr(config_dict=cfg)
    assert 0 < result["test_result"]["retriever_recall@50"] <= 1
    with pytest.raises(UserInputError, match="retriever_model LightGCN is neither"):
        build(config_dict=corr_config(slice_root, retriever_model="LightGCN", list_mode="retrieve"))


def test_corr_is_deterministic(slice_root, in_session_dir):
    """Same seed, same config: the same valid curve and test metrics (the retriever, the sampler's
    draws and the lists retrieved anew all follow the seed)."""
    runs = [run_recbole_dnr(config_dict=corr_config(slice_root, epochs=2, seed=7)) for _ in range(2)]
    assert runs[0]["test_result"] == runs[1]["test_result"]
    assert runs[0]["best_valid_result"] == runs[1]["best_valid_result"]
