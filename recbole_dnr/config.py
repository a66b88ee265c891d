"""Config: RecBole's Config that knows our models, yamls and list metrics."""

import os

from recbole.config import Config as RecBoleConfig
from recbole.utils import EvaluatorType

from recbole_dnr import compat
from recbole_dnr.utils import ModelType, UserInputError, get_model


def properties_dir():
    """``properties/`` beside the package in a checkout; ``recbole_dnr/properties`` in a wheel."""
    here = os.path.dirname(os.path.realpath(__file__))
    for candidate in (os.path.join(here, "..", "properties"), os.path.join(here, "properties")):
        if os.path.isfile(os.path.join(candidate, "overall.yaml")):
            return os.path.realpath(candidate)
    raise FileNotFoundError(f"recbole_dnr properties/overall.yaml not found near {here}")


class Config(RecBoleConfig):
    """Adds, over RecBole's internal yamls: our ``overall.yaml`` (rerankers only),
    ``model/<Backbone>.yaml`` + ``model/DNR.yaml`` for ``DNR_<Backbone>``, ``model/<Model>.yaml``
    and ``dataset/<dataset>.yaml``. Precedence stays RecBole's: yamls < files < dict < cmd line."""

    def compatibility_settings(self):
        compat.numpy_aliases()

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise UserInputError("no model given: pass --model=<Model>, or model: in a config file or config dict")
        if isinstance(model, str) and model == "DNR" and "backbone" in self.external_config_dict:
            model = f"DNR_{self.external_config_dict['backbone']}"
        model_class = model if not isinstance(model, str) else get_model(model)
        model_name = model_class.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise UserInputError("no dataset given: pass --dataset=<name>, or dataset: in a config file or config dict")
        return model_name, model_class, dataset

    def _model_yamls(self, model, model_class):
        backbone = getattr(model_class, "backbone_name", None)
        names = [backbone, "DNR", model] if backbone else [model]
        return [os.path.join(properties_dir(), "model", n + ".yaml") for n in names]

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        root = properties_dir()
        files = []
        if model_class.type == ModelType.RERANK:
            files.append(os.path.join(root, "overall.yaml"))
        files += self._model_yamls(model, model_class)
        dataset_file = os.path.join(root, "dataset", dataset + ".yaml")
        files.append(dataset_file)
        for file in files:
            if os.path.isfile(file):
                loaded = self._update_internal_config_dict(file) or {}
                if file == dataset_file:
                    self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
        if getattr(model_class, "backbone_name", None):
            self.internal_config_dict["backbone"] = model_class.backbone_name

    def _set_default_parameters(self):
        if self.final_config_dict.get("MODEL_TYPE") != ModelType.RERANK:
            return super()._set_default_parameters()
        # List metrics share names with RecBole's (ndcg, map, auc) but not their meaning or type,
        # so validate them against our registry and let RecBole check the rest with a placeholder.
        from recbole_dnr.evaluator import LIST_METRICS

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
