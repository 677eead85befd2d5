"""Rows/s of offline scoring on Beam's local runner against the in-process path.

    PYTHONPATH=. .venv/bin/python benchmarks/beam_scoring.py            # trains a model
    PYTHONPATH=. .venv/bin/python benchmarks/beam_scoring.py --model=saved_models/NAME \
        --rows=300000 --shards=6

It writes --rows seeded rows (an id column plus the model's features) as --shards CSV
files into a temporary folder, then scores the same files

  - in process: `scoring.score_file` on each shard in turn (the cli.score path);
  - on Beam's DirectRunner: `mmocgan_tf.deploy.beam.score_with_beam` with 1 worker,
    then with 2 workers in each of --running_modes (in_memory: threads in one process;
    multi_processing: one worker process each).

Each Beam figure includes the pipeline's start-up, the workers' imports and model loads,
and the output and counts writes, as a user's run would; the in-process one includes the
model load. Without --model it trains a small network (--features columns, m =
--num_modes) for one epoch on synthetic rows and exports it. One `name: value` line per
figure; rows/s are rows scored per wall-clock second.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import glob  # noqa: E402
import logging as std_logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from mmocgan_tf.deploy import beam, export, scoring  # noqa: E402

flags.DEFINE_string("model", "", "An export base (saved_models/NAME) or a version folder; "
                    "empty: train and export a small model on synthetic data.")
flags.DEFINE_integer("features", 10, "Columns of the synthetic model (no --model).")
flags.DEFINE_integer("num_modes", 5, "m of the trained model (no --model).")
flags.DEFINE_integer("rows", 300_000, "Rows in all.")
flags.DEFINE_integer("shards", 6, "CSV files the rows are split into.")
flags.DEFINE_integer("batch_size", 4096, "score_with_beam's batch_size.")
flags.DEFINE_list("running_modes", ["in_memory", "multi_processing"],
                  "--direct_running_mode values timed with 2 workers.")
FLAGS = flags.FLAGS


def model_dir(workdir):
    if FLAGS.model:
        return export.latest_version_dir(os.path.abspath(FLAGS.model.rstrip("/")))
    from mmocgan_tf import MMOCGAN

    x = np.random.default_rng(0).normal(size=(2000, FLAGS.features)).astype(np.float32)
    model = MMOCGAN(num_features=FLAGS.features, num_modes=FLAGS.num_modes, target_epochs=1,
                    feature_names=[f"x{j}" for j in range(FLAGS.features)])
    model.compile()
    model.fit(x, epochs=1, verbose=0)
    return export.export_saved_model(model, os.path.join(workdir, "model"))


def write_shards(folder, names):
    rng = np.random.default_rng(1)
    per_shard = -(-FLAGS.rows // FLAGS.shards)
    paths, start = [], 0
    for shard in range(FLAGS.shards):
        n = min(per_shard, FLAGS.rows - start)
        x = rng.normal(size=(n, len(names)))
        block = np.column_stack([np.arange(start, start + n), x])
        path = os.path.join(folder, f"part-{shard:03d}.csv")
        np.savetxt(path, block, fmt=["%d"] + ["%.6f"] * len(names), delimiter=",",
                   header=",".join(["id", *names]), comments="")
        paths.append(path)
        start += n
    return paths


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.rows < FLAGS.shards or FLAGS.shards < 1:
        raise app.UsageError("--rows must be at least --shards, and --shards at least 1")
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger().setLevel(std_logging.WARNING)  # Beam logs through logging
    with tempfile.TemporaryDirectory() as workdir:
        version_dir = model_dir(workdir)
        names = export.read_metadata(version_dir)["feature_names"]
        data = os.path.join(workdir, "data")
        os.makedirs(data)
        paths = write_shards(data, names)
        print(f"model: {version_dir}")
        print(f"features: {len(names)}")
        print(f"rows: {FLAGS.rows}")
        print(f"shards: {len(paths)}")
        print(f"cpu_count: {os.cpu_count()}")

        scored = os.path.join(workdir, "in_process")
        os.makedirs(scored)

        def in_process():
            return sum(scoring.score_file(version_dir, path, os.path.join(
                scored, os.path.basename(path))) for path in paths)

        rows, seconds = timed(in_process)
        print(f"in_process_seconds: {seconds:.2f}")
        print(f"in_process_rows_per_s: {rows / seconds:.0f}")

        runs = [("beam_1_worker", ["--direct_num_workers=1"])]
        runs += [(f"beam_2_workers_{mode}", ["--direct_num_workers=2",
                                             f"--direct_running_mode={mode}"])
                 for mode in FLAGS.running_modes]
        for name, args in runs:
            prefix = os.path.join(workdir, name, "scores")
            summary, seconds = timed(lambda p=prefix, a=args: beam.score_with_beam(
                version_dir, os.path.join(data, "part-*.csv"), p, id_columns=["id"],
                pipeline_args=a, batch_size=FLAGS.batch_size))
            if summary.rows_scored != rows or summary.rejected:
                raise RuntimeError(f"{name}: {beam.summary_line(summary)}")
            print(f"{name}_seconds: {seconds:.2f}")
            print(f"{name}_rows_per_s: {summary.rows_scored / seconds:.0f}")
            print(f"{name}_output_shards: {len(glob.glob(prefix + '-*-of-*.csv'))}")


if __name__ == "__main__":
    app.run(main)
