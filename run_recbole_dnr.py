"""Train and evaluate a model: ``python run_recbole_dnr.py --model=PRM --dataset=ml-100k``.

Any ``--key=value`` is passed into the config (RecBole's command-line convention).
``--nproc=2`` trains in 2 processes on this machine (gloo on CPU, nccl on GPU); with
``--world_size``, ``--ip``, ``--port`` and ``--group_offset`` the processes of several machines
form one run (docs/distributed.md). ``--resume`` continues an interrupted run of the same
command from its last evaluated epoch (docs/reliability.md).
"""

import argparse
import sys

import yaml

from recbole_dnr.quick_start import run
from recbole_dnr.utils import UserInputError

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "-m", type=str, default=None, help="model name, e.g. PRM, DNR_PRM, Retriever")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name, e.g. ml-100k (bundled)")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated yaml files")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    parser.add_argument("--ip", type=str, default="localhost", help="address of the machine running rank 0")
    parser.add_argument("--port", type=str, default="5678", help="free TCP port on the rank-0 machine")
    parser.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first process")
    parser.add_argument("--resume", nargs="?", const="True", default=None, metavar="True|False",
                        help="continue this run from its last evaluated epoch if it was interrupted")
    args, rest = parser.parse_known_args()
    sys.argv = sys.argv[:1] + rest  # RecBole's Config reads sys.argv: the launcher's options are not config keys
    files = args.config_files.strip().split(" ") if args.config_files else None
    try:
        run(model=args.model, dataset=args.dataset, config_file_list=files, nproc=args.nproc,
            config_dict=None if args.resume is None else {"resume": yaml.safe_load(args.resume)},
            world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset)
    except UserInputError as err:  # a usage mistake: the message is the fix; bugs keep their traceback
        raise SystemExit(f"error: {err}")
