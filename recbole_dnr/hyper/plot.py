"""The trial plot of a search (``--display_file``, as RecBole's ``run_hyper.py``): each trial's best
valid score against its number, the best so far as a line, the chosen trial ringed. The same trials
render to the same bytes (:func:`recbole_dnr.storage.save_figure`)."""

import math

from recbole_dnr.errors import missing_extra
from recbole_dnr import storage

STYLE = {  # state -> how its dots are drawn
    "complete": dict(marker="o", color="tab:blue", label="complete"),
    "pruned": dict(marker="v", color="tab:gray", label="pruned (best valid before it stopped)"),
}


def best_so_far(rows, bigger=True):
    """After each trial (by number), the best valid score of the complete trials so far; nan until one
    completes. Pruned and failed trials cannot be chosen (:func:`~recbole_dnr.hyper.search.best_row`),
    so they never raise the line."""
    best, series = math.nan, []
    for r in sorted(rows, key=lambda r: r.number):
        if r.state == "complete" and not math.isnan(r.best_valid):
            if math.isnan(best) or (r.best_valid > best if bigger else r.best_valid < best):
                best = r.best_valid
        series.append(best)
    return series


def pyplot():
    """matplotlib's pyplot on the headless Agg backend; a clear error naming the install when missing."""
    plt = storage.pyplot()
    if plt is None:
        raise missing_extra("--display_file needs matplotlib", "matplotlib", "hyper")
    return plt


def plot_trials(rows, valid_metric, path, best=None, bigger=True):
    """Write the trial plot of ``rows`` (:class:`~recbole_dnr.hyper.search.TrialRow`) to ``path`` (PNG);
    failed trials (no score) are crosses on the bottom edge. Returns whether the file's bytes changed."""
    plt = pyplot()
    ordered = sorted(rows, key=lambda r: r.number)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for state, style in STYLE.items():
        shown = [r for r in ordered if r.state == state and not math.isnan(r.best_valid)]
        if shown:
            ax.scatter([r.number for r in shown], [r.best_valid for r in shown], s=28, zorder=3, **style)
    failed = [r.number for r in ordered if r.state not in STYLE or math.isnan(r.best_valid)]
    if failed:  # no score to place: on the x axis itself, in axes coordinates
        ax.scatter(failed, [0.0] * len(failed), marker="x", color="tab:red", s=40, zorder=4, clip_on=False,
                   transform=ax.get_xaxis_transform(), label="failed (no score)")
    ax.plot([r.number for r in ordered], best_so_far(ordered, bigger), drawstyle="steps-post", color="tab:orange",
            lw=1.5, zorder=2, label="best so far (complete trials)")
    if best is not None:
        ax.scatter([best.number], [best.best_valid], s=160, facecolors="none", edgecolors="black", linewidths=1.5,
                   zorder=5, label=f"chosen: trial {best.number} ({best.best_valid:.4f})")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"best valid {valid_metric}")
    ax.set_title(f"{len(rows)} trials: best valid {valid_metric} of each, and the best so far", fontsize=10)
    if ordered:
        ax.set_xlim(ordered[0].number - 0.5, ordered[-1].number + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    try:
        return storage.save_figure(fig, path)
    finally:
        plt.close(fig)
