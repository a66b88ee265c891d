"""One-command benchmark (``python -m recbole_dnr.benchmark --config <grid.yaml>``): grid spec,
one process per cell, resumable results, report with tables and plots."""
