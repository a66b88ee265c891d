"""``load_data_and_model``: a saved run back in memory for analysis (RecBole's function of that name)."""

import os
from logging import getLogger

from recbole.utils import init_logger, init_seed

from recbole_dnr import storage
from recbole_dnr.data import create_dataset, data_preparation
from recbole_dnr.errors import UserInputError


def load_data_and_model(model_file):
    """The config, model (its saved weights, in eval mode), dataset and the train, valid and test
    loaders of the run that saved ``model_file``, as RecBole's ``load_data_and_model`` returns them.
    The dataset is read from where training read it and the lists from the list cache (rebuilt, the
    same, when the cache is gone)."""
    if not os.path.isfile(model_file):
        raise UserInputError(f"model_file {model_file} does not exist: pass the checkpoint a run saved "
                             "(training prints 'model saved: <path>' last; default folder saved/)")
    checkpoint = storage.load(model_file)  # CorruptFileError for a damaged file
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "state_dict" not in checkpoint:
        raise UserInputError(f"{model_file} is not a model checkpoint (a resume state or another file): pass the "
                             "file named by 'model saved: <path>'")
    config = checkpoint["config"]
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    model.eval()
    logger.info(model)
    return config, model, dataset, train_data, valid_data, test_data
