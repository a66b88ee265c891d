"""Options: types and ranges checked before any work, a mistyped key an error naming the closest key."""

import glob
import os

import pytest
from conftest import smoke_config

from recbole_dnr import options
from recbole_dnr.config import Config
from recbole_dnr.errors import UserInputError
from recbole_dnr.quick_start import run_recbole_dnr
from recbole_dnr.registry import get_model


@pytest.mark.reliability("Options", "--{key}={value!r}",
                         "clear error before any data is read: {message}")
@pytest.mark.parametrize("key, value, message", [
    ("epochs", "abc", "epochs='abc': expected an integer >= 0"),
    ("epochs", 0, "epochs=0: DNR_PRM has parameters to train; set epochs >= 1"),
    ("epochs", -1, "epochs=-1: expected an integer >= 0"),
    ("lambda_c", 2, r"lambda_c=2: expected a number in \[0, 1\]"),
    ("lambda_m", -0.1, "lambda_m=-0.1: expected a number >= 0"),
    ("lambda_x", -1, "lambda_x=-1"),
    ("lambda_adv", -1, "lambda_adv=-1"),
    ("lambda_e", -1, "lambda_e=-1: expected an integer >= 0"),
    ("lambda_e", 2.5, "lambda_e=2.5: expected an integer"),
    ("learning_rate", 0, "learning_rate=0: expected a number > 0"),
    ("dropout_prob", 1.0, r"dropout_prob=1.0: expected a number in \[0, 1\)"),
    ("topk", [0], r"topk=\[0\]: expected a list of integers >= 1"),
    ("topk", [60], r"topk=\[60\]: every cut-off must be <= candidate_num \(50\)"),
    ("crossfit_folds", 1, "crossfit_folds=1: expected an integer >= 2"),
    ("use_learned_generator", "yes", "use_learned_generator='yes': expected True or False"),
    ("filler_pool", 10, r"filler_pool=10: .* set filler_pool >= 44"),
    ("score_fusion", "lat", "score_fusion='lat': expected one of none, early, late, weight; did you mean late?"),
    ("generator_form", "resid", "generator_form='resid': expected one of residual, direct, conditioned; did you "
                                "mean residual?"),
    ("noise", "uniform", "noise='uniform': expected one of gaussian, beta"),
    ("list_order", "random", "list_order='random': expected one of retriever, shuffled"),
    ("retriever_model", "Nope", "retriever_model must be a RecBole general model .* got 'Nope'"),
])
def test_bad_values_fail_with_the_option_and_what_is_allowed(key, value, message, slice_root):
    cfg = smoke_config(slice_root, model="DNR_PRM", **{key: value})
    cfg.pop("model")  # the model as run_recbole_dnr.py's --model passes it: an argument, not a config key
    if key == "filler_pool":
        cfg["filler_sampling"] = "retriever"
    with pytest.raises(UserInputError, match=message):
        Config(model="DNR_PRM", config_dict=cfg)


@pytest.mark.reliability("Options", "model or dataset missing, config keys {given}",
                         "clear error naming the key that was given: {message}")
@pytest.mark.parametrize("given, message", [
    ({"modle": "PRM", "dataset": "ml-100k"}, "no model given: .*; modle='PRM' was given: did you mean model\\?"),
    ({"model": "PRM", "datset": "ml-100k"}, "no dataset given: .*; datset='ml-100k' was given: did you mean dataset"),
    ({"dataset": "ml-100k"}, "no model given: pass --model=<Model>, or model: in a config file or config dict$"),
])
def test_a_missing_model_or_dataset_names_the_misspelt_key(given, message):
    with pytest.raises(UserInputError, match=message):
        Config(config_dict=given)


def test_good_values_pass(slice_root):
    options.check({"epochs": 3, "lambda_c": 0.0, "topk": [1, 6], "learning_rate": 1e-3, "dropout_prob": 0,
                   "candidate_num": 50, "slate_size": 6, "filler_pool": 44, "filler_sampling": "retriever"})
    Config(model="DNR_PRM", config_dict=smoke_config(slice_root, lambda_c=1.0, lambda_e=0))


def test_sampler_choices_agree_with_the_sampler_registry(slice_root):
    from recbole_dnr.retrieval.sampler import SAMPLERS

    assert set(options.model_options(get_model("CoRR"), {})["corr_sampler"].choices) == set(SAMPLERS)
    with pytest.raises(UserInputError, match="corr_sampler='exakt': expected one of exact, uniform; did you mean"):
        Config(model="CoRR", config_dict=smoke_config(slice_root, corr_sampler="exakt"))


