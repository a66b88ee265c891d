"""Where the time goes, and how close each hot path gets to this machine's limit (docs/performance.md).

One process measures everything, so ratios share one machine state; timed variants run
round-robin ``--repeats`` times after a discarded warm-up round and the median is kept.
``fast_path: False`` is the code before issue 6 (torch's dropout and encoder training path,
RecBole's DataLoader), ``retriever_loader: recbole`` its list build.

    python experiments/scripts/perf.py --dataset ml-1m-u1to2999 --data_path ../shared/data \\
        --out experiments/results/perf_ml1m.json            # all sections
    python experiments/scripts/perf.py ... --sections gemm train     # some of them
    python experiments/scripts/perf.py --markdown experiments/results/perf_ml1m.json   # tables for the doc

Sections: gemm (fp32 ceiling), train (lists/s, FLOPs, share of the ceiling), profile (time shares
of one training step and of evaluation), lists (list build phases, scoring vs the top-k floor,
peak RSS), scale (epoch time and memory against the number of users), corr (CoRR's training step
by part and its evaluation against the independent BPR → PRM pipeline's), backbones (each list
backbone's training step against its FLOPs: is a dearer backbone overhead or compute?).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout

from recbole_dnr.data import dataset as list_dataset  # noqa: E402
from recbole_dnr import protocol  # noqa: E402
from recbole_dnr.retrieval import recbole_retriever, topk  # noqa: E402
from recbole_dnr.data.dataloader import ListDataLoader  # noqa: E402
from recbole_dnr.data.dataset import RequestSet
from recbole_dnr.fields import LABEL, SCORE, SLATE_MASK  # noqa: E402
from recbole_dnr.quick_start import build  # noqa: E402

SECTIONS = ["gemm", "train", "profile", "lists", "scale", "corr", "backbones"]
PATHS = {"before": {"fast_path": False}, "fast": {}, "fast, attn dropout 0": {"attn_dropout_prob": 0.0}}
MODELS = {"PRM late": ("PRM", {}), "DNR_PRM late": ("DNR-G", {}),
          "PRM early": ("PRM-early", {}), "DNR_PRM early": ("DNR-G-early", {})}
SIZES = {"64-d (benchmark)": {}, "128-d (default)": {"hidden_size": 128, "inner_size": 128}}
# experiments/grids/corr.yaml's protocol: the retriever's top-50 unseen items, every valid/test request kept
CORR_LISTS = {"list_mode": "retrieve", "drop_no_positive_eval": False, "eval_positives": "window"}


# ------------------------------------------------------------------ helpers
class PeakRSS:
    """Peak resident memory (MiB) of this process while the block runs (sampled every 50 ms)."""

    def __enter__(self):
        self.peak, self._stop = _rss(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def round_robin(jobs, repeats):
    """``{name: median seconds}`` of ``jobs`` ``{name: fn}``, run in turn; round 0 is a warm-up."""
    runs = {name: [] for name in jobs}
    for rep in range(repeats + 1):
        for name, fn in jobs.items():
            sec, _ = timed(fn)
            if rep:
                runs[name].append(sec)
    return {name: statistics.median(v) for name, v in runs.items()}, runs


def setup(args, variant, **over):
    cfg = {"dataset": args.dataset, "seed": 2020, "show_progress": False, "state": "WARNING", **over}
    if args.data_path:
        cfg["data_path"] = args.data_path
    files = [os.path.join(ROOT, "properties", "experiments", variant + ".yaml"),
             os.path.join(ROOT, "experiments", "grids", "bench.yaml")]
    return build(config_file_list=files, config_dict=cfg)


def subset(ds, split, n):
    return RequestSet(ds, split._dataset.inter[torch.arange(min(n, len(split._dataset)))], split._dataset.phase)


def flops_per_list(trainer, batch, phase_epoch):
    """FLOPs of one training step (forward + backward, DNR's φ step included) and of one
    inference forward, per list, counted by torch's FlopCounterMode (matmuls and attention)."""
    model = trainer.model
    loader = [batch]
    with FlopCounterMode(display=False) as fc:
        trainer._train_epoch(loader, phase_epoch)
    train = fc.get_total_flops() / len(batch)
    model.eval()
    # torch's fused inference kernel for encoder layers hides its matmuls from the counter:
    # count the same forward through the unfused path
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.predict(batch)
    torch.backends.mha.set_fastpath_enabled(fastpath)
    return train, fc.get_total_flops() / len(batch)


# ------------------------------------------------------------------ sections
def gemm(args):
    """fp32 GEMM GFLOP/s of torch.matmul at the PRM batch shapes and at a large square shape."""
    B, n, h = 128, 50, 4
    shapes = {}
    for d in (64, 128):
        shapes[f"QKV projection [{B * n},{d}]x[{d},{3 * d}]"] = ((B * n, d), (d, 3 * d))
        shapes[f"FFN/out projection [{B * n},{d}]x[{d},{d}]"] = ((B * n, d), (d, d))
        shapes[f"attention scores [{B * h}x{n},{d // h}]x[{d // h},{n}]"] = ((B * h, n, d // h), (B * h, d // h, n))
    shapes["square [2048,2048]x[2048,2048]"] = ((2048, 2048), (2048, 2048))
    rows = {}
    for name, (sa, sb) in shapes.items():
        a, b = torch.randn(sa), torch.randn(sb)
        flops = 2 * np.prod(sa) * sb[-1]
        reps = max(3, int(2e10 // flops))
        torch.matmul(a, b)
        best = min(timed(lambda: [torch.matmul(a, b) for _ in range(reps)])[0] for _ in range(5)) / reps
        rows[name] = flops / best / 1e9
        print(f"gemm {name:48s} {rows[name]:7.1f} GFLOP/s", flush=True)
    return {"gflops": rows, "ceiling_gflops": rows["square [2048,2048]x[2048,2048]"]}


def train(args, ceiling):
    """Training and evaluation throughput of every model x size x path, round-robin."""
    jobs, evals, meta = {}, {}, {}
    for size, size_over in SIZES.items():
        for model, (variant, over) in MODELS.items():
            for path, path_over in PATHS.items():
                if path.startswith("fast, attn") and "PRM late" != model:
                    continue  # the attention-dropout option is measured on the headline model only
                name = f"{model} | {size} | {path}"
                config, ds, (tr, va, te), net, trainer = setup(args, variant, **size_over, **over, **path_over)
                loader = ListDataLoader(config, subset(ds, tr, args.batches * config["train_batch_size"]),
                                        config["train_batch_size"], shuffle=True)
                ev = ListDataLoader(config, subset(ds, te, args.eval_lists), config["eval_batch_size"])
                epoch = config["lambda_e"] if "DNR" in model else 0  # DNR: the learned phase (the dearer one)
                if "DNR" in model:
                    trainer.model.phase = trainer.phase_for(epoch)
                jobs[name] = (lambda t=trainer, lo=loader, e=epoch: t._train_epoch(lo, e))
                evals[name] = (lambda t=trainer, e=ev: t.predict_lists(e))
                batch = next(iter(loader))
                f_train, f_eval = flops_per_list(trainer, batch, epoch)
                meta[name] = {"train_lists": len(loader._dataset), "eval_lists": len(ev._dataset),
                              "train_flops_per_list": f_train, "eval_flops_per_list": f_eval}
                print(f"built {name}", flush=True)
    t_med, t_runs = round_robin(jobs, args.repeats)
    e_med, e_runs = round_robin(evals, args.repeats)
    rows = {}
    for name in jobs:
        m = meta[name]
        tr_lps, ev_lps = m["train_lists"] / t_med[name], m["eval_lists"] / e_med[name]
        rows[name] = {**m, "train_lists_per_s": tr_lps, "eval_lists_per_s": ev_lps,
                      "train_gflops": tr_lps * m["train_flops_per_list"] / 1e9,
                      "eval_gflops": ev_lps * m["eval_flops_per_list"] / 1e9,
                      "train_runs_s": t_runs[name], "eval_runs_s": e_runs[name]}
        rows[name]["train_of_ceiling"] = rows[name]["train_gflops"] / ceiling
        rows[name]["eval_of_ceiling"] = rows[name]["eval_gflops"] / ceiling
        print(f"{name:52s} train {tr_lps:7.0f} lists/s ({rows[name]['train_gflops']:5.1f} GFLOP/s)  "
              f"eval {ev_lps:7.0f} lists/s", flush=True)
    return rows


def profile(args):
    """Time shares of one PRM (64-d, late) training step, fast and before: each part's forward +
    backward timed alone on the same batch (shares of their sum, which is reported against the
    whole step), plus torch.profiler's op table over 10 real batches; evaluation model vs metrics."""
    out = {}
    for path, over in PATHS.items():
        if path.startswith("fast, attn"):
            continue
        config, ds, (tr, va, te), net, trainer = setup(args, "PRM", **over)
        loader = ListDataLoader(config, subset(ds, tr, args.batches * config["train_batch_size"]),
                                config["train_batch_size"], shuffle=True)
        batch = next(iter(loader))
        model = trainer.model
        model.train()
        d = model.hidden_size
        x = batch[SCORE]
        layer = model.encoder.layers[0]
        tokens = torch.randn(len(batch), x.shape[1], d, requires_grad=True)

        def fwd_bwd(fn):
            def run():
                fn().sum().backward()
            return run

        parts = {
            "batch assembly": lambda: [b for b in loader],
            "embedding/gather (tokens, history)": fwd_bwd(lambda: model.dropout(
                model.item_embedding(batch["item_id"]) + model.history_encoder(batch["history_item"],
                                                                              batch["history_label"]).unsqueeze(1))),
            "attention (all layers)": fwd_bwd(lambda: layer.norm1(tokens + layer._sa_block(tokens, None, None))),
            "feed-forward (all layers)": fwd_bwd(lambda: layer.norm2(tokens + layer._ff_block(tokens))),
            "head + loss": fwd_bwd(lambda: model.list_loss(model.head_logits(tokens, x), batch[LABEL])),
            "optimizer step (clip + Adam)": lambda: (torch.nn.utils.clip_grad_norm_(trainer._theta_params(), 5.0),
                                                     trainer.optimizer.step()),
            "whole step": lambda: trainer._train_epoch([batch], 0),
        }
        for p in model.parameters():  # give the optimizer gradients to apply
            p.grad = torch.zeros_like(p)
        med, _ = round_robin(parts, args.repeats * 3)
        med["batch assembly"] /= len(loader)
        for k in ("attention (all layers)", "feed-forward (all layers)"):  # timed on one layer
            med[k] *= len(model.encoder.layers)
        step = med.pop("whole step")
        parts_sum = sum(med.values())
        shares = {k: v / parts_sum for k, v in med.items()}
        # op-level view of 10 real training batches
        sub = ListDataLoader(config, subset(ds, tr, 10 * config["train_batch_size"]), config["train_batch_size"])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            trainer._train_epoch(sub, 0)
        ops = sorted(((e.key, e.self_cpu_time_total / 1e3 / len(sub)) for e in prof.key_averages()),
                     key=lambda kv: -kv[1])
        total_ops = sum(v for _, v in ops)
        top_ops = {k: v for k, v in ops[:12]}
        # evaluation: the model's forward vs the metrics over the same predictions
        ev = ListDataLoader(config, te._dataset, config["eval_batch_size"])
        t_pred, pred = timed(trainer.predict_lists, ev)
        t_metric, _ = timed(trainer.evaluator.evaluate, pred["scores"], pred[LABEL], pred[SLATE_MASK])
        epoch_s = step * len(tr)
        out[path] = {"step_ms": step * 1e3, "shares": shares, "parts_ms": {k: v * 1e3 for k, v in med.items()},
                     "parts_over_step": parts_sum / step, "top_ops_ms_per_batch": top_ops,
                     "ops_ms_per_batch": total_ops, "eval_predict_s": t_pred, "eval_metrics_s": t_metric,
                     "eval_lists": len(ev._dataset), "epoch_s_est": epoch_s,
                     "eval_split_of_epoch": (t_pred + t_metric) / epoch_s,
                     "metrics_of_epoch": t_metric / epoch_s}
        print(path, json.dumps(out[path], indent=1), flush=True)
    return out


def lists(args):
    """List build by phase for both retriever loaders: retriever training per fold, candidate
    scoring, filler sampling, caching, each with its peak RSS; retrieve-mode top-50 scoring
    against a bare ``torch.topk`` + gather over the same score matrix."""
    out = {}
    originals = {"train": recbole_retriever.train_retriever, "fillers": protocol.sample_fillers, "save": list_dataset.compat.atomic_save}
    for loader in ("recbole", "fast"):
        log = {"retriever_s": [], "retriever_peak_mib": [], "fillers_s": 0.0, "save_s": 0.0}

        def train_retriever(*a, **kw):
            with PeakRSS() as rss:
                sec, res = timed(originals["train"], *a, **kw)
            log["retriever_s"].append(sec)
            log["retriever_peak_mib"].append(rss.peak)
            return res

        def fillers(*a, **kw):
            sec, res = timed(originals["fillers"], *a, **kw)
            log["fillers_s"] += sec
            return res

        def save(*a, **kw):
            sec, res = timed(originals["save"], *a, **kw)
            log["save_s"] += sec
            return res

        # dataset.py calls these through the modules (recbole_retriever., protocol., compat.), so patching them there suffices
        recbole_retriever.train_retriever, protocol.sample_fillers, list_dataset.compat.atomic_save = train_retriever, fillers, save
        shutil.rmtree(os.path.join(args.scratch, loader), ignore_errors=True)  # build from scratch
        try:
            with PeakRSS() as rss:
                sec, built = timed(lambda: setup(args, "Retriever", retriever_loader=loader,
                                                 checkpoint_dir=os.path.join(args.scratch, loader)))
        finally:
            recbole_retriever.train_retriever = originals["train"]
            protocol.sample_fillers, list_dataset.compat.atomic_save = originals["fillers"], originals["save"]
        log.update(total_s=sec, peak_mib=rss.peak, stats=built[2][0].requests.lists.stats,
                   scoring_s=sec - sum(log["retriever_s"]) - log["fillers_s"] - log["save_s"])
        out[loader] = log
        print(loader, json.dumps({k: v for k, v in log.items() if k != "stats"}), flush=True)
    # retrieve mode's top-50 (excluding rated items) against the floor on the same score matrix
    order, users, items, _, _ = ds.log_arrays()
    starts, splits, _ = protocol.cut_requests(users, 6, 5, 5)
    req = starts[: args.topk_requests]
    emb_u, emb_i = torch.randn(int(users.max()) + 1, 128), torch.randn(ds.item_num, 128)
    first = protocol.user_bounds(users)
    r_users = users[req]
    t_ours, _ = timed(topk.topk_unseen, emb_u, emb_i, r_users, first[r_users], req, items, 50)

    def floor():
        for lo in range(0, len(req), 1024):
            s = emb_u[torch.as_tensor(r_users[lo: lo + 1024])] @ emb_i.T
            idx = torch.topk(s, 50, dim=1).indices
            s.gather(1, idx)
    t_floor, _ = timed(floor)
    out["topk"] = {"requests": len(req), "items": ds.item_num, "ours_s": t_ours, "floor_s": t_floor,
                   "ratio": t_ours / t_floor}
    print(json.dumps(out["topk"]), flush=True)
    return out


def scale(args, previous=None):
    """One training epoch and one evaluation pass of PRM and DNR_PRM (64-d, late) on the lists of
    the first 1/4, 1/2 and all users (requests of those users from the full build). Models not in
    ``--scale_models`` keep their rows from ``previous``."""
    res = dict(previous or {})
    for model, variant in (("PRM", "PRM"), ("DNR_PRM", "DNR-G")):
        if model not in args.scale_models:
            continue
        config, ds, (tr, va, te), net, trainer = setup(args, variant)
        users = tr._dataset.inter[config["USER_ID_FIELD"]]
        top = int(users.max())
        for frac in (0.25, 0.5, 1.0):
            keep = torch.nonzero(users <= top * frac).squeeze(1)
            sub = RequestSet(ds, tr._dataset.inter[keep], "train")
            loader = ListDataLoader(config, sub, config["train_batch_size"], shuffle=True)
            epoch = config["lambda_e"] if model != "PRM" else 0
            if model != "PRM":
                trainer.model.phase = trainer.phase_for(epoch)
            with PeakRSS() as rss:
                sec, _ = timed(trainer._train_epoch, loader, epoch)
            res[f"{model} {frac:g}"] = {"lists": len(sub), "epoch_s": sec, "peak_mib": rss.peak,
                                        "s_per_list": sec / len(sub)}
            print(model, frac, json.dumps(res[f"{model} {frac:g}"]), flush=True)
    return res


def corr(args):
    """CoRR (PRM ranker, 64-d) against the independent pipeline it replaces, BPR → PRM, with
    experiments/grids/corr.yaml's settings: each part of one CoRR training step timed alone on the same
    batch of training requests, the whole step against a PRM step on as many fixed lists, both per
    epoch, and one evaluation of the valid split (CoRR first retrieves every list anew)."""
    base = {"seed": 2020, "show_progress": False, "state": "WARNING", **CORR_LISTS}
    if args.data_path:
        base["data_path"] = args.data_path
    files = [os.path.join(ROOT, "experiments", "grids", "bench.yaml")]
    config, _, (tr, va, _), model, trainer = build("CoRR", args.dataset, files,
                                                   {**base, "ranker": "PRM", "retriever_fit": "holdout"})
    pconfig, _, (ptr, pva, _), _, ptrainer = build("PRM", args.dataset, files, base)
    units = ListDataLoader(config, trainer.training_requests(tr._dataset), config["train_batch_size"], shuffle=True)
    batch = next(iter(units))
    pbatch = next(iter(ListDataLoader(pconfig, ptr._dataset, pconfig["train_batch_size"], shuffle=True)))
    model.train()
    model.corr_phase = "joint"
    with torch.no_grad():
        lists, _ = model.sample_lists(batch, model.retriever.all_scores(batch))

    def sample():
        with torch.no_grad():
            model.sample_lists(batch, model.retriever.all_scores(batch))

    step_key, prm_key = "whole CoRR step (joint: ranker + retriever + KD, Adam)", "whole PRM step, independent pipeline"
    parts = {
        "retriever scores s_re [B, I], forward + backward": lambda: model.retriever.all_scores(batch).sum().backward(),
        "sampling: exclusion mask, q ∝ exp(s_re), draws, lists (no grad)": sample,
        "ranker (PRM) forward + backward on the sampled lists": lambda: model.ranker_logits(lists).sum().backward(),
        step_key: lambda: trainer._train_epoch([batch], 0),
        prm_key: lambda: ptrainer._train_epoch([pbatch], 0),
    }
    med, _ = round_robin(parts, args.repeats * 3)
    t_eval, _ = timed(trainer.evaluate, va, load_best_model=False)
    t_peval, _ = timed(ptrainer.evaluate, pva, load_best_model=False)
    t_retrieve, _ = timed(trainer.eval_lists, va)
    out = {"batch": len(batch), "parts_ms": {k: v * 1e3 for k, v in med.items()}, "step_key": step_key,
           "prm_key": prm_key, "corr_batches": len(units), "prm_batches": len(ptr),
           "corr_epoch_s_est": med[step_key] * len(units), "prm_epoch_s_est": med[prm_key] * len(ptr),
           "corr_eval_s": t_eval, "prm_eval_s": t_peval, "corr_retrieve_s": t_retrieve,
           "valid_requests": len(va._dataset)}
    print(json.dumps(out, indent=1), flush=True)
    return out


def backbones(args):
    """Training step time and FLOPs per list of each list backbone at the benchmark settings (the PRM
    variant with ``model`` swapped), round-robin on the same training lists: time ratio vs FLOP ratio."""
    jobs, meta = {}, {}
    for name in args.backbones:
        config, ds, (tr, va, te), net, trainer = setup(args, "PRM", model=name)
        loader = ListDataLoader(config, subset(ds, tr, args.batches * config["train_batch_size"]),
                                config["train_batch_size"], shuffle=True)
        f_train, f_eval = flops_per_list(trainer, next(iter(loader)), 0)
        ops = count_matmuls(trainer, loader)
        jobs[name] = (lambda t=trainer, lo=loader: t._train_epoch(lo, 0))
        meta[name] = {"train_lists": len(loader._dataset), "batches": len(loader), "train_flops_per_list": f_train,
                      "eval_flops_per_list": f_eval, "matmul_calls_per_step": ops}
        print(f"built {name}", flush=True)
    med, runs = round_robin(jobs, args.repeats)
    out = {}
    for name, m in meta.items():
        step = med[name] / m["batches"]
        out[name] = {**m, "step_ms": step * 1e3, "train_runs_s": runs[name],
                     "train_gflops": m["train_lists"] / med[name] * m["train_flops_per_list"] / 1e9}
        print(f"{name:10s} step {step * 1e3:7.1f} ms  {m['train_flops_per_list'] / 1e6:6.1f} MFLOP/list  "
              f"{out[name]['train_gflops']:5.1f} GFLOP/s", flush=True)
    return out


def count_matmuls(trainer, loader):
    """Matrix-product calls (mm, bmm, addmm) in one training step, from torch.profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        trainer._train_epoch([next(iter(loader))], 0)
    return {e.key: e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::bmm", "aten::addmm")}


# ------------------------------------------------------------------ report
def markdown(path):
    res = json.load(open(path))
    print("| section | measured by | machine |\n|---|---|---|")
    for k, r in res.get("runs", {}).items():
        m = r.get("machine")
        where = f"{m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']}, {m['torch_threads']} threads" if m else ""
        how = f"`{r['command']}`" if r.get("command") else r.get("note", "")
        print(f"| {k} | {how} | {where} |")
    print()
    if "gemm" in res:
        print("| GEMM shape | GFLOP/s |\n|---|---|")
        for k, v in res["gemm"]["gflops"].items():
            print(f"| {k} | {v:.1f} |")
        print()
    if "train" in res:
        ceiling = res["gemm"]["ceiling_gflops"]
        print(f"Ceiling: {ceiling:.0f} GFLOP/s (square GEMM above).\n")
        print("| model | size | path | train lists/s | × before | GFLOP/list (train) | train GFLOP/s | of ceiling "
              "| eval lists/s | × before | eval GFLOP/s | of ceiling |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, r in res["train"].items():
            model, size, path = name.split(" | ")
            base = res["train"][f"{model} | {size} | before"]
            print(f"| {model} | {size} | {path} | {r['train_lists_per_s']:.0f} | "
                  f"{r['train_lists_per_s'] / base['train_lists_per_s']:.2f} | {r['train_flops_per_list'] / 1e9:.4f} | "
                  f"{r['train_gflops']:.1f} | {100 * r['train_of_ceiling']:.0f}% | {r['eval_lists_per_s']:.0f} | "
                  f"{r['eval_lists_per_s'] / base['eval_lists_per_s']:.2f} | {r['eval_gflops']:.1f} | "
                  f"{100 * r['eval_of_ceiling']:.0f}% |")
        print()
        print("| size | path | DNR_PRM / PRM train (late) | DNR_PRM / PRM eval (late) | DNR_PRM / PRM train (early) |"
              "\n|---|---|---|---|---|")
        for size in SIZES:
            for path in ("before", "fast"):
                g = lambda mdl, key: res["train"][f"{mdl} | {size} | {path}"][key]
                print(f"| {size} | {path} | {g('PRM late', 'train_lists_per_s') / g('DNR_PRM late', 'train_lists_per_s'):.2f} | "
                      f"{g('PRM late', 'eval_lists_per_s') / g('DNR_PRM late', 'eval_lists_per_s'):.2f} | "
                      f"{g('PRM early', 'train_lists_per_s') / g('DNR_PRM early', 'train_lists_per_s'):.2f} |")
        print()
    if "profile" in res:
        paths = list(res["profile"])
        P_ = res["profile"]
        print("| part of a PRM training step (64-d, late), timed alone | " + " | ".join(f"{p} (ms)" for p in paths)
              + " | " + " | ".join(f"{p} (share)" for p in paths) + " |\n|---|" + "---|" * (2 * len(paths)))
        for k in P_[paths[0]]["parts_ms"]:
            print(f"| {k} | " + " | ".join(f"{P_[p]['parts_ms'][k]:.1f}" for p in paths) + " | "
                  + " | ".join(f"{100 * P_[p]['shares'][k]:.0f}%" for p in paths) + " |")
        print("| sum of the parts / whole step | " + " | ".join(f"{P_[p]['parts_over_step']:.2f}" for p in paths)
              + " |" + " |" * len(paths))
        print("| whole step (ms) | " + " | ".join(f"{P_[p]['step_ms']:.1f}" for p in paths) + " |" + " |" * len(paths))
        print()
        for p in paths:
            print(f"Top ops, {p} path (self CPU ms per batch, torch.profiler over 10 batches; all ops "
                  f"{P_[p]['ops_ms_per_batch']:.1f} ms): "
                  + ", ".join(f"`{k}` {v:.1f}" for k, v in P_[p]["top_ops_ms_per_batch"].items()) + "\n")
        print("| evaluation of the test split | " + " | ".join(paths) + " |\n|---|" + "---|" * len(paths))
        for k, label in (("eval_predict_s", "model forward (s)"), ("eval_metrics_s", "metrics (s)")):
            print(f"| {label} | " + " | ".join(f"{P_[p][k]:.2f}" for p in paths) + " |")
        for k, label in (("eval_split_of_epoch", "whole evaluation / training epoch"),
                         ("metrics_of_epoch", "metrics / training epoch")):
            print(f"| {label} | " + " | ".join(f"{100 * P_[p][k]:.1f}%" for p in paths) + " |")
        print()
    if "lists" in res:
        L = res["lists"]
        print("| list build phase | recbole loader (before) | fast loader | × |\n|---|---|---|---|")
        a, b = L["recbole"], L["fast"]
        for i, (x, y) in enumerate(zip(a["retriever_s"], b["retriever_s"])):
            label = "retriever, all training rows" if i == 0 else f"retriever, crossfit fold {i}"
            print(f"| {label} (s) | {x:.1f} | {y:.1f} | {x / y:.1f} |")
        for k, label in (("scoring_s", "candidate scoring, ordering, history (s)"), ("fillers_s", "filler sampling (s)"),
                         ("save_s", "cache write (s)"), ("total_s", "total (s)")):
            print(f"| {label} | {a[k]:.1f} | {b[k]:.1f} | {a[k] / max(b[k], 1e-9):.1f} |")
        print(f"| peak RSS, retriever (MiB) | {max(a['retriever_peak_mib']):.0f} | {max(b['retriever_peak_mib']):.0f} | |")
        print(f"| peak RSS, whole build (MiB) | {a['peak_mib']:.0f} | {b['peak_mib']:.0f} | |")
        for key in ("train_retriever_auc", "valid_retriever_auc", "test_retriever_auc"):
            print(f"| {key} | {a['stats'][key]:.4f} | {b['stats'][key]:.4f} | |")
        t = L["topk"]
        print(f"\nRetrieve-mode top-50 over {t['items']} items for {t['requests']} requests: ours {t['ours_s']:.3f} s, "
              f"bare topk + gather {t['floor_s']:.3f} s (× {t['ratio']:.2f}).\n")
    if "scale" in res:
        print("| model | users | training lists | epoch (s) | ms/list | peak RSS (MiB) |\n|---|---|---|---|---|---|")
        for k, r in res["scale"].items():
            model, frac = k.split()
            print(f"| {model} | {float(frac):.0%} | {r['lists']} | {r['epoch_s']:.1f} | {1e3 * r['s_per_list']:.3f} | "
                  f"{r['peak_mib']:.0f} |")
    if "corr" in res:
        C = res["corr"]
        step = C["parts_ms"][C["step_key"]]
        print(f"| part of one CoRR training step ({C['batch']} requests), timed alone | ms | of the CoRR step |\n"
              "|---|---|---|")
        for k, v in C["parts_ms"].items():
            print(f"| {k} | {v:.1f} | {100 * v / step:.0f}% |")
        a, b = C["corr_epoch_s_est"], C["prm_epoch_s_est"]
        print(f"\n| per epoch | CoRR | BPR → PRM | CoRR / PRM |\n|---|---|---|---|\n"
              f"| training batches | {C['corr_batches']} | {C['prm_batches']} | |\n"
              f"| training epoch, batches × step (s) | {a:.1f} | {b:.1f} | {a / b:.2f} |\n"
              f"| evaluation of the valid split, {C['valid_requests']} requests (s) | {C['corr_eval_s']:.1f} | "
              f"{C['prm_eval_s']:.1f} | {C['corr_eval_s'] / C['prm_eval_s']:.2f} |\n"
              f"| of which retrieving the lists anew (s) | {C['corr_retrieve_s']:.1f} | | |")
    if "backbones" in res:
        B = res["backbones"]
        ref = B.get("PRM") or next(iter(B.values()))
        print("\n| backbone | step (ms) | train MFLOP/list | inference MFLOP/list | GFLOP/s | time / PRM's | FLOPs / PRM's "
              "| matmul calls per step |\n|---|---|---|---|---|---|---|---|")
        for name, r in B.items():
            calls = " + ".join(f"{v} {k.split('::')[1]}" for k, v in r["matmul_calls_per_step"].items())
            print(f"| {name} | {r['step_ms']:.0f} | {r['train_flops_per_list'] / 1e6:.1f} | "
                  f"{r['eval_flops_per_list'] / 1e6:.1f} | {r['train_gflops']:.1f} | {r['step_ms'] / ref['step_ms']:.2f} | "
                  f"{r['train_flops_per_list'] / ref['train_flops_per_list']:.2f} | {calls} |")


def legacy_runs(prev):
    """Provenance of a results file written when only the last run's command was kept: that command
    for the sections it names, a pointer to docs/performance.md (which names each) for the others."""
    return {k: ({"command": prev["command"], "machine": prev["machine"]}
                if f"--sections {k}" in prev.get("command", "") else
                {"note": "measured before perf.py kept each section's command; docs/performance.md names it"})
            for k in SECTIONS if k in prev}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m-u1to2999")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS)
    parser.add_argument("--batches", type=int, default=30, help="training batches per timed run")
    parser.add_argument("--eval_lists", type=int, default=4096, help="test lists per timed evaluation")
    parser.add_argument("--topk_requests", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale_models", nargs="+", default=["PRM", "DNR_PRM"], choices=["PRM", "DNR_PRM"])
    parser.add_argument("--backbones", nargs="+", default=["PRM", "PIER"], help="models of the backbones section")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--scratch", default=os.path.join(ROOT, "saved", "perf"), help="list caches of the lists section")
    parser.add_argument("--out", default=None)
    parser.add_argument("--markdown", default=None, help="print the tables of a results file and exit")
    args = parser.parse_args()
    if args.markdown:
        return markdown(args.markdown)
    if not args.out:
        parser.error("--out is required to measure")
    if args.threads:
        torch.set_num_threads(args.threads)
    # each section keeps the command and machine that measured it: a file is filled over several runs
    run = {"command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.orig_argv[2:]),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                       "torch_threads": torch.get_num_threads()}, "date": time.strftime("%Y-%m-%d")}
    res = {"runs": {}}
    if os.path.isfile(args.out):  # resumable: keep the sections measured before
        prev = json.load(open(args.out))
        res.update({k: v for k, v in prev.items() if k in SECTIONS})
        res["runs"] = prev.get("runs") or legacy_runs(prev)
    for section in args.sections:
        if section == "gemm":
            res["gemm"] = gemm(args)
        elif section == "train":
            res["train"] = train(args, res["gemm"]["ceiling_gflops"])
        elif section == "scale":
            res["scale"] = scale(args, res.get("scale"))
        else:
            res[section] = globals()[section](args)
        res["runs"][section] = run
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=1)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
