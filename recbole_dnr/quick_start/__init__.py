"""Entry points (RecBole-GNN's quick_start shape)."""

from recbole_dnr.quick_start.load import load_data_and_model
from recbole_dnr.quick_start.quick_start import (TrainingStopped, build, objective_function, run, run_recbole_dnr,
                                                 save_predictions)

__all__ = ["TrainingStopped", "build", "load_data_and_model", "objective_function", "run", "run_recbole_dnr",
           "save_predictions"]
