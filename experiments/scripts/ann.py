"""ANN (FAISS) against the exact blocked top-k: recall@k, queries/s, index memory, build time.

    python experiments/scripts/ann.py --catalogue ml-1m-u1to2999 --data_path ../shared/data \
        --out experiments/results/ann_ml-1m-u1to2999.json
    python experiments/scripts/ann.py --catalogue synthetic --n_items 1000000 \
        --out experiments/results/ann_synthetic-1M.json

ml-1m-u1to2999: the 128-d BPR retriever of the benchmark lists (trained on the training period,
list seed 2020; cached beside the lists), one query per test request, the user's earlier ratings
excluded (what ``list_mode: retrieve`` does). synthetic: ``--n_items`` unit-norm-ish 128-d item
vectors around 1,000 Gaussian centres (real embeddings are clustered; isotropic noise is ANN's worst
case), queries drawn the same way, no exclusions. Recall@k = |ANN top-k ∩ exact top-k| / k, mean
over queries. Times are single runs on this machine's threads (``--threads``).
"""

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout

from recbole_dnr.retrieval import recbole_retriever, topk  # noqa: E402
from recbole_dnr.retrieval import ann  # noqa: E402

SETTINGS = [  # (label, settings over the yaml defaults)
    ("ivf nprobe 8", {"ann_index": "ivf", "ann_nprobe": 8}),
    ("ivf nprobe 16 (default)", {"ann_index": "ivf", "ann_nprobe": 16}),
    ("ivf nprobe 64", {"ann_index": "ivf", "ann_nprobe": 64}),
    ("hnsw M 32, ef 128 (default)", {"ann_index": "hnsw"}),
]
DEFAULTS = {"ann_index": "ivf", "ann_nlist": 0, "ann_nprobe": 16, "ann_hnsw_m": 32, "ann_ef_search": 128,
            "ann_ef_construction": 200}


def ml1m(args):
    from recbole_dnr.config import Config
    from recbole_dnr.data import create_dataset
    from recbole_dnr.data.builder import ListBuilder
    from recbole_dnr import protocol

    cfg = {"state": "ERROR", "show_progress": False, "gpu_id": "", "seed": 2020, "list_mode": "retrieve",
           "data_path": args.data_path, "drop_no_positive_eval": False}
    config = Config("Retriever", args.catalogue, [os.path.join(ROOT, "experiments", "grids", "bench.yaml")], cfg)
    ds = create_dataset(config)
    embs = ListBuilder(ds).retriever_embeddings()  # the holdout BPR of the lists (trained once, cached)
    starts, splits, _ = ds.request_layout()
    req = np.flatnonzero(splits == 2)  # test requests
    _, log_users, log_items, _, _ = ds.log_arrays()
    r_users = log_users[starts[req]]
    query, item_emb = recbole_retriever.queries(embs, req, r_users)
    lo = protocol.user_bounds(log_users)[r_users]
    return query, item_emb, lo, starts[req], log_items


def synthetic(args):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(1000, args.dim, generator=g)
    item = centres[torch.randint(0, 1000, (args.n_items,), generator=g)] + 0.7 * torch.randn(args.n_items, args.dim,
                                                                                          generator=g)
    item /= np.sqrt(args.dim)
    query = centres[torch.randint(0, 1000, (args.queries,), generator=g)] + 0.7 * torch.randn(args.queries, args.dim,
                                                                                           generator=g)
    item[0] = 0  # the padding row
    none = np.zeros(args.queries, dtype=np.int64)
    return query, item, none, none, np.zeros(1, dtype=np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", default="synthetic")
    parser.add_argument("--data_path", default="../shared/data")
    parser.add_argument("--n_items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--kinds", nargs="*", default=None, help="labels of SETTINGS to run (default all)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    query, item_emb, lo, hi, log_items = synthetic(args) if args.catalogue == "synthetic" else ml1m(args)
    R, k = len(query), args.k
    rows = np.arange(R)
    t = time.perf_counter()
    exact = topk.topk_unseen(query, item_emb, rows, lo, hi, log_items, k)
    t_exact = time.perf_counter() - t
    n_items = item_emb.shape[0]
    result = {"catalogue": args.catalogue, "items": int(n_items - 1), "dim": int(item_emb.shape[1]), "queries": R,
              "k": k, "threads": args.threads, "torch": torch.__version__,
              "exact": {"queries_per_s": R / t_exact, "seconds": t_exact,
                        "score_block_mib": min(1024, max(1, (256 << 20) // (4 * n_items))) * 4 * n_items / 2**20,
                        "vectors_mib": 4 * n_items * item_emb.shape[1] / 2**20},
              "ann": []}
    print(f"exact: {R / t_exact:,.0f} queries/s", flush=True)
    import faiss

    for label, over in SETTINGS:
        if args.kinds and label not in args.kinds:
            continue
        settings = dict(DEFAULTS, **over)
        t = time.perf_counter()
        index = ann.AnnIndex(item_emb, settings, threads=args.threads)
        build = time.perf_counter() - t
        t = time.perf_counter()
        got = ann.topk_unseen(index, query, lo, hi, log_items, k,
                              exact=lambda r: topk.topk_unseen(query, item_emb, r, lo[r], hi[r], log_items, k))
        search = time.perf_counter() - t
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact.tolist(), got.tolist())]))
        row = {"setting": label, **settings, "build_s": build, "queries_per_s": R / search, "recall_at_k": recall,
               "index_mib": faiss.serialize_index(index.index).nbytes / 2**20,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        result["ann"].append(row)
        print(json.dumps(row), flush=True)
        del index
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
