"""The statistics logged (and cached) with built lists: the dataset's, then each split's."""

import numpy as np

from recbole_dnr import protocol
from recbole_dnr.evaluator.metrics import list_auc


def dataset_stats(config, dataset_name, users, items, starts, splits):
    """Users, items, interactions and lists of the sorted log (``users``, ``items`` ``[rows]``),
    and the users the request cut (``starts``, ``splits`` ``[R]``) leaves short."""
    owners = users[starts]
    n_user = int(users.max()) + 1 if len(users) else 0
    per_split = [np.bincount(owners[splits == s], minlength=n_user) for s in (protocol.VALID, protocol.TEST)]
    with_lists = np.bincount(owners, minlength=n_user) > 0
    short = with_lists & ((per_split[0] < config["valid_slates"]) | (per_split[1] < config["test_slates"]))
    return {
        "dataset": dataset_name,
        "users": int(len(np.unique(users))),
        "items": int(len(np.unique(items))),
        "interactions": int(len(users)),
        "lists": int(len(starts)),
        "list_mode": config["list_mode"],
        "retriever_fit": config["retriever_fit"],
        # fewer rows than slate_size: history for nobody, rows only feed the retriever
        "users_without_lists": int(len(np.unique(users)) - with_lists.sum()),
        # fewer than 3 (valid + test + 1) slates: fewer held-out slates than asked (protocol.cut_requests)
        "users_short_holdout": int(short.sum()),
        "users_without_test": int((with_lists & (per_split[1] == 0)).sum()),
    }


def missing_label_counts(name, in_split, has_pos, has_neg):
    """Lists of split ``name`` (``in_split [R]``) without a positive, and without a negative."""
    # kept: a list without a positive (or a negative) trains and scores nothing list-wise
    # (its metrics are undefined and skipped); drop_no_positive_eval removes them from valid/test
    return {f"{name}_lists_no_positive": int((in_split & ~has_pos).sum()),
            f"{name}_lists_no_negative": int((in_split & ~has_neg).sum())}


def split_stats(name, x, y, recall):
    """Lists, positives per list, the mean AUC of x and the mean recall of split ``name``'s
    lists: x, z ``[R, n]`` (tensors), retriever recall ``[R]``."""
    auc, defined = list_auc(x, y)
    n = len(y)
    return {f"{name}_lists": n,
            f"{name}_positives_per_list": round(float(y.sum(1).mean()) if n else 0.0, 3),
            f"{name}_retriever_auc": round(float(auc[defined].mean()) if defined.any() else float("nan"), 4),
            f"{name}_retriever_recall": round(float(recall.mean()) if n else 0.0, 4)}
