"""Serving benchmark (docs/performance.md, "Serving"): end-to-end ``recommend`` latency and
throughput per model, eager vs exported reranker, FAISS IVF over a synthetic 1M-item catalogue,
and an HTTP load test with a soak.

    python experiments/scripts/serve.py models --data_path ../shared/data        # train the 4 checkpoints
    python experiments/scripts/serve.py bench  --data_path ../shared/data --out experiments/results/serve/bench.json
    python experiments/scripts/serve.py http   --out experiments/results/serve/http.json --clients 8 --seconds 60 --soak 300
    python experiments/scripts/serve.py probe  --out experiments/results/serve/http_probe.json --clients 8 --threads 1
    python experiments/scripts/serve.py options --data_path ../shared/data --out experiments/results/serve/options.json
    python experiments/scripts/serve.py report --results experiments/results/serve   # prints the markdown tables

Latency does not depend on the weights' values, so the checkpoints are 1-epoch runs (the same
architecture and sizes as the benchmark's: 64-d, n = 50, H = 50) on ml-1m-u1to2999 with a holdout
BPR retriever (128-d). Every timing runs in one process with ``torch.set_num_threads(--threads)``.
"""

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

MODELS = {  # name -> config
    "Retriever": {"model": "Retriever", "epochs": 0},
    "PRM": {"model": "PRM"},
    "DNR_PRM": {"model": "DNR_PRM"},
    "SASRec (reranker)": {"model": "SASRec", "list_mode": "slate"},
}
# the backbone options (docs/models.md), one request end to end against PRM at its defaults
OPTIONS = {
    "PRM": {"model": "PRM"},
    "PRM, transformer history": {"model": "PRM", "history_encoder": "transformer"},
    "PRM, L3+x options": {"model": "PRM", "history_encoder": "transformer", "history_feedback": False,
                          "user_interaction": "product", "embedding_init_std": 0.02},
    "PRM, L3+x options + features": {"model": "PRM", "history_encoder": "transformer", "history_feedback": False,
                                     "user_interaction": "product", "embedding_init_std": 0.02,
                                     "config_files": ["features-ml-1m-u1to2999"]},
}
COMMON = {"dataset": "ml-1m-u1to2999", "epochs": 1, "hidden_size": 64, "inner_size": 64, "retriever_fit": "holdout",
          "checkpoint_dir": "saved/serve-bench", "state": "WARNING", "show_progress": False}


def _pct(values, q):
    return float(np.percentile(np.asarray(values) * 1e3, q))


def cmd_models(args):
    from recbole_dnr.quick_start import objective_function

    index = {}
    for name, cfg in MODELS.items():
        result = objective_function({**COMMON, **cfg, "data_path": args.data_path})
        index[name] = result["model_file"]
        print(name, result["model_file"], result["test_result"].get("ndcg@6"), flush=True)
    os.makedirs(COMMON["checkpoint_dir"], exist_ok=True)
    with open(os.path.join(COMMON["checkpoint_dir"], "models.json"), "w") as f:
        json.dump(index, f, indent=1)


def _models():
    path = os.path.join(COMMON["checkpoint_dir"], "models.json")
    if not os.path.isfile(path):
        sys.exit(f"{path} missing: run `python experiments/scripts/serve.py models --data_path ...` first")
    return json.load(open(path))


