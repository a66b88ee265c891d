"""Data: the dataset of a run (RecBole's, or our list dataset) and its dataloaders. The parts:
``download.py`` (fetching RecBole's datasets), ``atomic_files.py`` (checks of the files),
``request_set.py`` (one split's requests), ``dataset.py`` (the sorted log and the requests),
``builder.py`` (retriever, candidate lists; ``cache.py`` their key and files, ``statistics.py``),
``candidates.py`` (candidate generation), ``dataloader.py``."""

import os

from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation

from recbole_dnr.data.atomic_files import AtomicFileError, validate_atomic_file  # noqa: F401
from recbole_dnr.data.download import DatasetDownloadError, DatasetNotFoundError, by_hand  # noqa: F401
from recbole_dnr.errors import UserInputError
from recbole_dnr.registry import is_reranker


def check_dataset_files(config):
    """Fail early when the dataset's atomic files are missing (downloads happen before, in
    :func:`recbole_dnr.data.download.download_dataset`; RecBole would die with a network traceback)."""
    path, name = config["data_path"], config["dataset"]
    inter = os.path.join(path, f"{name}.inter")
    if not os.path.isfile(inter):
        raise DatasetNotFoundError(f"Dataset '{name}' not found: expected the RecBole atomic file {inter}. "
                                   f"{by_hand(config)}.")


def create_dataset(config):
    """:class:`ListDataset` for rerankers, RecBole's dataset for RecBole models."""
    check_dataset_files(config)
    if is_reranker(config):
        fields = [config[k] for k in ("USER_ID_FIELD", "ITEM_ID_FIELD", "RATING_FIELD", "TIME_FIELD")]
        path = os.path.join(config["data_path"], f"{config['dataset']}.inter")
        validate_atomic_file(path, fields, config["field_separator"])
    if is_reranker(config):
        from recbole_dnr.data.dataset import ListDataset

        try:
            return ListDataset(config)
        except ValueError as err:
            if "feat is empty" not in str(err):
                raise
            raise UserInputError(
                f"the filters left no interactions in {config['dataset']} (user_inter_num_interval "
                f"{config['user_inter_num_interval']}, item_inter_num_interval {config['item_inter_num_interval']}, "
                f"val_interval {config['val_interval']}): relax them") from None
    return recbole_create_dataset(config)


def data_preparation(config, dataset):
    """``(train, valid, test)`` dataloaders: list loaders for rerankers, RecBole's otherwise."""
    if not is_reranker(config):
        return recbole_data_preparation(config, dataset)
    from recbole_dnr.data.builder import ListBuilder
    from recbole_dnr.data.dataloader import ListDataLoader

    train, valid, test = ListBuilder(dataset).build()  # each split carries its builder (split.lists)
    return (
        ListDataLoader(config, train, config["train_batch_size"], shuffle=config["shuffle"]),
        ListDataLoader(config, valid, config["eval_batch_size"]),
        ListDataLoader(config, test, config["eval_batch_size"]),
    )
