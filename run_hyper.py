"""Hyper-parameter search: ``python run_hyper.py --config_files=fixed.yaml --params_file=space.hyper``.

The same as the installed ``recbole-dnr-hyper`` command (``recbole_dnr/hyper/cli.py``).
"""

import sys

from recbole_dnr.hyper.cli import main

if __name__ == "__main__":
    sys.exit(main())
