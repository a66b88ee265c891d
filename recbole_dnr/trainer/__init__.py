"""Trainers: ListTrainer for rerankers, DNRTrainer for DNR's two-phase schedule, EGRerankTrainer
for EGRerank's evaluator-then-generator phases, CoRRTrainer
for the jointly trained retriever and ranker, and a
checkpoint-loading fix for RecBole's own trainers."""

from recbole_dnr import compat
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


__all__ = ["ListTrainer", "DNRTrainer", "EGRerankTrainer", "CoRRTrainer", "TrustedCheckpointMixin", "with_trusted_checkpoints"]
