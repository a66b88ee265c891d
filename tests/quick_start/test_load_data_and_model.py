"""RecBole's habits: ``load_data_and_model`` for analysis, ``--version``, "did you mean" for model names."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import smoke_config
from recbole_dnr.errors import UserInputError
from recbole_dnr.quick_start import load_data_and_model, run_recbole_dnr
from recbole_dnr.registry import get_model, user_model_names
from recbole_dnr.trainer import get_trainer
from recbole_dnr.version import VERSION


def test_load_data_and_model_gives_back_the_run_it_saved(slice_root, in_session_dir, tmp_path):
    result = run_recbole_dnr(config_dict=smoke_config(slice_root, model="PRM", epochs=2,
                                                      checkpoint_dir=str(tmp_path)))
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(result["model_file"])
    assert config["model"] == "PRM" and not model.training
    assert dataset.inter_num > 0 and len(train_data) > 0 and len(valid_data) > 0
    saved = torch.load(result["model_file"], weights_only=False)["state_dict"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in saved.items())
    trainer = get_trainer(config["MODEL_TYPE"], config["model"], config.model_class)(config, model)
    again = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert again["ndcg@6"] == pytest.approx(result["test_result"]["ndcg@6"], abs=1e-9)  # the same test lists


def test_load_data_and_model_refuses_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_data_and_model(str(tmp_path / "none.pth"))


def test_version_flag_prints_the_package_version():
    done = subprocess.run([sys.executable, "-m", "recbole_dnr.cli", "--version"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    assert done.returncode == 0 and done.stdout.strip() == f"recbole-dnr {VERSION}"


@pytest.mark.parametrize("typed, meant", [("PMR", "PRM"), ("sasrec", "SASRec"), ("dnr_prm", "DNR_PRM")])
def test_an_unknown_model_gets_the_closest_name(typed, meant):
    with pytest.raises(UserInputError, match=f"Unknown model '{typed}'. Did you mean {meant}\\?"):
        get_model(typed)
    with pytest.raises(UserInputError, match="'SASrec' is not a reranker backbone. Did you mean SASRec\\? "
                                             "Backbones: \\[") as err:
        get_model("DNR_SASrec")
    # (other test modules register backbones of their own beside these)
    assert all(f"'{b}'" in str(err.value) for b in ("DLCM", "MiDNN", "PIER", "PRM", "SetRank"))
    assert "RecBoleReranker" not in str(err.value)


def test_the_unknown_model_message_lists_user_facing_models_only():
    with pytest.raises(UserInputError) as err:
        get_model("Nothing_like_it")
    message = str(err.value)
    assert "Did you mean" not in message and "DNR_PRM" in message and "SetRank" in message
    assert "RecBoleReranker" not in message and "DNR," not in message and "ADMMSLIM" not in message  # not 100 names
    assert "RecBoleReranker" not in user_model_names() and "DNR" not in user_model_names()
