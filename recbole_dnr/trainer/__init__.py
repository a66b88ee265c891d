"""Trainers: ListTrainer for rerankers, DNRTrainer for DNR's two-phase schedule."""

from recbole_dnr.trainer.dnr_trainer import DNRTrainer
from recbole_dnr.trainer.list_trainer import ListTrainer

__all__ = ["ListTrainer", "DNRTrainer"]
