"""Where a run trained: the record a benchmark cell and a search trial keep beside their figures."""

import os
import platform

import torch


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` is empty on Linux), or ''."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def machine():
    """Where a run trained. The CPU's model and the SIMD level torch's kernels dispatch to matter: the same
    seed and config give the same figures only where both (and the thread count) are the same."""
    return {"platform": platform.platform(), "processor": platform.processor(), "cpu_model": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def cpu_text(m, threads=False):
    """``AMD EPYC 7B13, AVX512`` (``, 1 thread`` with ``threads``) from a :func:`machine` record: the parts
    it has, '' for none."""
    parts = [m[k] for k in ("cpu_model", "cpu_capability") if m.get(k)]
    if threads and m.get("torch_threads"):
        parts.append(f"{m['torch_threads']} thread" + ("s" if m["torch_threads"] != 1 else ""))
    return ", ".join(parts)
