"""Predict latency over loopback, gRPC and REST, through this package's serving clients.

It measures the test stand-in (mmocgan_tf/deploy/serving/standin/: Python servers running the
SavedModel with tf.saved_model.load), NOT tensorflow_model_server: the figures bound what
the clients, the wire formats and a Python server cost, and say little about the real C++
server's own latency. The in-process SavedModel call ("local") is printed as the floor.

    PYTHONPATH=. .venv/bin/python benchmarks/serving_latency.py          # trains a model
    PYTHONPATH=. .venv/bin/python benchmarks/serving_latency.py --model=saved_models/NAME

Without --model it trains a paper-size network (50 features, m = 10, widths 128) for one
epoch on synthetic rows, exports it with export_saved_model into a temporary folder, and
serves that. One `name: value` line per figure, latencies in milliseconds.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from mmocgan_tf import MMOCGAN  # noqa: E402
from mmocgan_tf.deploy import export, scoring  # noqa: E402
from mmocgan_tf.deploy.serving import GrpcClient, RestClient  # noqa: E402
from mmocgan_tf.deploy.serving.standin import StandInServer  # noqa: E402

flags.DEFINE_string("model", "", "An export base (saved_models/NAME) or a version folder; "
                    "empty: train and export a paper-size model on synthetic data.")
flags.DEFINE_integer("features", 50, "Columns of the synthetic data (no --model).")
flags.DEFINE_integer("num_modes", 10, "m of the trained model (no --model).")
flags.DEFINE_list("batch_sizes", ["1", "1000"], "Rows per request.")
flags.DEFINE_list("requests", ["200", "50"], "Timed requests, one count per batch size.")
flags.DEFINE_integer("warmup", 5, "Untimed requests before each series.")
flags.DEFINE_integer("offline_rows", 100_000, "Rows of the CSV timed through cli.score's "
                     "code path (0 skips it).")
FLAGS = flags.FLAGS


def served_model(workdir):
    """(base_path, model name, version folder) in TF Serving's layout."""
    if FLAGS.model:
        version_dir = export.latest_version_dir(os.path.abspath(FLAGS.model.rstrip("/")))
        export_base = os.path.dirname(version_dir)
        return os.path.dirname(export_base), os.path.basename(export_base), version_dir
    x = np.random.default_rng(0).normal(size=(2000, FLAGS.features)).astype(np.float32)
    model = MMOCGAN(num_features=FLAGS.features, num_modes=FLAGS.num_modes, target_epochs=1)
    model.compile()
    model.fit(x, epochs=1, verbose=0)
    return workdir, "model", export.export_saved_model(model, os.path.join(workdir, "model"))


def latencies_ms(call, x, count, warmup):
    for _ in range(warmup):
        call(x)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - start)
    return 1000 * np.percentile(times, [50, 99])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    sizes = [int(b) for b in FLAGS.batch_sizes]
    counts = [int(c) for c in FLAGS.requests]
    if len(counts) != len(sizes) or min(sizes + counts) < 1:
        raise app.UsageError("--requests needs one positive count per batch size")
    logging.set_verbosity(logging.WARNING)  # the export's INFO lines are noise here
    with tempfile.TemporaryDirectory() as workdir:
        base, name, version_dir = served_model(workdir)
        local = tf.saved_model.load(version_dir).signatures["serving_default"]
        d = local.structured_input_signature[1]["features"].shape[1]
        print(f"model: {version_dir}")
        print(f"features: {d}")
        with StandInServer(base) as server:
            clients = {
                "grpc": GrpcClient(server.grpc_target, name, batch_size=max(sizes)),
                "rest_instances": RestClient(server.rest_url, name, batch_size=max(sizes)),
                "rest_inputs": RestClient(server.rest_url, name, batch_size=max(sizes),
                                          format="inputs"),
            }
            calls = {"local": lambda x: {k: v.numpy() for k, v in local(
                features=tf.constant(x)).items()}}
            calls.update({kind: client.predict for kind, client in clients.items()})
            rng = np.random.default_rng(1)
            for size, count in zip(sizes, counts, strict=True):
                x = rng.normal(size=(size, d)).astype(np.float32)
                for kind, call in calls.items():
                    p50, p99 = latencies_ms(call, x, count, FLAGS.warmup)
                    print(f"{kind}_batch{size}_p50_ms: {p50:.3f}")
                    print(f"{kind}_batch{size}_p99_ms: {p99:.3f}")
            clients["grpc"].close()
        if FLAGS.offline_rows:
            print(f"offline_score_rows_per_s: {offline_rows_per_s(version_dir, workdir):.0f}")


def offline_rows_per_s(version_dir, workdir):
    """Rows/s of scoring.score_file (CSV parse, SavedModel, CSV write) on a generated CSV."""
    names = export.read_metadata(version_dir)["feature_names"]
    x = np.random.default_rng(2).normal(size=(FLAGS.offline_rows, len(names)))
    path = os.path.join(workdir, "rows.csv")
    np.savetxt(path, x, fmt="%.6f", delimiter=",", header=",".join(names), comments="")
    start = time.perf_counter()
    scoring.score_file(version_dir, path, os.path.join(workdir, "scores.csv"))
    return FLAGS.offline_rows / (time.perf_counter() - start)


if __name__ == "__main__":
    app.run(main)
