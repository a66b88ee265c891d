"""``python -m recbole_dnr.serve --model_file=saved/PRM-....pth [--host=127.0.0.1] [--port=8080]``."""

import argparse
import sys

from recbole_dnr.errors import UserInputError, missing_extra


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_dnr.serve",
                                     description="Serve a trained pipeline over HTTP: POST /recommend, POST "
                                                 "/rerank, GET /health (docs/serving.md).")
    parser.add_argument("--model_file", required=True, help="a checkpoint saved by recbole-dnr training")
    parser.add_argument("--data_path", default=None, help="folder of the dataset's atomic files, if they moved")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max_batch", type=int, default=512, help="most users scored in one reranker call")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    try:
        from recbole_dnr.serve.http import create_app
        from recbole_dnr.serve.recommender import Recommender

        try:
            import uvicorn
        except ImportError:
            raise missing_extra("the HTTP service needs FastAPI and uvicorn", "fastapi uvicorn", "serve") from None
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        app = create_app(Recommender.load(args.model_file, data_path=args.data_path), max_batch=args.max_batch)
    except UserInputError as err:
        sys.exit(f"error: {err}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
