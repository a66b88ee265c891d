"""``python -m recbole_dnr.serve --model_file=saved/PRM-....pth [--host=127.0.0.1] [--port=8080]``:
the HTTP service, as ``recbole-dnr serve`` (:func:`recbole_dnr.serve.cli.serve_main`)."""

from recbole_dnr.serve.cli import serve_main

if __name__ == "__main__":
    serve_main(prog="python -m recbole_dnr.serve")
