"""The retriever stage's exact top-k: bounded score blocks, exclusions, against a naive loop."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_dnr.retrieval.topk import topk_unseen


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_items=st.integers(12, 60), k=st.integers(1, 5))
def test_topk_unseen_is_exact_and_independent_of_the_block(seed, n_items, k):
    rng = np.random.default_rng(seed)
    n_users, d, R = 5, 4, 9
    user_emb, item_emb = torch.randn(n_users, d), torch.randn(n_items, d)
    log_items = rng.integers(1, n_items, size=40)
    users = rng.integers(0, n_users, size=R)
    lo = rng.integers(0, 30, size=R)
    hi = lo + rng.integers(0, 6, size=R)
    want = []
    for r in range(R):  # naive: score every item, drop 0 and the excluded ones, sort
        s = (user_emb[users[r]] @ item_emb.T).numpy().astype(np.float64)
        s[0] = -np.inf
        s[log_items[lo[r]:hi[r]]] = -np.inf
        want.append(set(np.argsort(-s, kind="stable")[:k].tolist()))
    for block_bytes in (4 * n_items, 4 * n_items * 3, 1 << 28):  # 1 request, 3 requests, all per block
        got = topk_unseen(user_emb, item_emb, users, lo, hi, log_items, k, block_bytes=block_bytes)
        assert [set(row.tolist()) for row in got] == want