def _time(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def latency_row(rec, users, repeat, batches):
    """One request (p50/p99 ms), the time split retrieve / rerank, and users/s at each batch size."""
    rng = np.random.default_rng(0)
    one = [[u] for u in rng.choice(users, size=repeat)]
    for u in one[:20]:  # warm-up
        rec.recommend(u, k=6)
    t_all = []
    for u in one:
        t = time.perf_counter()
        rec.recommend(u, k=6)
        t_all.append(time.perf_counter() - t)
    split = rec.timings(one[0], repeat)  # retrieve (top-n over the catalogue) vs the reranker forward
    row = {"p50_ms": _pct(t_all, 50), "p99_ms": _pct(t_all, 99), "retrieve_p50_ms": split["retrieve"],
           "forward_p50_ms": split["rerank"]}
    for b in batches:
        group = list(rng.choice(users, size=b, replace=len(users) < b))
        rec.recommend(group, k=6)
        t = _time(lambda: rec.recommend(group, k=6), max(3, 2048 // b))
        row[f"users_per_s_b{b}"] = b / float(np.median(t))
    return row


def cmd_bench(args):
    from recbole_dnr import Recommender
    from recbole_dnr.serve import export

    torch.set_num_threads(args.threads)
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads",
           "torch": torch.__version__, "command": " ".join(sys.argv), "models": {}, "export": {}, "synthetic": {}}
    recs = {}
    for name, path in _models().items():
        rec = recs[name] = Recommender.load(path, data_path=args.data_path)
        users = rec.user_ids
        out["models"][name] = latency_row(rec, users, args.repeat, [64, 512])
        print(name, json.dumps(out["models"][name]), flush=True)
    if "PRM" in out["models"] and "DNR_PRM" in out["models"]:
        a, b = out["models"]["DNR_PRM"], out["models"]["PRM"]
        out["dnr_over_prm"] = {k: a[k] / b[k] for k in ("p50_ms", "forward_p50_ms")}
    # eager vs exported reranker: forward only, batch 1 and 64, and end to end through use_scorer
    for name in ("PRM", "DNR_PRM"):
        rec = recs[name]
        users = rec.user_ids[:64]
        path = export.export_onnx(rec, os.path.join(COMMON["checkpoint_dir"], f"{name}.onnx"))
        ort = export.OnnxReranker(path, threads=args.threads)
        row = {}
        for b in (1, 64):
            batch = rec.batch_tensors(users[:b])
            with torch.no_grad():
                eager = rec.model.predict(batch)
                t_e = _time(lambda: rec.model.predict(batch), args.repeat)
            got = torch.as_tensor(ort.scores(batch))
            t_o = _time(lambda: ort.scores(batch), args.repeat)
            row[f"b{b}"] = {"eager_p50_ms": _pct(t_e, 50), "onnx_p50_ms": _pct(t_o, 50),
                            "max_abs_diff": float((got - eager).abs().max())}
        rec.use_scorer(ort.scores)
        t1 = _time(lambda: rec.recommend(users[:1], k=6), args.repeat)
        rec.use_scorer(None)
        row["recommend_onnx_p50_ms"], row["recommend_onnx_p99_ms"] = _pct(t1, 50), _pct(t1, 99)
        out["export"][name] = row
        print(name, "export", json.dumps(row), flush=True)
    out["synthetic"] = synthetic(recs["PRM"], args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


def synthetic(rec, args):
    """Retrieve from 1M synthetic 128-d item vectors (FAISS IVF, default nlist/nprobe), then rerank
    the 50 candidates with the trained PRM: a candidate's id is mapped onto the trained catalogue
    (id mod items), since the reranker's cost does not depend on which items it reads."""
    from recbole_dnr.data.candidates import ann_index, topk_unseen

    rng = np.random.default_rng(0)
    n_items, d = args.n_items, rec.vectors[1].shape[1]
    centres = rng.standard_normal((1000, d)).astype(np.float32)
    items = torch.as_tensor(centres[rng.integers(1000, size=n_items)] + 0.5 * rng.standard_normal((n_items, d),
                                                                                                 dtype=np.float32))
    queries = torch.as_tensor(rng.standard_normal((len(rec.user_ids) + 1, d), dtype=np.float32))
    config = {k: rec.config[k] for k in ("ann_index", "ann_nlist", "ann_nprobe", "ann_hnsw_m", "ann_ef_search",
                                         "ann_ef_construction")}
    config.update(retriever_search="ann", ann_index="ivf")
    t = time.perf_counter()
    index = ann_index(config, items)
    build = time.perf_counter() - t
    n_real = rec.vectors[1].shape[0] - 1
    users = rng.integers(1, len(rec.user_ids) + 1, size=args.repeat)

    def one(u):
        hist = rec._history(u, None)
        excl = hist[0] * 7919 % (n_items - 1) + 1  # the user's history, spread over the big catalogue
        cand = topk_unseen(config, queries[[u]], items, np.array([0]), np.array([len(excl)]), excl, rec.n, index=index)
        logits = torch.einsum("d,nd->n", queries[u], items[torch.as_tensor(cand[0])]).numpy()[None]
        lists = rec.score_lists(np.array([u]), (cand - 1) % n_real + 1, logits, [hist])
        return torch.topk(lists.scores, 6).indices

    for u in users[:20]:
        one(u)
    lat = []
    ret = []
    for u in users:
        t = time.perf_counter()
        hist = rec._history(u, None)
        excl = hist[0] * 7919 % (n_items - 1) + 1
        topk_unseen(config, queries[[u]], items, np.array([0]), np.array([len(excl)]), excl, rec.n, index=index)
        ret.append(time.perf_counter() - t)
        t = time.perf_counter()
        one(u)
        lat.append(time.perf_counter() - t)
    row = {"items": n_items, "dim": d, "index": f"IVF nlist {index.index.nlist}, nprobe {index.index.nprobe}",
           "build_s": build, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "retrieve_p50_ms": _pct(ret, 50)}
    print("synthetic", json.dumps(row), flush=True)
    return row


async def _load(base, users, clients, seconds, k=6):
    import httpx

    lat, errors = [], 0
    stop = time.perf_counter() + seconds
    rng = np.random.default_rng(1)

    async def client(i):
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            while time.perf_counter() < stop:
                body = {"user_ids": [str(rng.choice(users))], "k": k}
                t = time.perf_counter()
                try:
                    r = await c.post("/recommend", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t)
                errors += not ok

    await asyncio.gather(*(client(i) for i in range(clients)))
    return lat, errors


def _rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_server(args, path):
    """``python -m recbole_dnr.serve`` in a subprocess, once it answers ``/health``: ``(process, base url)``."""
    import httpx

    server = subprocess.Popen([sys.executable, "-m", "recbole_dnr.serve", f"--model_file={path}", f"--port={args.port}",
                               f"--threads={args.threads}"] + ([f"--data_path={args.data_path}"] if args.data_path
                                                               else []))
    base = f"http://127.0.0.1:{args.port}"
    for _ in range(600):
        try:
            httpx.get(base + "/health")
            break
        except httpx.TransportError:
            time.sleep(0.2)
    return server, base


def cmd_http(args):

    from recbole_dnr import Recommender

    path = _models()[args.model]
    rec = Recommender.load(path, data_path=args.data_path)
    users = rec.user_ids
    torch.set_num_threads(1)  # the server gets the other core(s)
    server, base = _start_server(args, path)
    try:
        # one client, one request at a time: HTTP + JSON overhead over the in-process call
        lat1, err1 = asyncio.run(_load(base, users, 1, args.seconds / 2))
        rss0 = _rss_mib(server.pid)
        lat, errors = asyncio.run(_load(base, users, args.clients, args.seconds))
        soak_lat, soak_err = asyncio.run(_load(base, users, args.clients, args.soak)) if args.soak else ([], 0)
        rss1 = _rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = {"model": args.model, "command": " ".join(sys.argv), "server_threads": args.threads,
           "single_client": {"requests": len(lat1), "errors": err1, "p50_ms": _pct(lat1, 50), "p99_ms": _pct(lat1, 99)},
           "load": {"clients": args.clients, "seconds": args.seconds, "requests": len(lat), "errors": errors,
                    "per_s": len(lat) / args.seconds, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99)},
           "soak": {"seconds": args.soak, "requests": len(soak_lat), "errors": soak_err,
                    "rss_before_mib": rss0, "rss_after_mib": rss1}}
    print(json.dumps(out, indent=1))
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


def cmd_probe(args):
    """Where HTTP's time goes and whether RSS is flat: one keep-alive synchronous client timing
    ``GET /health`` (transport + framework, no model) and ``POST /recommend`` (2,000 each after 200
    warm-up), then RSS after each of four minutes of ``--clients`` concurrent clients."""
    import httpx

    from recbole_dnr import Recommender

    path = _models()[args.model]
    users = Recommender.load(path, data_path=args.data_path).user_ids
    server, base = _start_server(args, path)
    out = {"model": args.model, "command": " ".join(sys.argv), "server_threads": args.threads}
    try:
        with httpx.Client(base_url=base) as c:
            calls = {"health": lambda: c.get("/health"),
                     "recommend": lambda: c.post("/recommend", json={"user_ids": ["10"], "k": 6})}
            for name, fn in calls.items():
                _time(fn, 200)
                out[f"{name}_p50_ms"] = _pct(_time(fn, 2000), 50)
        rss = []
        for _ in range(4):
            asyncio.run(_load(base, users, args.clients, 60))
            rss.append(_rss_mib(server.pid))
        out["rss_after_each_minute_mib"] = rss
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(out, indent=1))
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


def cmd_options(args):
    """One request end to end per backbone option set (1-epoch checkpoints), timed round-robin in rounds
    so a busy machine slows every variant alike."""
    from recbole_dnr import Recommender
    from recbole_dnr.quick_start import objective_function

    torch.set_num_threads(args.threads)
    index_path = os.path.join(COMMON["checkpoint_dir"], "options.json")
    index = json.load(open(index_path)) if os.path.isfile(index_path) else {}
    for name, cfg in OPTIONS.items():
        if name not in index:
            cfg = dict(cfg)
            files = cfg.pop("config_files", None)
            result = objective_function({**COMMON, **cfg, "data_path": args.data_path}, config_file_list=files)
            index[name] = result["model_file"]
            os.makedirs(COMMON["checkpoint_dir"], exist_ok=True)
            with open(index_path, "w") as f:
                json.dump(index, f, indent=1)
    recs = {name: Recommender.load(path, data_path=args.data_path) for name, path in index.items() if name in OPTIONS}
    rng = np.random.default_rng(0)
    users = list(rng.choice(next(iter(recs.values())).user_ids, size=args.repeat))
    times = {name: [] for name in recs}
    for name, rec in recs.items():  # warm-up
        for u in users[:20]:
            rec.recommend([u], k=6)
    rounds = 5
    for r in range(rounds):
        for name, rec in recs.items():
            for u in users[r::rounds]:
                t = time.perf_counter()
                rec.recommend([u], k=6)
                times[name].append(time.perf_counter() - t)
    base = float(np.median(times["PRM"]))
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads",
           "torch": torch.__version__, "command": " ".join(sys.argv), "requests": args.repeat, "rounds": rounds,
           "models": {name: {"p50_ms": _pct(t, 50), "p99_ms": _pct(t, 99), "p50_ratio": float(np.median(t)) / base}
                      for name, t in times.items()}}
    for name, row in out["models"].items():
        print(f"{name:32s} p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  (x{row['p50_ratio']:.2f})", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


def cmd_report(args):
    bench = json.load(open(os.path.join(args.results, "bench.json")))
    print("| model | one request p50 (ms) | p99 (ms) | retrieve p50 | reranker forward p50 | users/s, batch 64 | "
          "users/s, batch 512 |\n|---|---|---|---|---|---|---|")
    for name, r in bench["models"].items():
        print(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['retrieve_p50_ms']:.2f} | {r['forward_p50_ms']:.2f} "
              f"| {r['users_per_s_b64']:,.0f} | {r['users_per_s_b512']:,.0f} |")
    print("\n| reranker | batch | eager p50 (ms) | ONNX Runtime p50 (ms) | ratio | max abs diff |\n|---|---|---|---|---|---|")
    for name, r in bench["export"].items():
        for b in ("b1", "b64"):
            e = r[b]
            print(f"| {name} | {b[1:]} | {e['eager_p50_ms']:.2f} | {e['onnx_p50_ms']:.2f} | "
                  f"{e['onnx_p50_ms'] / e['eager_p50_ms']:.2f} | {e['max_abs_diff']:.1e} |")
    s = bench["synthetic"]
    print(f"\nsynthetic: {json.dumps(s)}")
    print(f"DNR_PRM / PRM: {json.dumps(bench.get('dnr_over_prm'))}")
    path = os.path.join(args.results, "http.json")
    if os.path.isfile(path):
        print(json.dumps(json.load(open(path)), indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["models", "bench", "http", "probe", "options", "report"])
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--out", default="experiments/results/serve/bench.json")
    parser.add_argument("--results", default="experiments/results/serve")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--n_items", type=int, default=1_000_000)
    parser.add_argument("--model", default="PRM")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--soak", type=float, default=300)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    {"models": cmd_models, "bench": cmd_bench, "http": cmd_http, "probe": cmd_probe,
     "options": cmd_options, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
