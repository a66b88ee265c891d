"""Config: RecBole's Config that knows our models, yamls and list metrics."""

import difflib
import inspect
import os

import recbole
from recbole.config import Config as RecBoleConfig
from recbole.utils import EvaluatorType
from recbole.utils import ModelType as RecBoleModelType

from recbole_dnr import compat, distributed, options
from recbole_dnr.errors import ModelType, UserInputError
from recbole_dnr.evaluator import LIST_METRICS
from recbole_dnr.recbole_models import recbole_class
from recbole_dnr.registry import get_backbone, model_name, resolve_model


def properties_dir():
    """``properties/`` beside the package in a checkout; ``recbole_dnr/properties`` in a wheel."""
    here = os.path.dirname(os.path.realpath(__file__))
    for candidate in (os.path.join(here, "..", "properties"), os.path.join(here, "properties")):
        if os.path.isfile(os.path.join(candidate, "overall.yaml")):
            return os.path.realpath(candidate)
    raise FileNotFoundError(f"recbole_dnr properties/overall.yaml not found near {here}")


def experiments_dir():
    """The benchmark variants: ``experiments/variants`` in a checkout; ``recbole_dnr/properties/experiments``
    in a wheel (setup.py ships them there)."""
    here = os.path.dirname(os.path.realpath(__file__))
    for candidate in (os.path.join(here, "..", "experiments", "variants"), os.path.join(properties_dir(), "experiments")):
        if os.path.isdir(candidate):
            return os.path.realpath(candidate)
    raise FileNotFoundError(f"recbole_dnr's experiment variants not found near {here}")


def experiment_names():
    """Names ``--config_files`` accepts for the shipped variants (``DNR-B``, ``PRM``, ...)."""
    return sorted(f[:-len(".yaml")] for f in os.listdir(experiments_dir()) if f.endswith(".yaml"))


def resolve_config_file(path):
    """A ``--config_files`` entry as a readable path: the path itself when it exists (relative to
    the working directory); else a shipped variant by name (``DNR-B``, ``DNR-B.yaml``); else a path
    relative to the checkout (``experiments/variants/DNR-B.yaml``, from any folder). None when none exists."""
    if os.path.isfile(path):
        return path
    name = path if path.endswith(".yaml") else path + ".yaml"
    for candidate in (os.path.join(experiments_dir(), name),
                      os.path.join(experiments_dir(), os.path.basename(name))):
        if not os.path.isabs(path) and os.path.isfile(candidate):
            return candidate
    return None


def model_yaml(name, model_class):
    """The defaults of model ``name``: ``properties/model/<name>.yaml``, else (a model defined in
    another package) ``<name>.yaml`` beside the module that defines ``model_class``."""
    ours = os.path.join(properties_dir(), "model", name + ".yaml")
    try:
        beside = os.path.join(os.path.dirname(inspect.getfile(model_class)), name + ".yaml")
    except (TypeError, OSError):  # a class with no source file
        return ours
    return beside if not os.path.isfile(ours) and os.path.isfile(beside) else ours


def _misspelt(key, given):
    """'; <given key> was given: did you mean <key>?' when a given key looks like ``key`` mistyped."""
    close = difflib.get_close_matches(key, [k for k in given if k != key], n=1, cutoff=0.6)
    return f"; {close[0]}={given[close[0]]!r} was given: did you mean {key}?" if close else ""


