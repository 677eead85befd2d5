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
seconds per fit).
"""

import functools
import glob
import json
import os
import sys
import time

from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.cli import flags as config_flags
from mmocgan_tf.data import DataError, load_data
from mmocgan_tf.evaluation import baselines, reports
from mmocgan_tf.evaluation import protocol as evaluation

FLAGS = flags.FLAGS

ROWS, SETTINGS = "rows.jsonl", "settings.json"


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
    config_flags.define_model_flags(exclude=("seed",))
    flags.mark_flags_as_required(["output"])


@app.command
def main():
    with app.bad_input(ValueError):
        specs = dataset_specs(FLAGS.data_dir, FLAGS.datasets)
        methods = method_list(FLAGS.methods, FLAGS.ablation)
        seeds = [int(s) for s in FLAGS.seeds]
        for name in ("epochs", "train_steps"):
            if FLAGS[name].value is not None and FLAGS[name].value < 1:
                raise ValueError(f"--{name} must be >= 1, got {FLAGS[name].value}")
        settings = dict(folds=FLAGS.folds, seeds=seeds, split_seed=FLAGS.split_seed,
                        epochs=FLAGS.epochs, train_steps=FLAGS.train_steps,
                        model_options=config_flags.model_options_from_flags())
        detectors = {m: baselines.make_detector(m, FLAGS.epochs, settings["model_options"],
                                                FLAGS.train_steps) for m in methods}
        rows = resume(FLAGS.output, settings)
    done = {(r["dataset"], r["method"], r["seed"], r["fold"]) for r in rows}
    start = time.perf_counter()
    log = os.path.join(FLAGS.output, ROWS)
    for name, spec in specs.items():
        try:
            data = load_data(spec)
            if data.y is None:
                raise DataError(f"{spec}: no labels (arrays X and y are needed)")
            folds = evaluation.normal_folds(data.y, FLAGS.folds, FLAGS.split_seed)
        except (DataError, evaluation.ProtocolError) as err:
            print(f"skipped {name}: {err}", file=sys.stderr)
            continue
        for row, _, _, _ in evaluation.iter_runs(name, data.x, data.y, detectors.values(),
                                                 folds, seeds, done):
            rows.append(row)
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"{name}: {reports.progress_line(row)}", flush=True)
    write_tables(FLAGS.output, rows, list(specs), methods, time.perf_counter() - start)
    return 0


def dataset_specs(data_dir, names):
    """{name: data spec}; names are npz stems (without the numeric prefix) or data specs."""
    found = {}
    for path in sorted(glob.glob(os.path.join(data_dir or "", "*.npz"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        found[stem.split("_", 1)[1] if stem.split("_", 1)[0].isdigit() else stem] = path
    if not names:
        if not found:
            raise DataError(f"no .npz data sets in --data_dir={data_dir!r} and no --datasets")
        return found
    specs = {}
    for name in names:
        if name in found:
            specs[name] = found[name]
        elif ":" in name or os.path.splitext(name)[1]:
            specs[name] = name
        else:
            known = ", ".join(found) or "none"
            raise DataError(f"unknown data set {name!r} (in --data_dir: {known})")
    return specs


def method_list(methods, ablations):
    listed = list(methods)
    for ablation in ablations:
        if ablation not in baselines.ABLATIONS:
            raise ValueError(f"unknown ablation {ablation!r}; known: "
                             f"{', '.join(baselines.ABLATIONS)}")
        listed += [m for m in baselines.ABLATIONS[ablation] if m not in listed]
    if not listed:
        raise ValueError("no methods to run")
    return listed


def resume(output, settings):
    """Rows of an earlier run of the same settings (none for a new folder)."""
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, SETTINGS)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            earlier = json.load(handle)
        if earlier != json.loads(json.dumps(settings)):
            changed = sorted(k for k in settings if earlier.get(k) != json.loads(
                json.dumps(settings[k])))
            raise ValueError(f"{output} holds a run with other settings ({', '.join(changed)}); "
                             "use another --output")
    else:
        reports.write_json(path, settings)
    rows = []
    log = os.path.join(output, ROWS)
    if os.path.exists(log):
        with open(log, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip().endswith("}")]
    return rows


def write_tables(output, rows, datasets, methods, wall):
    rows = [r for r in rows if r["dataset"] in datasets and r["method"] in methods]
    summary = evaluation.summarize(rows)
    reports.write_csv(os.path.join(output, "results.csv"), rows)
    reports.write_json(os.path.join(output, "summary.json"), {
        f"{d}|{m}": stats for (d, m), stats in summary.items()})
    failed = sorted({f"{r['dataset']}/{r['method']}: {r['error']}" for r in rows
                     if r.get("error")})
    text = "\n".join([
        "# Benchmark", "", "Command: `python -m cli.benchmark " + " ".join(sys.argv[1:]) + "`",
        f"Wall time of this invocation: {wall:.0f} s", "",
        "## AUROC (mean over folds and seeds)", "",
        reports.metric_table(summary, datasets, methods, "auroc"),
        "## AUPRC (mean over folds and seeds)", "",
        reports.metric_table(summary, datasets, methods, "auprc"),
        "## Seconds per fit", "", reports.fit_time_table(summary, datasets, methods),
        *(["## AUROC mean +- std over folds and seeds", "",
           reports.metric_table(summary, datasets, methods, "auroc", with_std=True),
           "## AUROC per seed (mean over folds)", "",
           reports.seed_table(rows, datasets, methods)]
          if len({r["seed"] for r in rows}) > 1 else []),
        *(["## Notes and failures", "", *[f"- {f}" for f in failed], ""] if failed else []),
    ])
    reports.write_text(os.path.join(output, "results.md"), text)
    print(text)


def run():
    """The mmocgan-benchmark console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
