"""Train and evaluate a model: ``python run_recbole_dnr.py --model=PRM --dataset=ml-100k``.

Any ``--key=value`` is passed into the config (RecBole's command-line convention).
"""

import argparse

from recbole_dnr.quick_start import run_recbole_dnr
from recbole_dnr.utils import UserInputError

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "-m", type=str, default=None, help="model name, e.g. PRM, DNR_PRM, Retriever")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name, e.g. ml-100k (bundled)")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated yaml files")
    args, _ = parser.parse_known_args()
    files = args.config_files.strip().split(" ") if args.config_files else None
    try:
        run_recbole_dnr(model=args.model, dataset=args.dataset, config_file_list=files)
    except UserInputError as err:  # a usage mistake: the message is the fix; bugs keep their traceback
        raise SystemExit(f"error: {err}")
