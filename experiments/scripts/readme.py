"""Keep README.md's figures honest.

    python experiments/scripts/readme.py table          # the README's results table, from the committed zoo cells
    python experiments/scripts/readme.py check          # README's results table == the one above (a test runs this)
    python experiments/scripts/readme.py check --run    # also run the README's first command and compare its table

The results table is computed from ``experiments/results/{zoo,dnr_study}/results.csv`` (mean test
NDCG@6 over the seeds each variant ran); ``--run`` trains PRM on ml-100k (about 3 minutes on 2 cores) and compares
every figure of the table it prints with the README's, to the 4 decimals printed.
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
# rows: (label, variant of X, variant of X-none, variant of DNR_X), "<grid>:<variant>" (default grid: zoo)
ROWS = [("Retriever (x alone, the floor)", "Retriever", None, None),
        ("PRM", "PRM", "dnr_study:PRM-noinfo", "DNR_PRM"),
        ("SASRec (RecBole)", "SASRec", "SASRec-none", "DNR_SASRec"),
        ("GRU4Rec (RecBole)", "GRU4Rec", "GRU4Rec-none", "DNR_GRU4Rec"),
        ("Caser (RecBole)", "Caser", "Caser-none", "DNR_Caser")]
BEGIN, END = "<!-- results table: python experiments/scripts/readme.py table -->", "<!-- end of results table -->"


def grid_means(grids=("zoo", "dnr_study")):
    """``{(dataset, "<grid>:<variant>"): (mean test ndcg@6, seeds)}`` over the committed cells."""
    values = defaultdict(list)
    for grid in grids:
        with open(os.path.join(RESULTS, grid, "results.csv"), newline="") as f:
            for row in csv.DictReader(f):
                if row["split"] == "test":
                    values[(row["dataset"], f"{grid}:{row['variant']}")].append(float(row["ndcg@6"]))
    return {k: (sum(v) / len(v), len(v)) for k, v in values.items()}


def results_table(means=None):
    means = means or grid_means()

    def cell(dataset, variant):
        if variant is None:
            return ""
        variant = variant if ":" in variant else "zoo:" + variant
        if (dataset, variant) not in means:
            return ""
        mean, seeds = means[(dataset, variant)]
        return f"{mean:.4f}" + ("" if seeds == 3 else f" ({seeds} seed{'s' if seeds > 1 else ''})")

    head = "| backbone X | " + " | ".join(f"{c} ({d})" for d in DATASETS for c in ("X", "X-none", "DNR_X")) + " |"
    lines = [head, "|---" * (1 + 3 * len(DATASETS)) + "|"]
    for label, x, none, dnr in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(d, v) for d in DATASETS for v in (x, none, dnr)) + " |")
    return "\n".join(lines)


def readme_table(text):
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


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
        print(results_table())
        return 0
    text = open(README, encoding="utf-8").read()
    problems = []
    if readme_table(text) != results_table():
        problems.append("README's results table differs from the zoo cells; paste `python experiments/scripts/readme.py table`")
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
