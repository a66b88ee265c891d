"""Protocol invariants: request cutting, the time split, history, fillers, ordering."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_dnr import protocol


def toy_log():
    # user 1: 20 rows, user 2: 40 rows, user 3: 5 rows (too few for a slate); times shuffled
    rng = np.random.default_rng(0)
    users = np.repeat([1, 2, 3], [20, 40, 5])
    times = np.concatenate([rng.permutation(20), rng.permutation(40), rng.permutation(5)]).astype(float)
    items = np.concatenate([rng.permutation(np.arange(1, 60))[:20], rng.permutation(np.arange(1, 60))[:40],
                            np.arange(1, 6)])
    perm = rng.permutation(len(users))
    return users[perm], times[perm], items[perm]


def sorted_toy():
    users, times, items = toy_log()
    order = protocol.sort_log(users, times)
    return users[order], times[order], items[order]


def test_sort_is_by_user_then_time():
    users, times, _ = sorted_toy()
    key = users * 1000 + times
    assert np.all(np.diff(key) > 0)


def test_slates_end_aligned_and_split_by_time():
    users, times, _ = sorted_toy()
    starts, splits, owners = protocol.cut_requests(users, 6, valid_slates=2, test_slates=2)
    # user 1: 20 rows -> 3 slates (rows 2..19), split 1/1/1; user 2: 6 slates -> 2/2/2; user 3: none
    assert owners.tolist() == [1] * 3 + [2] * 6
    assert splits.tolist() == [0, 1, 2, 0, 0, 1, 1, 2, 2]
    assert starts[:3].tolist() == [2, 8, 14]
    for u in (1, 2):
        s = starts[owners == u]
        sp = splits[owners == u]
        # every train slate is earlier than every valid slate, which is earlier than every test slate
        assert np.all(np.diff(sp) >= 0)
        assert np.all(times[s][sp == 0].max() < times[s][sp == 1].min())


def test_history_has_only_earlier_rows_of_the_same_user():
    users, times, items = sorted_toy()
    starts, _, _ = protocol.cut_requests(users, 6, 2, 2)
    labels = (items % 2).astype(np.int64)
    h_items, h_labels, h_len = protocol.history(items, labels, users, starts, max_history=10)
    for r, s in enumerate(starts):
        lo = s - h_len[r]
        assert np.all(users[lo:s] == users[s])
        assert h_items[r, 10 - h_len[r]:].tolist() == items[lo:s].tolist()
        assert h_labels[r, 10 - h_len[r]:].tolist() == labels[lo:s].tolist()
        assert np.all(h_items[r, : 10 - h_len[r]] == 0)
        assert np.all(times[lo:s] < times[s])  # no interaction from the request's future


def test_training_rows_stop_before_first_held_out_slate():
    users, _, _ = sorted_toy()
    starts, splits, owners = protocol.cut_requests(users, 6, 2, 2)
    mask = protocol.training_rows(users, starts, splits)
    for u in (1, 2):
        first_held = starts[(owners == u) & (splits != 0)].min()
        rows = np.flatnonzero(users == u)
        assert np.all(mask[rows[rows < first_held]])
        assert not np.any(mask[rows[rows >= first_held]])
    assert np.all(mask[users == 3])  # a user without slates only ever feeds the retriever


def test_fillers_are_unrated_distinct_and_outside_the_slate():
    users, _, items = sorted_toy()
    n_items = 60
    codes = protocol.rated_codes(users, items, n_items)
    rng = np.random.default_rng(1)
    req_users = np.array([1, 2, 1])
    slates = np.array([[1, 2], [3, 4], [5, 6]])
    for weights in (None, np.arange(n_items) + 1.0):
        fill = protocol.sample_fillers(rng, req_users, slates, 8, n_items, codes, weights=weights)
        for r in range(3):
            rated = set(items[users == req_users[r]].tolist())
            assert len(set(fill[r].tolist())) == 8
            assert not set(fill[r].tolist()) & rated
            assert not set(fill[r].tolist()) & set(slates[r].tolist())
            assert 0 not in fill[r]


def test_lists_are_presented_in_retriever_order_not_slate_first():
    items = np.array([[10, 11, 12, 13]])
    x = np.array([[0.2, 0.9, 0.5, 0.9]])
    labels = np.array([[1, 0, 1, 0]])
    slate = np.array([[1, 1, 0, 0]])
    i, xs, ys, ss = protocol.order_by_score(items, x, labels, slate)
    assert i.tolist() == [[11, 13, 12, 10]]  # x descending, ties by item id
    assert xs.tolist() == [[0.9, 0.9, 0.5, 0.2]]
    assert ys.tolist() == [[0, 0, 1, 1]]
    assert ss.tolist() == [[1, 0, 0, 1]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), min_size=0, max_size=5), min_size=1, max_size=6)
       .filter(lambda rows: len({len(r) for r in rows}) == 1))
def test_distinct_nonzero_counts_each_rows_distinct_items(rows):
    from recbole_dnr.protocol import distinct_nonzero

    values = np.array(rows, dtype=np.int64).reshape(len(rows), -1)
    expected = [len(set(r) - {0}) for r in rows]
    assert distinct_nonzero(values).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6)), min_size=0, max_size=8))
def test_range_rows_flattens_each_range_in_order(ranges):
    from recbole_dnr.retrieval.topk import range_rows

    lo = np.array([a for a, _ in ranges], dtype=np.int64)
    hi = lo + np.array([n for _, n in ranges], dtype=np.int64)
    owner, rows = range_rows(lo, hi)
    expected = [(r, i) for r, (a, n) in enumerate(ranges) for i in range(a, a + n)]
    assert list(zip(owner.tolist(), rows.tolist())) == expected
