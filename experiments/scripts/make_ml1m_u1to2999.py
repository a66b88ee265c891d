"""Rebuild the ``ml-1m-u1to2999`` dataset (MovieLens-1M, users 1-2999) from RecBole's ``ml-1m``.

    python experiments/scripts/make_ml1m_u1to2999.py                     # dataset/ml-1m -> dataset/ml-1m-u1to2999
    python experiments/scripts/make_ml1m_u1to2999.py --data_path=/data   # /data/ml-1m -> /data/ml-1m-u1to2999

``ml-1m`` is downloaded first (RecBole's url.yaml, as ``recbole-dnr --dataset=ml-1m`` does) when
``<data_path>/ml-1m/ml-1m.inter`` is missing. The subset keeps every rating of users 1-2999 (the
first 487,650 lines of ML-1M's ratings, in their order), every movie, and users 1-2999; the lines
are copied byte for byte. Each written file's sha256 is compared with the one the results were
computed on (docs/benchmarks.md, "Datasets"); exit status 1 on a mismatch.
"""

import argparse
import hashlib
import os
import shutil
import sys

NAME = "ml-1m-u1to2999"
LAST_USER = 2999
SHA256 = {  # the files the results on ml-1m-u1to2999 were computed on
    f"{NAME}.inter": "79c36434f1e2a632a97a426a3ab9661363584ee343b0bb1f58a2311dcc529b69",
    f"{NAME}.item": "6eff097333db47adf003039eb90cb6ab13978fa9577d915d2366e4d073844dc3",
    f"{NAME}.user": "df14ff2d466a4ea11fe7d0f3fdf32c9f2a5530929d0170f11ba3c6d8ff4b68e3",
}


def ensure_ml1m(data_path):
    """``<data_path>/ml-1m``, downloaded as a training run would when its ``.inter`` is missing."""
    folder = os.path.join(data_path, "ml-1m")
    config = {"dataset": "ml-1m", "data_path": folder, "download": True, "download_url": None,
              "download_timeout": None}
    from recbole_dnr.data.download import download_dataset, download_source

    url = download_source(config)
    if url is not None:
        download_dataset(config, url)
    return folder


def users_up_to(src, dst, last_user):
    """Copy the header and the lines of ``src`` whose first field (the user id) is <= ``last_user``."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(fin.readline())
        for line in fin:
            if int(line.split(b"\t", 1)[0]) <= last_user:
                fout.write(line)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make(source, out):
    """Write the subset of the RecBole atomic files in ``source`` (``ml-1m.*``) to ``out``; returns
    ``{file name: (sha256, expected sha256)}``."""
    os.makedirs(out, exist_ok=True)
    users_up_to(os.path.join(source, "ml-1m.inter"), os.path.join(out, f"{NAME}.inter"), LAST_USER)
    shutil.copyfile(os.path.join(source, "ml-1m.item"), os.path.join(out, f"{NAME}.item"))  # every movie
    users_up_to(os.path.join(source, "ml-1m.user"), os.path.join(out, f"{NAME}.user"), LAST_USER)
    return {name: (sha256(os.path.join(out, name)), want) for name, want in SHA256.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", default="dataset", help="the folder holding ml-1m/ (default: dataset)")
    args = parser.parse_args(argv)
    got = make(ensure_ml1m(args.data_path), os.path.join(args.data_path, NAME))
    for name, (digest, want) in got.items():
        print(f"{digest}  {name}  {'ok' if digest == want else 'DIFFERS from ' + want}")
    if any(digest != want for digest, want in got.values()):
        print("error: the files differ from those the results were computed on", file=sys.stderr)
        return 1
    print(f"{os.path.join(args.data_path, NAME)}/ is ready: recbole-dnr --dataset={NAME} --data_path={args.data_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
