"""Plot of docs/performance.md: a PRM training step by part, before and fast, and the valid
NDCG@6 of an uncapped PRM run against the old 12-epoch cap (headless matplotlib).

    python experiments/scripts/plot_perf.py    # writes docs/img/performance.png

Needs matplotlib (``pip install matplotlib``), which the package itself does not depend on.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from recbole_dnr import storage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
RES = os.path.join(ROOT, "experiments", "results")


def main():
    prof = json.load(open(os.path.join(RES, "perf_ml1m.json")))["profile"]
    conv = json.load(open(os.path.join(RES, "ml-1m-u1to2999_converge_prm_partial.json")))["valid_ndcg@6"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    paths = list(prof)
    parts = list(prof[paths[0]]["parts_ms"])
    bottom = [0.0] * len(paths)
    for part in parts:
        vals = [prof[p]["parts_ms"][part] for p in paths]
        a.bar(paths, vals, bottom=bottom, label=part)
        bottom = [x + y for x, y in zip(bottom, vals)]
    for i, p in enumerate(paths):
        a.text(i, bottom[i] + 2, f"{prof[p]['step_ms']:.0f} ms/step", ha="center")
    a.set_ylabel("ms per training batch (128 lists)")
    a.set_title("PRM 64-d step on ml-1m-u1to2999, 2 CPU threads")
    a.set_ylim(0, max(bottom) * 1.15)
    a.legend(fontsize=7, loc="upper right")
    b.plot(range(1, len(conv) + 1), conv, marker="o")
    b.axvline(12, color="grey", linestyle="--", label="old epoch cap (12)")
    b.set_xlabel("epoch")
    b.set_ylabel("valid NDCG@6")
    b.set_title("PRM 64-d without the cap (stopped at 17 for time)")
    b.legend()
    fig.tight_layout()
    out = os.path.join(ROOT, "docs", "img", "performance.png")
    storage.save_figure(fig, out)
    print(out)


if __name__ == "__main__":
    main()
