"""The request protocol, in plain numpy (docs/protocol.md): requests cut from the log, the
train/valid/test split by time, candidate fillers, and labels.

Inputs are the interaction log in RecBole's internal ids. Every function is deterministic
given its ``rng``.
"""

from typing import NamedTuple

import numpy as np

from recbole_dnr.errors import UserInputError

TRAIN, VALID, TEST = 0, 1, 2


class SortedLog(NamedTuple):
    """The interaction log sorted by (user, time), every field ``[rows]``: ``order`` (original row
    ids), ``users``, ``items`` (internal ids), ``ratings``, ``times``. What the list builder and the
    retrievers read; a plain tuple, so ``order, users, items, _, _ = log`` works."""

    order: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    times: np.ndarray


def user_end(users):
    """``end[u]``: one past the last row of user u in the sorted log ``users [rows]``."""
    end = np.zeros(int(users.max()) + 1, dtype=np.int64)
    change = np.append(np.flatnonzero(np.diff(users)), len(users) - 1)
    end[users[change]] = change + 1
    return end


def label_window(log, starts, window, threshold):
    """``(items [R, window], liked [R, window])``: the ratings from each request start on, within
    the user's rows (item -1 past the user's last rating); liked = rating >= ``threshold``."""
    end = user_end(log.users)[log.users[starts]]
    rows = starts[:, None] + np.arange(window)
    ok = rows < end[:, None]
    rows = np.where(ok, rows, 0)
    return np.where(ok, log.items[rows], -1), ok & (log.ratings[rows] >= threshold)


def distinct_nonzero(values):
    """Number of distinct non-zero entries of each row of ``values [R, W]`` (int64 numpy)."""
    v = np.sort(values, axis=1)
    if v.shape[1] == 0:
        return np.zeros(len(v), dtype=np.int64)
    new_value = (v[:, 1:] != v[:, :-1]) & (v[:, 1:] != 0)
    return new_value.sum(1) + (v[:, 0] != 0)


def sort_log(users, times):
    """Row order by (user, time), stable so equal timestamps keep file order."""
    return np.lexsort((np.arange(len(users)), times, users))


