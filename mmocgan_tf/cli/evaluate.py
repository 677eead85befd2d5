"""The paper's k-fold protocol on one data set, for any list of methods.

    mmocgan-evaluate --data=bundled:thyroid --folds=5 \\
        --methods=gmm,ocsvm,mmocgan_cat --output=runs/eval_thyroid [--epochs=N] [--plots]

(`python -m cli.evaluate` in a clone.) Folds run over the normal rows; each test set is
the held-out normal fold plus every anomaly (mmocgan_tf/evaluation/protocol.py). Writes
results.json, results.csv (one row per method, seed and fold) and table.md (shaped like
the paper's Table 1); with --plots also figure_data.npz and figures/*.png (among them
explanations.png, the attributions of fold 0's highest-scoring test rows). MMOCGAN flags
(num_modes, prior, weight_*, ...) apply to the mmocgan_* methods; a method name may also
carry overrides, e.g. mmocgan_cat/num_modes=5. Each finished fold prints one line,
`[k/N, ~T left] method seed S fold F: auroc ...` (none with --verbose=0). Bad input ends
with one `error:` line and exit status 2.
"""

import functools
import os
import sys
import time

import numpy as np
from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.cli import flags as config_flags
from mmocgan_tf.data import load_data
from mmocgan_tf.evaluation import baselines, reports
from mmocgan_tf.evaluation import protocol as evaluation
from mmocgan_tf.progress import Progress

FLAGS = flags.FLAGS


@functools.cache
def define_flags():
    """Defines the protocol's flags and the MMOCGAN options (all but seed: see --seeds)."""
    flags.DEFINE_string("data", None,
                        "CSV/.npz/.npy/.parquet path, bundled:NAME or synthetic:NAME.")
    flags.DEFINE_string("output", None, "Folder for results.json, results.csv and table.md.")
    flags.DEFINE_integer("folds", 5, "Folds over the normal rows.")
    flags.DEFINE_list("methods", list(baselines.METHODS),
                      "Methods to run (see mmocgan_tf.evaluation.baselines).")
    flags.DEFINE_integer("epochs", None, "Training epochs of every deep method (default: "
                         "each method's own).")
    flags.DEFINE_integer("train_steps", None, "Instead of epochs: about this many training "
                         "steps per deep fit.")
    flags.DEFINE_list("seeds", ["0"], "Seeds of the detectors; each runs all folds.")
    flags.DEFINE_integer("split_seed", 0, "Seed of the fold split.")
    flags.DEFINE_boolean("plots", False, "Also write the figures (fold 0 of the first seed).")
    flags.DEFINE_list("feature_columns", [], "CSV/Parquet columns to use (default: all).")
    flags.DEFINE_string("label_column", None, "CSV/Parquet column of labels.")
    flags.DEFINE_string("normal_label", "0", "Label of normal rows.")
    flags.DEFINE_integer("verbose", 1, "0: quiet; 1: a line per finished fold, with the "
                         "folds done and the time left.")
    config_flags.define_model_flags(exclude=("seed",))
    flags.mark_flags_as_required(["data", "output"])


@app.command
def main():
    plots = app.import_extra("mmocgan_tf.evaluation.plots", "plots") if FLAGS.plots else None
    with app.bad_input(ValueError):
        setup = prepare(FLAGS.data, FLAGS.methods, FLAGS.folds, FLAGS.split_seed, FLAGS.epochs,
                        config_flags.model_options_from_flags(), FLAGS.seeds, FLAGS.train_steps)
    data, x, y, detectors, folds, seeds = setup
    if not (y == 1).any():
        print(f"note: {data.source} has no anomalies: AUROC, AUPRC and anomaly accuracy are "
              "undefined; normal accuracy is still reported", file=sys.stderr)
    os.makedirs(FLAGS.output, exist_ok=True)
    start = time.perf_counter()
    rows, figure = [], plots.FigureData(data.feature_names) if plots else None
    # Lines of its own (tag): the Progress only keeps time, it writes nothing.
    progress = Progress(len(detectors) * len(seeds) * len(folds), "folds", enabled=False)
    for row, scores, detector, fold in evaluation.iter_runs(
            data.source, x, y, detectors, folds, seeds):
        rows.append(row)
        progress.update(len(rows))
        if FLAGS.verbose:
            print(f"{progress.tag(len(rows))} {reports.progress_line(row)}", flush=True)
        if figure is not None and fold.index == 0 and row["seed"] == seeds[0]:
            figure.add(detector, scores, x, y, fold)
    wall = time.perf_counter() - start
    summary = evaluation.summarize(rows)
    methods = [d.name for d in detectors]
    gan = [d.name for d in detectors if d.is_gan]
    reports.write_csv(os.path.join(FLAGS.output, "results.csv"), rows)
    reports.write_json(os.path.join(FLAGS.output, "results.json"), {
        "data": data.source, "folds": len(folds), "seeds": seeds, "epochs": FLAGS.epochs,
        "train_steps": FLAGS.train_steps,
        "split_seed": FLAGS.split_seed, "methods": methods, "wall_s": wall, "rows": rows,
        "summary": {m: summary.get((data.source, m), {}) for m in methods},
        "command": " ".join(["python -m cli.evaluate", *sys.argv[1:]])})
    table = reports.table1(summary, data.source, methods, gan)
    reports.write_text(os.path.join(FLAGS.output, "table.md"),
                       f"# {data.source}: {len(folds)} folds, seeds {seeds}\n\n{table}")
    print(table)
    if figure is not None:
        try:
            for path in [figure.save(FLAGS.output), *plots.write_figures(FLAGS.output)]:
                print(f"wrote {path}")
        except ValueError as err:  # e.g. every method failed: nothing to draw
            print(f"error: no figures: {err}", file=sys.stderr)
            return 1
    print(f"wrote {FLAGS.output}/results.json, results.csv, table.md in {wall:.1f} s")
    return 0


def prepare(spec, methods, folds, split_seed, epochs, model_options, seeds, train_steps=None):
    """Everything that can fail on bad input, checked before any training."""
    seeds = check_protocol(folds, seeds)
    if not methods:
        raise ValueError("--methods is empty")
    for name, value in (("epochs", epochs), ("train_steps", train_steps)):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    data = load_data(spec, feature_columns=FLAGS.feature_columns or None,
                     label_column=FLAGS.label_column, normal_label=FLAGS.normal_label)
    y = data.y if data.y is not None else np.zeros(len(data.x), np.int32)
    detectors = [baselines.make_detector(m, epochs, model_options, train_steps) for m in methods]
    return (data, data.x, y, detectors, evaluation.normal_folds(y, folds, split_seed), seeds)


def check_protocol(folds, seeds):
    """The --seeds as integers, once --folds (>= 2) and --seeds (not empty) are checked.

    Both commands would otherwise run nothing and end with an empty table and status 0.
    """
    if folds < 2:
        raise ValueError(f"--folds must be >= 2 (a fold trains on the others), got {folds}")
    if not seeds:
        raise ValueError("--seeds is empty")
    try:
        return [int(s) for s in seeds]
    except ValueError:
        raise ValueError(f"--seeds takes integers, got {','.join(seeds)}") from None


def run():
    """The mmocgan-evaluate console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
