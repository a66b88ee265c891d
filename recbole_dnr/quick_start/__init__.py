"""Entry points (RecBole-GNN's quick_start shape)."""

from recbole_dnr.quick_start.load import load_data_and_model
from recbole_dnr.quick_start.quick_start import (BuiltRun, TrainingStopped, build, fit_and_test, objective_function,
                                                 run, run_recbole_dnr, save_predictions)
from recbole_dnr.quick_start.result import RunResult

__all__ = ["BuiltRun", "RunResult", "TrainingStopped", "build", "fit_and_test", "load_data_and_model",
           "objective_function", "run", "run_recbole_dnr", "save_predictions"]
