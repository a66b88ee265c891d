"""Trainers: ListTrainer for rerankers, DNRTrainer for DNR's two-phase schedule, EGRerankTrainer
for EGRerank's evaluator-then-generator phases, CoRRTrainer
for the jointly trained retriever and ranker, and a
checkpoint-loading fix for RecBole's own trainers."""

from recbole_dnr import compat
from recbole_dnr.errors import ModelType
from recbole_dnr.registry import get_model
from recbole_dnr.trainer.corr_trainer import CoRRTrainer
from recbole_dnr.trainer.dnr_trainer import DNRTrainer
from recbole_dnr.trainer.egrerank_trainer import EGRerankTrainer
from recbole_dnr.trainer.list_trainer import ListTrainer


class TrustedCheckpointMixin:
    """RecBole trainers reload checkpoints with a bare ``torch.load`` (fails on torch >= 2.6)."""

    def evaluate(self, *args, **kwargs):
        with compat.trusted_torch_load():
            return super().evaluate(*args, **kwargs)

    def resume_checkpoint(self, resume_file):
        with compat.trusted_torch_load():
            return super().resume_checkpoint(resume_file)


def with_trusted_checkpoints(trainer_class):
    """``trainer_class`` (a RecBole trainer) with :class:`TrustedCheckpointMixin` in front."""
    return type(trainer_class.__name__, (TrustedCheckpointMixin, trainer_class), {})


def get_trainer(model_type, model_name, model_class=None):
    """Trainer class: a list model's ``trainer_name`` (``ListTrainer`` unless it sets one), else
    ``<Model>Trainer`` here, else RecBole's choice (with trusted checkpoint loading)."""
    if model_type == ModelType.RERANK:
        model_class = model_class or get_model(model_name)
        return globals()[getattr(model_class, "trainer_name", "ListTrainer")]
    if model_name + "Trainer" in globals():
        return globals()[model_name + "Trainer"]
    from recbole.utils import get_trainer as recbole_get_trainer

    return with_trusted_checkpoints(recbole_get_trainer(model_type, model_name))


__all__ = ["ListTrainer", "DNRTrainer", "EGRerankTrainer", "CoRRTrainer", "TrustedCheckpointMixin", "with_trusted_checkpoints",
           "get_trainer"]
