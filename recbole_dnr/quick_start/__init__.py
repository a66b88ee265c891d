from recbole_dnr.quick_start.quick_start import build, objective_function, run_recbole_dnr, save_predictions

__all__ = ["build", "run_recbole_dnr", "objective_function", "save_predictions"]
