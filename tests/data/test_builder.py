"""The list builder (data/builder.py): cache keys that stay put, splits that carry what a trainer
reads about them, and a ListDataset that no longer builds lists itself."""

import numpy as np
import pytest
import torch

from recbole_dnr.config import Config
from recbole_dnr.data import create_dataset
from recbole_dnr.data.builder import ListBuilder
from recbole_dnr.fields import LABEL, REQUEST_ID, SCORE
from recbole_dnr.quick_start import build

from conftest import smoke_config, write_slice


@pytest.mark.parametrize("mode, key", [("slate", "eeba5107fcbe1fab"), ("retrieve", "bc70262d5682e881")])
def test_list_cache_keys_are_pinned(tmp_path, mode, key):
    """The keys of the slice's lists, as the list dataset computed them before the builder existed:
    a change here orphans every user's cached lists (change it only on purpose). A fresh slice: the
    key hashes every file of the dataset's folder, and other tests add files to the shared one."""
    root = write_slice(str(tmp_path))
    config = Config(config_dict=smoke_config(root, model="Retriever", list_mode=mode))
    lists = ListBuilder(create_dataset(config))
    assert lists.cache_key() == key
    assert lists.cache_path().endswith(f"lists/{config['dataset']}-{key}.pth")
    assert lists.retriever_path().endswith(f"lists/{config['dataset']}-{key}-retriever.pth")


def test_a_list_dataset_leaves_building_to_the_builder(slice_root):
    ds = create_dataset(Config(config_dict=smoke_config(slice_root, model="Retriever")))
    with pytest.raises(TypeError, match=r"ListBuilder\(dataset\).build\(\)"):
        ds.build()  # RecBole's build() would split the raw log instead


def test_splits_carry_their_builder_and_their_label_windows(slice_root, in_session_dir):
    config, ds, loaders, _, _ = build(config_dict=smoke_config(slice_root, model="Retriever", list_mode="retrieve",
                                                               retriever_epochs=2, label_window=8))
    valid = loaders[1].requests
    lists = valid.lists
    assert all(loader.requests.lists is lists for loader in loaders)
    assert lists.stats["valid_lists"] == len(valid)
    rescored = valid.view(valid.inter)
    assert rescored.lists is lists and rescored.phase == "valid" and rescored.parent is ds

    ids = valid.inter[REQUEST_ID].numpy()
    counts = valid.window_positive_count(ids)
    # by hand from the sorted log: the distinct liked items among the request's first 8 rows of its user
    log, starts = ds.log_arrays(), ds.request_layout()[0]
    for j in range(0, len(ids), max(1, len(ids) // 25)):
        s = starts[ids[j]]
        rows = [r for r in range(s, s + 8) if r < len(log.users) and log.users[r] == log.users[s]]
        liked = {int(log.items[r]) for r in rows if log.ratings[r] >= config["label_threshold"]}
        assert int(counts[j]) == len(liked), j
    # a retrieved list holds at most the window's positives
    assert bool((valid.inter[LABEL].sum(1).long() <= counts).all())
    lo, hi = valid.prior_rows(ids[:5])
    assert torch.equal(hi, torch.as_tensor(starts[ids[:5]]))
    assert all(log.users[int(a)] == log.users[int(b)] for a, b in zip(lo, hi))
    assert all(int(a) == 0 or log.users[int(a) - 1] != log.users[int(a)] for a in lo)  # the user's first row


def test_retrieving_anew_keeps_the_split_and_its_builder(slice_root, in_session_dir):
    _, _, (_, _, test), _, _ = build(config_dict=smoke_config(slice_root, model="Retriever", list_mode="retrieve",
                                                              retriever_epochs=2))
    lists = test.requests.lists
    fresh = lists.retrieve_split(test.requests, lists.retriever_embeddings())
    assert fresh.lists is lists and fresh.phase == "test"
    assert torch.equal(fresh.inter[SCORE], test.requests.inter[SCORE])  # the holdout retriever scored the lists
    state = lists.serving_state()
    assert state["fingerprint"] == lists.source_fingerprint() and state["retriever_kind"] == "two_tower"
    assert np.allclose(state["retriever"][0].numpy(), lists.retriever_embeddings()[0].numpy())
