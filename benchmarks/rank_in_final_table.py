"""Ranks a new method's AUROC against the final table of docs/RESULTS.md.

The final table's 16 methods were measured by runs whose per-fold rows are not in the
repository; docs/final_table_auroc.csv holds their per-set mean AUROCs as tabled (3
decimals). This reads the per-fold rows of a new method from cli.benchmark's rows.jsonl
(one or more folders), averages them per data set, and prints the method's mean AUROC over
the 15 public sets and its average rank, twice: in place of `mmocgan` (the 16 methods as
they would stand with it as the default) and beside all 16. Ranks come from the tabled
means, so the others' ranks can differ from the published ones by rounding (at most 0.1).

  python benchmarks/rank_in_final_table.py --runs=runs/flow --method=mmocgan/reference=flow
"""

import csv
import json
import os

import numpy as np
from absl import app, flags

from mmocgan_tf.evaluation import protocol

flags.DEFINE_list("runs", [], "cli.benchmark output folders holding rows.jsonl.")
flags.DEFINE_string("method", None, "The method name in those rows.")
flags.DEFINE_string("table", os.path.join(os.path.dirname(__file__), "..", "docs",
                                          "final_table_auroc.csv"),
                    "The final table's per-set mean AUROC (CSV).")
flags.mark_flags_as_required(["method"])
FLAGS = flags.FLAGS
PRODUCTION_LINE = "synthetic:production_line"


def new_means(folders, method):
    """{dataset: (mean AUROC, folds)} of `method`'s rows in the folders."""
    values = {}
    for folder in folders:
        with open(os.path.join(folder, "rows.jsonl")) as f:
            for line in f:
                row = json.loads(line)
                if row["method"] == method and row.get("auroc") is not None:
                    values.setdefault(row["dataset"], []).append(row["auroc"])
    return {name: (float(np.mean(v)), len(v)) for name, v in values.items()}


def main(argv):
    del argv
    with open(FLAGS.table) as f:
        table = {row.pop("dataset"): {m: float(v) for m, v in row.items()}
                 for row in csv.DictReader(f)}
    means = new_means(FLAGS.runs, FLAGS.method)
    public = [name for name in table if name in means]
    for name, (mean, folds) in sorted(means.items()):
        best = max(table.get(name, {}).items(), key=lambda kv: kv[1], default=("", np.nan))
        print(f"{name}: {mean:.4f} over {folds} folds (tabled mmocgan "
              f"{table.get(name, {}).get('mmocgan', np.nan):.3f}, best {best[0]} {best[1]:.3f})")
    print(f"public_sets: {len(public)}")
    new = "new"
    for title, drop in (("in_place_of_mmocgan", {"mmocgan"}), ("beside_all_16", set())):
        methods = [m for m in next(iter(table.values())) if m not in drop] + [new]
        summary = {(name, m): {"auroc": (table[name][m], 0.0, 1)}
                   for name in public for m in methods if m != new}
        summary.update({(name, new): {"auroc": (means[name][0], 0.0, 1)} for name in public})
        ranks, _ = protocol.average_ranks(summary, public, methods)
        order = sorted(ranks, key=ranks.get)
        print(f"{title}_rank: {ranks[new]:.2f} (place {order.index(new) + 1} of {len(methods)}; "
              + ", ".join(f"{m} {ranks[m]:.2f}" for m in order[:4]) + ")")
    print(f"mean_auroc_public: {np.mean([means[name][0] for name in public]):.4f} "
          f"(tabled mmocgan {np.mean([table[name]['mmocgan'] for name in public]):.4f})")
    if PRODUCTION_LINE in means:
        print(f"production_line: {means[PRODUCTION_LINE][0]:.4f}")


if __name__ == "__main__":
    app.run(main)