@pytest.mark.parametrize("model, key, value, message", [
    ("PRM", "history_encoder", "lstm", "history_encoder='lstm': expected one of mean, gru, transformer"),
    ("PRM", "embedding_init_std", 0, r"embedding_init_std=0: expected a number > 0"),
    ("DNR_DLCM", "hidden_size", 0, "hidden_size=0: expected an integer >= 1"),  # the backbone's, under DNR
    ("CoRR", "lambda_c", -1, r"lambda_c=-1: expected a number in \[0, 1\]"),  # ranker: DNR_PRM's, under CoRR
    ("PIER", "pier_top", 60, "PIER needs slate_size <= pier_top <= candidate_num"),
    ("MiDNN", "midnn_layers", [64, 0], r"midnn_layers=\[64, 0\]: expected a list of integers >= 1"),
])
def test_each_model_checks_the_options_it_declares(model, key, value, message, slice_root):
    cfg = smoke_config(slice_root, **{key: value})
    if model == "CoRR":
        cfg["ranker"] = "DNR_PRM"
    with pytest.raises(UserInputError, match=message):
        Config(model=model, config_dict=cfg)


def test_a_model_checks_only_the_options_it_declares(slice_root):
    """DNR's keys are DNR's: a plain backbone's run ignores them, as their yaml is not loaded."""
    assert "lambda_c" not in options.OPTIONS and "hidden_size" not in options.OPTIONS
    assert "lambda_c" in get_model("DNR_PRM").option_specs() and "lambda_c" not in get_model("PRM").option_specs()
    Config(model="PRM", config_dict=smoke_config(slice_root, lambda_c=5))


@pytest.mark.reliability("Options", "a mistyped key (--lamda_c=0.3)",
                         "an error before any data is read, naming the closest known key (lambda_c)")
def test_mistyped_key_is_an_error_naming_the_closest_known_key(slice_root):
    with pytest.raises(UserInputError, match=r"unknown option 'lamda_c': did you mean lambda_c\? \(a key of your "
                                             r"own: list it in extra_keys, e\.g\. --extra_keys=\"\['lamda_c'\]\"\)"):
        Config(model="DNR_PRM", config_dict=smoke_config(slice_root, lamda_c=0.3, totally_new_key=1))
    config = Config(model="DNR_PRM", config_dict=smoke_config(slice_root, totally_new_key=1))  # close to no key
    assert any("'totally_new_key'" in n and "did you mean" not in n for n in config.notes)
    assert not any("'epochs'" in n for n in config.notes)


def test_extra_keys_lets_a_deliberate_key_through(slice_root):
    config = Config(model="DNR_PRM", config_dict=smoke_config(slice_root, lamda_c=0.3, extra_keys=["lamda_c"]))
    assert config["lamda_c"] == 0.3 and not any("lamda_c" in n for n in config.notes)
    config = Config(model="DNR_PRM", config_dict=smoke_config(slice_root, lamda_c=0.3, extra_keys="lamda_c"))
    assert config["lambda_c"] != 0.3  # it stays a key of its own


def test_an_unread_option_is_said_again_beneath_the_results(slice_root, in_session_dir, tmp_path, caplog):
    """The first warning comes before a config dump of ~150 lines; the run's end repeats it."""
    caplog.set_level("INFO")
    run_recbole_dnr(config_dict=smoke_config(slice_root, model="PRM", epochs=1, zzz_knob=0.1, state="INFO",
                                             checkpoint_dir=str(tmp_path)), saved=False)
    messages = [r.getMessage() for r in caplog.records]
    said = [i for i, m in enumerate(messages) if "'zzz_knob' is read by neither" in m]
    table = [i for i, m in enumerate(messages) if m.lstrip().startswith("metric")]
    assert len(said) == 2 and table and said[0] < table[0] < said[1]


@pytest.mark.reliability("Options", "--config_files naming a file that does not exist",
                         "clear error naming the file and the working directory (not a FileNotFoundError traceback)")
def test_missing_config_file_is_a_clear_error():
    with pytest.raises(UserInputError, match="config file 'no_such.yaml' not found"):
        Config(model="PRM", dataset="ml-100k", config_file_list=["no_such.yaml"])


def test_data_path_ignored_for_ml100k_is_said():
    config = Config(model="PRM", dataset="ml-100k", config_dict={"data_path": "/elsewhere"})
    assert any("data_path '/elsewhere' is ignored for ml-100k" in n for n in config.notes)
    assert not any("data_path" in n for n in Config(model="PRM", dataset="ml-100k").notes)


EXPERIMENTS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "experiments", "variants", "*.yaml")))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_every_experiment_yaml_loads_with_known_keys(path):
    """The variants users pass with --config_files: each passes the option checks, no key is mistyped."""
    with open(path) as f:
        names_model = any(line.startswith("model:") for line in f)
    config = Config(model=None if names_model else "PRM", dataset="ml-100k", config_file_list=[path])
    assert not [n for n in config.notes if "unknown option" in n]
    assert config["model"]


def test_experiment_yamls_declare_no_keys(tmp_path):
    """A key that only an experiments/ yaml sets is a typo there, not a declaration."""
    (tmp_path / "model").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "model" / "M.yaml").write_text("lambda_c: 0.4\n")
    (tmp_path / "experiments" / "V.yaml").write_text("lamda_c: 0.3\n")
    assert options.declared_keys(str(tmp_path)) == {"lambda_c"}
