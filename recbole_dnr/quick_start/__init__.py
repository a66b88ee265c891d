from recbole_dnr.quick_start.quick_start import build, objective_function, run, run_recbole_dnr, save_predictions
