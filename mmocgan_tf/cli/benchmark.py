"""The protocol over many data sets, resumable: one table of AUROC, AUPRC and ranks.

    mmocgan-benchmark --data_dir=DIR --datasets=thyroid,cardio,synthetic:production_line \\
        --methods=gmm,ocsvm,mmocgan_cat,pyod:KNN --output=runs/bench [--train_steps=N]

(`python -m cli.benchmark` in a clone.) A data set is the stem of DIR/*.npz without its
numeric prefix ("thyroid" for 38_thyroid.npz), or any mmocgan-evaluate data spec
(bundled:thyroid, synthetic:NAME, a path). Each finished fold is appended to
OUTPUT/rows.jsonl; rerunning the same command skips what is there, so an interrupted run
resumes where it stopped. --ablation=modes,losses,reference,prior adds the default MMOCGAN
variant's Table 2 (modes), loss-term, reference and prior ablations. Writes results.csv,
summary.json and results.md (AUROC and AUPRC per data set and method, mean, average rank,
seconds per fit). Each finished fold prints one line, `NAME: [k/N, ~T left] method seed S
fold F: auroc ...` (none with --verbose=0).
"""

import functools
import sys
import time

from absl import flags

from mmocgan_tf.cli import app, evaluate
from mmocgan_tf.cli import flags as config_flags
from mmocgan_tf.data import DataError, load_data
from mmocgan_tf.evaluation import baselines, reports, suite
from mmocgan_tf.evaluation import protocol as evaluation
from mmocgan_tf.progress import Progress

FLAGS = flags.FLAGS


@functools.cache
def define_flags():
    """Defines the data set, method and protocol flags and the MMOCGAN options but seed."""
    flags.DEFINE_string("data_dir", None, "Folder of .npz data sets (arrays X, y).")
    flags.DEFINE_list("datasets", [], "Data sets to run (default: every .npz in --data_dir).")
    flags.DEFINE_list("methods", list(baselines.METHODS), "Methods to run.")
    flags.DEFINE_list("ablation", [],
                      f"Add MMOCGAN variants: {', '.join(baselines.ABLATIONS)}.")
    flags.DEFINE_string("output", None, "Folder of the results (and of the resume log).")
    flags.DEFINE_integer("folds", 5, "Folds over the normal rows.")
    flags.DEFINE_list("seeds", ["0"], "Seeds of the detectors; each runs all folds.")
    flags.DEFINE_integer("split_seed", 0, "Seed of the fold split.")
    flags.DEFINE_integer("epochs", None,
                         "Epochs of every deep method (default: each method's).")
    flags.DEFINE_integer("train_steps", None, "Instead of epochs: about this many training "
                         "steps per deep fit, whatever the data set's size.")
    flags.DEFINE_integer("verbose", 1, "0: quiet; 1: a line per finished fold, with the "
                         "folds done and the time left.")
    config_flags.define_model_flags(exclude=("seed",))
    flags.mark_flags_as_required(["output"])


@app.command
def main():
    with app.bad_input(ValueError):
        seeds = evaluate.check_protocol(FLAGS.folds, FLAGS.seeds)
        specs = suite.dataset_specs(FLAGS.data_dir, FLAGS.datasets)
        methods = suite.method_list(FLAGS.methods, FLAGS.ablation)
        for name in ("epochs", "train_steps"):
            if FLAGS[name].value is not None and FLAGS[name].value < 1:
                raise ValueError(f"--{name} must be >= 1, got {FLAGS[name].value}")
        settings = dict(folds=FLAGS.folds, seeds=seeds, split_seed=FLAGS.split_seed,
                        epochs=FLAGS.epochs, train_steps=FLAGS.train_steps,
                        model_options=config_flags.model_options_from_flags())
        detectors = {m: baselines.make_detector(m, FLAGS.epochs, settings["model_options"],
                                                FLAGS.train_steps) for m in methods}
        log = suite.RunLog(FLAGS.output, settings)
    done = log.done()
    start = time.perf_counter()
    to_run = {name: left_to_run(name, detectors.values(), seeds, FLAGS.folds, done)
              for name in specs}
    # Lines of its own (tag): the Progress only keeps time, it writes nothing.
    progress, finished = Progress(sum(to_run.values()), "folds", enabled=False), 0
    for name, spec in specs.items():
        try:
            data = load_data(spec)
            if data.y is None:
                raise DataError(f"{spec}: no labels (arrays X and y are needed)")
            folds = evaluation.normal_folds(data.y, FLAGS.folds, FLAGS.split_seed)
        except (DataError, evaluation.ProtocolError) as err:
            print(f"skipped {name}: {err}", file=sys.stderr)
            progress.total -= to_run[name]
            continue
        for row, _, _, _ in evaluation.iter_runs(name, data.x, data.y, detectors.values(),
                                                 folds, seeds, done):
            log.append(row)
            finished += 1
            progress.update(finished)
            if FLAGS.verbose:
                print(f"{name}: {progress.tag(finished)} {reports.progress_line(row)}",
                      flush=True)
    command = " ".join(["python -m cli.benchmark", *sys.argv[1:]])
    print(suite.write_tables(FLAGS.output, log.rows, list(specs), methods,
                             time.perf_counter() - start, command))
    return 0


def left_to_run(name, detectors, seeds, folds, done):
    """How many folds of data set `name` the run still has to do."""
    return sum((name, d.name, seed, fold) not in done
               for d in detectors for seed in seeds for fold in range(folds))


def run():
    """The mmocgan-benchmark console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
