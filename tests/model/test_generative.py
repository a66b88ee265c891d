"""The generative reranker base: sequence -> scores, pointer decoding, and PIER on it."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_dnr.model.generative import GenerativeReranker, pointer_decode, sequence_scores
from recbole_dnr.registry import get_model
from .test_dnr import B, N, FakeDataset, make_batch, make_config
from .test_rerankers import PIER_KEYS


def test_sequence_scores_by_hand():
    s = torch.tensor([[0.5, 2.0, -1.0, 1.0, 0.0]])
    out = sequence_scores(s, torch.tensor([[3, 0]]))
    # generated: index 3 first (max 2.0 + 2), index 0 second (2.0 + 1); the others keep s
    torch.testing.assert_close(out, torch.tensor([[3.0, 2.0, -1.0, 4.0, 0.0]]))
    padded = sequence_scores(s, torch.tensor([[3, 0]]), valid=torch.tensor([[True, False, True, True, True]]))
    # padding gets -inf and no longer sets the lead (max over valid = 1.0)
    torch.testing.assert_close(padded, torch.tensor([[2.0, float("-inf"), -1.0, 3.0, 0.0]]))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5))
def test_sequence_scores_order_the_sequence_first_without_ties(seed, k):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(3, 8, generator=g)
    seq = torch.stack([torch.randperm(8, generator=g)[:k] for _ in range(3)])
    out = sequence_scores(s, seq)
    order = out.argsort(1, descending=True)
    assert torch.equal(order[:, :k], seq)  # generated first, in their order
    rest = [[i for i in range(8) if i not in row] for row in seq.tolist()]
    for b in range(3):  # the rest keep their own order (AUC over the list stays meaningful)
        assert torch.equal(out[b, rest[b]], s[b, rest[b]])
    assert all(len(set(row.tolist())) == 8 for row in out)  # no ties


def test_pointer_decode_distinct_valid_and_deterministic():
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[:, -2:] = False  # padding must never be generated
    logits = torch.randn(B, N, generator=torch.Generator().manual_seed(0))
    logits[:, -2:] = 100.0  # even when padding has the highest logit

    def step(r, chosen):
        return logits

    seq, logp = pointer_decode(step, 4, valid)
    assert seq.shape == (B, 4) and logp.shape == (B, 4)
    assert all(len(set(row)) == 4 for row in seq.tolist()) and (seq < N - 2).all()
    masked = logits.masked_fill(~valid, float("-inf"))
    assert torch.equal(seq, masked.topk(4, dim=1).indices)  # greedy with one logit vector = top-k
    again, _ = pointer_decode(step, 4, valid)
    assert torch.equal(seq, again)
    drawn, _ = pointer_decode(step, 4, valid, sample=True, generator=torch.Generator().manual_seed(1))
    assert (drawn < N - 2).all() and all(len(set(row)) == 4 for row in drawn.tolist())
    assert (logp <= 0).all()


def test_pier_is_a_generative_reranker_and_scores_its_choice_first():
    torch.manual_seed(0)
    model = get_model("PIER")(make_config(**PIER_KEYS), FakeDataset()).eval()
    assert isinstance(model, GenerativeReranker)
    batch = make_batch()
    with torch.no_grad():
        s, seq = model.choose(batch)
        scores = model.predict(batch)
    torch.testing.assert_close(scores, sequence_scores(s, seq))
    assert torch.equal(scores.argsort(1, descending=True)[:, :3], seq)
