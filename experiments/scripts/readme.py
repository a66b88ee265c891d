"""Keep README.md's figures honest.

    python experiments/scripts/readme.py table          # the README's results table, from the committed cells
    python experiments/scripts/readme.py check          # README's table == the one above (a test runs this)
    python experiments/scripts/readme.py check --run    # also run the README's first command and compare its table

The table is computed from ``experiments/results/tuned/seeds/results.csv`` (each contender
at its best searched config and, in brackets, at its default; mean test NDCG@6 over seeds, in bold
the one of the two chosen on mean valid NDCG@6; DNR_X against the same backbone never reading x per
seed at the chosen configs, with a paired t-test over seeds). ``--run`` trains PRM on ml-100k (about
3 minutes on 2 cores) and compares every figure of the table it prints with the README's, to the 4
decimals printed.
"""

import argparse
import csv
import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
README = os.path.join(REPO, "README.md")
RESULTS = os.path.join(REPO, "experiments", "results")
DATASETS = ("ml-100k", "ml-1m-u1to2999")
# tuned rows: (backbone, never reads x, reads x, DNR over it), variants of experiments/grids/tuned_seeds.yaml
TUNED_ROWS = [("PRM, retriever's order (X-none: order only)", "PRM-none", "PRM-late", "DNR-G"),
              ("PRM, shuffled lists (X-none: no retriever information)", "PRM-noinfo", None, "DNR-G-heuristic-shuffled"),
              ("SASRec (RecBole)", "SASRec-none", None, "DNR_SASRec"),
              ("Caser (RecBole)", "Caser-none", None, "DNR_Caser")]
BEGIN, END = "<!-- tuned table: python experiments/scripts/readme.py table -->", "<!-- end of tuned table -->"


def seed_values(grid="tuned/seeds", split="test"):
    """``{(dataset, variant): {seed: ndcg@6 on split}}`` over a grid's committed cells."""
    values = defaultdict(dict)
    path = os.path.join(RESULTS, grid, "results.csv")
    if os.path.isfile(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["split"] == split:
                    values[(row["dataset"], row["variant"])][int(row["seed"])] = float(row["ndcg@6"])
    return values


def tuned_table(values=None, valid=None):
    """Searched (default) test NDCG@6 of each contender, the one chosen on valid in bold
    (:mod:`recbole_dnr.benchmark.selection`), and DNR_X − X-none per seed at the chosen configs with
    its seed-level p."""
    from scipy import stats

    from recbole_dnr.benchmark.selection import choose

    values = seed_values() if values is None else values
    valid = seed_values(split="valid") if valid is None else valid

    def mean(dataset, variant):
        v = values.get((dataset, variant))
        return sum(v.values()) / len(v) if v else None

    def pick(dataset, variant):
        both = {v: valid.get((dataset, v), {}) for v in (variant, variant + "@default")}
        return choose(both).get(variant, variant)

    def cell(dataset, variant):
        if variant is None or mean(dataset, variant) is None:
            return ""
        default, chosen = variant + "@default", pick(dataset, variant)
        text = {v: f"{mean(dataset, v):.4f}" for v in (variant, default) if mean(dataset, v) is not None}
        text = {v: f"**{t}**" if v == chosen and len(text) == 2 else t for v, t in text.items()}
        return text[variant] + (f" ({text[default]})" if default in text else "")

    def delta(dataset, a, b):
        va, vb = values.get((dataset, pick(dataset, a)), {}), values.get((dataset, pick(dataset, b)), {})
        seeds = sorted(set(va) & set(vb))
        if not seeds:
            return ""
        d = [va[s] - vb[s] for s in seeds]
        text = f"{sum(d) / len(d):+.4f} ({', '.join(f'{x:+.4f}' for x in d)})"
        if len(seeds) > 1:
            text += f", p {stats.ttest_rel([va[s] for s in seeds], [vb[s] for s in seeds]).pvalue:.2f}"
        return text

    lines = ["| dataset | backbone X | X-none, never reads x | X, reads x | DNR_X | DNR_X − X-none in bold (per seed, p) |",
             "|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for label, none, reads, dnr in TUNED_ROWS:
            if not all(len(values.get((dataset, v), {})) == 3 for v in (none, dnr, none + "@default", dnr + "@default")):
                continue  # the README answers with finished pairs only: both sides, searched and default, at 3 seeds
            lines.append(f"| {dataset} | {label} | {cell(dataset, none)} | {cell(dataset, reads)} | "
                         f"{cell(dataset, dnr)} | {delta(dataset, dnr, none)} |")
    return "\n".join(lines)


def readme_table(text):
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:stop].strip()


def first_command(text):
    """The README's first set-up command, less the install: what runs the main job."""
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    return block[0].split("&&")[-1].strip()


def quoted_output(text):
    """The metric table the README quotes for the first command: ``{metric: (valid, test)}``."""
    block = re.search(r"```\nmetric\s+valid\s+test\n(.*?)```", text, re.S).group(1)
    return {m: (v, t) for m, v, t in re.findall(r"^(\S+)\s+([\d.]+)\s+([\d.]+)", block, re.M)}


def printed_output(log):
    rows = re.findall(r"^(\S+@?\d*)\s+(\d\.\d{4})\s+(\d\.\d{4})\s*$", log, re.M)
    return {m: (v, t) for m, v, t in rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("table", "check"))
    parser.add_argument("--run", action="store_true", help="check: also run the README's first command")
    args = parser.parse_args(argv)
    if args.what == "table":
        print(f"{BEGIN}\n{tuned_table()}\n{END}")
        return 0
    text = open(README, encoding="utf-8").read()
    problems = []
    if readme_table(text) != tuned_table():
        problems.append("README's results table differs from the tuned cells; paste `python experiments/scripts/readme.py table`")
    if args.run:
        cmd = first_command(text)
        print(f"running: {cmd}", flush=True)
        done = subprocess.run(shlex.split(cmd), capture_output=True, text=True)
        if done.returncode != 0:
            problems.append(f"{cmd} exited {done.returncode}: {done.stderr[-2000:]}")
        else:
            quoted, printed = quoted_output(text), printed_output(done.stdout + done.stderr)
            if quoted != printed:
                problems.append(f"{cmd} printed {printed}; README quotes {quoted}")
    for p in problems:
        print("README check failed:", p, file=sys.stderr)
    if not problems:
        print("README figures agree" + (" (results table and the first command's output)" if args.run else
                                        " (results table)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
