"""Learning curves of the backbone ladder's rungs side by side (docs/models.md, "Backbone ladder"):
training loss and valid NDCG@6 per epoch of one seed, from the committed cells.

    python experiments/scripts/ladder_curves.py --dataset ml-100k --seed 2020 --out docs/img/ladder_curves_ml-100k.png
"""

import argparse
import json
import os

from recbole_dnr.storage import pyplot, save_figure

RUNGS = ["SASRec-none", "L1-seq-dot", "L1+dropout", "L3+x", "L3+x+dropout", "L3+x+features", "PRM+init", "PRM",
         "L3+x+features+dropout"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="experiments/results/ladder")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    plt = pyplot()
    if plt is None:
        raise SystemExit("this plot needs matplotlib: pip install matplotlib")
    cells = {}
    for rung in RUNGS:
        path = os.path.join(args.results, "cells", args.dataset, rung, f"seed{args.seed}.json")
        if os.path.isfile(path):
            with open(path) as f:
                cells[rung] = json.load(f)
    fig, (loss_ax, valid_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    for rung, cell in cells.items():
        colour = plt.cm.tab10(RUNGS.index(rung) % 10)  # a rung keeps its colour as more cells land
        losses = cell["train_loss_curve"]
        first = losses[0] or 1.0
        loss_ax.plot(range(1, len(losses) + 1), [v / first for v in losses], color=colour, label=rung)
        valid = cell["valid_curve"]
        valid_ax.plot(range(1, len(valid) + 1), valid, color=colour, label=rung)
        best = cell["best_epoch"]
        valid_ax.plot([best], [valid[best - 1]], "o", color=colour, markersize=4)
    loss_ax.set(xlabel="epoch", ylabel="training loss / its first epoch's",
                title=f"{args.dataset}, seed {args.seed}: training loss")
    valid_ax.set(xlabel="epoch", ylabel="valid NDCG@6", title="valid NDCG@6 (dot: the epoch kept)")
    valid_ax.set_ylim(bottom=max(0.3, min(min(c["valid_curve"]) for c in cells.values()) - 0.01))
    valid_ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    save_figure(fig, args.out)
    plt.close(fig)
    print(f"wrote {args.out} ({len(cells)} rungs)")


if __name__ == "__main__":
    main()
