"""Data: request protocol, retriever stage, list datasets and dataloaders."""

import os

from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation

from recbole_dnr.utils import is_reranker


def check_dataset_files(config):
    """Fail early, offline-friendly, when the dataset's atomic files are missing
    (RecBole would otherwise try to download and die with a network traceback)."""
    path, name = config["data_path"], config["dataset"]
    inter = os.path.join(path, f"{name}.inter")
    if not os.path.isfile(inter):
        raise FileNotFoundError(
            f"Dataset '{name}' not found: expected the RecBole atomic file {inter} "
            f"(columns user_id:token item_id:token rating:float timestamp:float; .item/.user optional). "
            f"Put the files in {os.path.abspath(path)}/ or pass --data_path=<folder that contains {name}/>. "
            "recbole_dnr never downloads; only ml-100k ships with RecBole."
        )


def create_dataset(config):
    """:class:`ListDataset` for rerankers, RecBole's dataset for RecBole models."""
    check_dataset_files(config)
    if is_reranker(config):
        from recbole_dnr.data.dataset import ListDataset

        return ListDataset(config)
    return recbole_create_dataset(config)


def data_preparation(config, dataset):
    """``(train, valid, test)`` dataloaders: list loaders for rerankers, RecBole's otherwise."""
    if not is_reranker(config):
        return recbole_data_preparation(config, dataset)
    from recbole_dnr.data.dataloader import ListDataLoader

    train, valid, test = dataset.build()
    return (
        ListDataLoader(config, train, config["train_batch_size"], shuffle=config["shuffle"]),
        ListDataLoader(config, valid, config["eval_batch_size"]),
        ListDataLoader(config, test, config["eval_batch_size"]),
    )