class Config(RecBoleConfig):
    """Adds, over RecBole's internal yamls: our ``overall.yaml`` (rerankers only),
    ``model/<Backbone>.yaml`` + ``model/DNR.yaml`` for ``DNR_<Backbone>``, ``model/<Model>.yaml``
    and ``dataset/<dataset>.yaml``. Precedence stays RecBole's: yamls < files < dict < ``argv``.

    ``argv``: the ``--key=value`` arguments a command line hands over (the ``recbole-dnr`` launcher
    passes those that are not its own). RecBole's Config reads ``sys.argv`` itself; ours reads only
    ``argv``, so a Config built inside another program (a grid runner, a test) takes no flags of it."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, argv=None):
        self.argv = list(argv or [])
        super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)

    def _load_cmd_line(self):
        values = {}
        for arg in self.argv:
            key, sep, value = arg[2:].partition("=")
            if not arg.startswith("--") or not key or not sep:
                raise UserInputError(f"command-line argument {arg!r}: config keys are given as --key=value")
            if key in values and values[key] != value:
                raise UserInputError(f"--{key} is given twice, as {values[key]!r} and {value!r}: keep one")
            values[key] = value
        return self._convert_config_dict(values)

    def compatibility_settings(self):
        compat.numpy_aliases()
        compat.scipy_dok_update()

    def derived(self, model, config_dict):
        """The config of a run this one starts (the list retriever's: ``model``, a RecBole class), from
        ``config_dict`` and the yamls only: the command line belongs to this run (``--epochs`` means
        *its* epochs)."""
        return _DerivedConfig(model=model, dataset=self["dataset"], config_dict=config_dict)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise UserInputError("no model given: pass --model=<Model>, or model: in a config file or config dict"
                                     + _misspelt("model", self.external_config_dict))
        model_class = resolve_model(model, self.external_config_dict)
        name = model_name(model_class)
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise UserInputError("no dataset given: pass --dataset=<name>, or dataset: in a config file or config dict"
                                     + _misspelt("dataset", self.external_config_dict))
        return name, model_class, dataset

    def _model_yamls(self, model, model_class):
        backbone = getattr(model_class, "backbone_name", None)
        named = [(backbone, get_backbone(backbone)), ("DNR", model_class)] if backbone else []
        return [model_yaml(n, cls) for n, cls in named + [(model, model_class)]]

    @staticmethod
    def _recbole_properties():
        return os.path.join(os.path.dirname(recbole.__file__), "properties")

    @staticmethod
    def wrapped_recbole_model(model_class):
        """Name of the RecBole model a reranker (or DNR over one) runs, else None."""
        backbone = getattr(model_class, "backbone_name", None)
        cls = get_backbone(backbone) if backbone else model_class
        return getattr(cls, "recbole_model", None)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        root = properties_dir()
        files = []
        if model_class.type == ModelType.RERANK:
            files.append(os.path.join(root, "overall.yaml"))
        yaml_model, yaml_class = model, model_class
        defaults_class = getattr(model_class, "defaults_class", None)  # CoRR: its ranker's defaults, then its own
        if defaults_class is not None:
            yaml_class = defaults_class(self.external_config_dict)
            yaml_model = model_name(yaml_class)
        self.yaml_class = yaml_class
        wrapped = self.wrapped_recbole_model(yaml_class)
        if wrapped:
            # RecBole's own defaults for its model win over our backbone defaults (hidden_size, dropout_prob)
            files.append(os.path.join(self._recbole_properties(), "model", wrapped + ".yaml"))
            files.append(os.path.join(root, "model", "RecBoleReranker.yaml"))
            files.append(os.path.join(root, "model", wrapped + ".yaml"))
            self.internal_config_dict["recbole_model"] = wrapped
        files += [f for f in self._model_yamls(yaml_model, yaml_class) if f not in files]
        if yaml_class is not model_class:
            files.append(model_yaml(model, model_class))
        dataset_file = os.path.join(root, "dataset", dataset + ".yaml")
        files.append(dataset_file)
        for file in files:
            if os.path.isfile(file):
                loaded = self._update_internal_config_dict(file) or {}
                if file == dataset_file:
                    self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
        if getattr(yaml_class, "backbone_name", None):
            self.internal_config_dict["backbone"] = yaml_class.backbone_name

    def _init_device(self):
        """RecBole's device set-up, plus distributed runs on CPU (gloo) for our rerankers: RecBole's
        own distributed path is GPU-only (nccl, ``cuda.set_device``, DDP with ``device_ids``)."""
        cfg = self.final_config_dict
        if "local_rank" not in cfg:
            return super()._init_device()
        distributed.require_reranker(cfg.get("MODEL_TYPE") == ModelType.RERANK, cfg.get("model"))
        cfg["gpu_id"] = ",".join(map(str, cfg["gpu_id"])) if isinstance(cfg["gpu_id"], tuple) else str(cfg["gpu_id"])
        cfg["device"] = distributed.init_process_group(cfg)
        cfg["single_spec"] = False
        if cfg["local_rank"] + (cfg.get("offset") or 0) != 0:  # one rank speaks, as in RecBole
            cfg["state"], cfg["show_progress"], cfg["verbose"] = "error", False, False

    def _load_config_files(self, file_list):
        resolved = []
        for path in file_list or []:  # RecBole would stop with a bare FileNotFoundError traceback
            found = resolve_config_file(path)
            if found is None:
                close = difflib.get_close_matches(path, experiment_names(), n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]}?" if close else ""
                raise UserInputError(
                    f"config file '{path}' not found (relative paths start at {os.getcwd()}).{hint} Give a yaml "
                    f"path, or the name of a shipped variant: {', '.join(experiment_names())}")
            resolved.append(found)
        return super()._load_config_files(resolved)

    def _set_default_parameters(self):
        self.notes = []  # what we set for the user, logged by quick_start.build once the logger exists
        if self.dataset == "ml-100k" and "data_path" in self.external_config_dict:
            # RecBole's _set_default_parameters reads ml-100k from its wheel whatever data_path says
            self.notes.append(f"data_path {self.external_config_dict['data_path']!r} is ignored for ml-100k: "
                              "RecBole always reads ml-100k from its wheel (recbole/dataset_example/ml-100k); "
                              "give your own copy another dataset name to use it")
        # the launcher's --model reaches Config as an argument, not as a key: the checks need its resolved name
        # types and ranges of the pipeline's and the model's own options, before any data is read
        options.check({**self.final_config_dict, "model": self.model}, self.model_class)
        known = (set(self.internal_config_dict) | {k for keys in self.parameters.values() for k in keys}
                 | options.declared_keys(properties_dir(), self._recbole_properties()))
        self.notes += options.unknown_keys(self.external_config_dict, known)
        if self.final_config_dict.get("MODEL_TYPE") != ModelType.RERANK:
            if self.final_config_dict.get("resume"):
                raise UserInputError("resume continues recbole_dnr's list models (rerankers, DNR, CoRR); RecBole's "
                                     "own pipeline has no resume state: drop --resume")
            self._recbole_ce_negatives()
            return super()._set_default_parameters()
        self.model_class.check_config(self.final_config_dict)  # the model's own settings, before any data is read
        wrapped = self.wrapped_recbole_model(getattr(self, "yaml_class", self.model_class))
        if wrapped:
            cfg = self.final_config_dict
            cfg["MAX_ITEM_LIST_LENGTH"] = min(cfg["MAX_ITEM_LIST_LENGTH"], cfg["max_history"])
            wrapped_type = recbole_class(wrapped).type
            if wrapped_type == RecBoleModelType.CONTEXT:
                self.notes.append(f"{wrapped} is a context-aware (CTR) model: it reranks from the user and item ids "
                                  f"only; the lists carry no item or user features and it does not read the "
                                  f"history (docs/models.md)")
            if cfg.get("recbole_pretrain") and (wrapped_type != RecBoleModelType.SEQUENTIAL
                                                or cfg.get("loss_type") != "CE"):
                raise UserInputError(
                    f"recbole_pretrain supports RecBole's sequential models with loss_type CE (next-item "
                    f"prediction over all items); {wrapped} with loss_type {cfg.get('loss_type')} is not one. "
                    f"Set recbole_pretrain: False, or loss_type: CE.")
        # List metrics share names with RecBole's (ndcg, map, auc) but not their meaning or type,
        # so validate them against our registry and let RecBole check the rest with a placeholder.
        metrics = self.final_config_dict["metrics"]
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m.lower() not in LIST_METRICS]
        if unknown:
            raise UserInputError(
                f"Unknown list metric(s) {unknown}; list metrics are: {sorted(LIST_METRICS)}"
            )
        valid_metric = str(self.final_config_dict["valid_metric"]).split("@")[0].lower()
        if valid_metric not in [m.lower() for m in metrics]:
            raise UserInputError(
                f"valid_metric '{self.final_config_dict['valid_metric']}' must be one of metrics {metrics}"
            )
        self.final_config_dict["metrics"] = ["ndcg"]
        super()._set_default_parameters()
        self.final_config_dict["metrics"] = metrics
        self.final_config_dict["eval_type"] = EvaluatorType.RANKING
        self.final_config_dict["valid_metric_bigger"] = True

    def _recbole_ce_negatives(self):
        """RecBole's pipeline: a CE-loss sequential model scores the whole catalogue, so it takes
        no training negatives; RecBole's overall.yaml samples one, and its Config then raises.
        Set ``train_neg_sample_args: ~`` unless the user asked for negatives themselves."""
        cfg = self.final_config_dict
        if (cfg.get("MODEL_TYPE") == RecBoleModelType.SEQUENTIAL and cfg.get("loss_type") == "CE"
                and cfg.get("train_neg_sample_args") is not None):
            if "train_neg_sample_args" in self.external_config_dict:
                raise UserInputError(
                    f"{self.model} with loss_type CE scores every item and takes no negatives: remove "
                    f"train_neg_sample_args (or set it to ~), or set loss_type: BPR to train with negatives")
            cfg["train_neg_sample_args"] = None
            self.notes.append(f"{self.model} uses loss_type CE: train_neg_sample_args set to None "
                              f"(RecBole's default samples one negative, which CE does not use)")


class _DerivedConfig(Config):
    """A config built by :meth:`Config.derived`: the command line is not read."""

    def _load_cmd_line(self):
        return {}