def cut_requests(users, slate_size, valid_slates, test_slates):
    """Cut each user's time-ordered rows into non-overlapping slates of ``slate_size``.

    ``users`` must already be sorted by (user, time). Slates are aligned to the *end* of each
    user's sequence (the oldest ``n_u mod slate_size`` rows are history only). Per user with S
    slates, the last ``min(test_slates, S // 3)`` are test, the ``min(valid_slates, S // 3)``
    before them valid, the rest (at least a third) train, so every user has training slates.

    Returns ``start [R]`` (row of each slate's first item), ``split [R]`` (0/1/2), ``user [R]``.
    """
    change = np.flatnonzero(np.diff(users)) + 1
    bounds = np.concatenate([[0], change, [len(users)]])
    starts, splits, owners = [], [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        n_slates = (hi - lo) // slate_size
        if n_slates == 0:
            continue
        first = hi - n_slates * slate_size
        s = first + slate_size * np.arange(n_slates)
        n_test = min(test_slates, n_slates // 3)
        n_valid = min(valid_slates, n_slates // 3)
        split = np.full(n_slates, TRAIN, dtype=np.int64)
        split[n_slates - n_test:] = TEST
        split[n_slates - n_test - n_valid: n_slates - n_test] = VALID
        starts.append(s)
        splits.append(split)
        owners.append(np.full(n_slates, users[lo]))
    cat = (lambda a, dt: np.concatenate(a).astype(dt) if a else np.zeros(0, dt))
    return cat(starts, np.int64), cat(splits, np.int64), cat(owners, np.int64)


def user_bounds(users):
    """``first_row[u]`` of each user's block in the sorted log (``-1`` if absent), as a dict-free array."""
    n = int(users.max()) + 1 if len(users) else 0
    first = np.full(n, -1, dtype=np.int64)
    change = np.concatenate([[0], np.flatnonzero(np.diff(users)) + 1])
    first[users[change]] = change
    return first


def history(items, labels, users, starts, max_history):
    """Up to ``max_history`` rows before each request (same user), left-padded with 0.

    Returns ``items [R, H]``, ``labels [R, H]`` and ``length [R]``; order is oldest to newest.
    """
    first = user_bounds(users)
    req_users = users[starts]
    lo = np.maximum(first[req_users], starts - max_history)
    length = starts - lo
    offsets = np.arange(max_history)[None, :] - (max_history - length)[:, None]
    rows = lo[:, None] + offsets
    valid = offsets >= 0
    rows = np.where(valid, rows, 0)
    return np.where(valid, items[rows], 0), np.where(valid, labels[rows], 0), length


def training_rows(users, starts, splits):
    """Boolean mask of log rows a retriever may see: every row before the user's first
    valid/test slate (its training slates and the history-only prefix)."""
    first = user_bounds(users)
    n_users = len(first)
    cutoff = np.full(n_users, np.iinfo(np.int64).max, dtype=np.int64)
    held = splits != TRAIN
    np.minimum.at(cutoff, users[starts[held]], starts[held])
    return np.arange(len(users)) < cutoff[users]


def rated_codes(users, items, n_items):
    """Sorted int64 codes ``user * n_items + item`` of every rated pair (for membership tests)."""
    return np.unique(users.astype(np.int64) * n_items + items)


def is_rated(codes, user, item_matrix, n_items):
    q = user.astype(np.int64)[:, None] * n_items + item_matrix
    pos = np.searchsorted(codes, q)
    pos = np.minimum(pos, len(codes) - 1)
    return codes[pos] == q


def sample_fillers(rng, req_users, slate_items, n_fill, n_items, codes, weights=None, pools=None):
    """``n_fill`` distinct items per request that the user never rated and that are not in its slate.

    ``weights [n_items]``: sampling distribution (uniform if None; index 0 is padding, weight 0).
    ``pools [R, P]``: optional per-request candidate pool (e.g. the retriever's top ranks) to
    sample uniformly from instead. Returns ``[R, n_fill]``.
    """
    R = len(req_users)
    out = np.zeros((R, n_fill), dtype=np.int64)
    if pools is None:
        p = None
        if weights is not None:
            p = np.asarray(weights, dtype=np.float64).copy()
            p[0] = 0
            p /= p.sum()
    for r in range(R):
        chosen = []
        taken = set(slate_items[r].tolist())
        tries = 0
        while len(chosen) < n_fill:
            want = 2 * (n_fill - len(chosen)) + 8
            if pools is not None:
                draw = rng.choice(pools[r], size=min(want, len(pools[r])), replace=False)
            elif p is None:
                draw = rng.integers(1, n_items, size=want)
            else:
                draw = rng.choice(n_items, size=want, p=p)
            ok = ~is_rated(codes, np.array([req_users[r]]), draw[None, :], n_items)[0]
            for item in draw[ok].tolist():
                if item not in taken:
                    taken.add(item)
                    chosen.append(item)
                    if len(chosen) == n_fill:
                        break
            tries += 1
            if tries > 1000:
                lo, hi = np.searchsorted(codes, [req_users[r] * n_items, (req_users[r] + 1) * n_items])
                pool = "its filler pool" if pools is not None else f"the {n_items - 1} filtered items"
                raise UserInputError(
                    f"cannot find {n_fill} fillers for user {req_users[r]}: it rated {hi - lo} of {pool}. "
                    "Lower candidate_num, relax item_inter_num_interval, or raise filler_pool."
                )
        out[r] = chosen
    return out


def order_by_score(items, x, labels, slate_mask):
    """Present each list in the retriever's order: x descending, ties by item id (never slate-first)."""
    order = _row_lexsort(items, x)
    take = lambda a: np.take_along_axis(a, order, axis=1)
    return take(items), take(x), take(labels), take(slate_mask)


def _row_lexsort(items, x):
    # Sort key per row: -x first, item id second.
    order = np.argsort(items, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    second = np.argsort(-xs, axis=1, kind="stable")
    return np.take_along_axis(order, second, axis=1)
