"""Hyper-parameter search (``run_hyper.py``): RecBole's params-file format, Optuna or RecBole's HyperTuning."""

from recbole_dnr.hyper.search import search  # noqa: F401
