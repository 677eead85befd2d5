"""Scores a data file with a model on TensorFlow Serving and writes one CSV row per input row.

    mmocgan-predict --server=localhost:8500 --model_name=thyroid \\
        --data=new_rows.csv --output=scores.csv            # gRPC
    mmocgan-predict --server=localhost:8501 --rest ...     # REST

(`python -m cli.predict` in a clone.) Columns: TF Serving's metadata gives the input's
width d but not our feature names, so a CSV is sent as --feature_columns names them, or as
the metadata of a local copy of the export (--model_dir) names them, or else all its
columns in file order (count must be d). Output: score,is_anomaly,mode (is_anomaly as 0/1;
the "score" signature writes score only), written beside --output and renamed into place,
so a failed run leaves no partial file. Bad input or a server error: one line
`error: ...` on stderr, exit status 2.
"""

import csv
import functools
import os

from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.cli import flags as config_flags
from mmocgan_tf.data import DataError, load_data
from mmocgan_tf.deploy import export
from mmocgan_tf.deploy.serving import RestClient
from mmocgan_tf.files import atomic_write

FLAGS = flags.FLAGS
COLUMNS = ("score", "is_anomaly", "mode")
SIGNATURES = ("serving_default", "score")  # what deploy.export writes


@functools.cache
def define_flags():
    """Defines the server, the model to call, the rows to score and the output."""
    flags.DEFINE_string("server", None, "host:port: the gRPC port (8500) or, with --rest, "
                        "the REST port (8501).")
    flags.DEFINE_string("model_name", None, "Name the server serves the model under.")
    flags.DEFINE_integer("model_version", None,
                         "Version to call; default the server's latest.")
    config_flags.define_choice("signature", "serving_default", SIGNATURES,
                               "The export's signature to call; score returns the score only.")
    flags.DEFINE_boolean("rest", False, "Use the REST API instead of gRPC.")
    flags.DEFINE_string("data", None,
                        "Rows to score: .csv (header row), .npz (array X), .npy.")
    flags.DEFINE_list("feature_columns", None, "CSV columns to send, in the model's training "
                      "order; default: the names in --model_dir's metadata, else all columns "
                      "in file order (their count must match).")
    flags.DEFINE_string("model_dir", None, "A local copy of the export (saved_models/NAME"
                        "[/VERSION]) whose metadata names the features, to map CSV columns.")
    flags.DEFINE_string("output", None, "CSV to write: score,is_anomaly,mode per input row.")
    flags.DEFINE_integer("batch_size", 1000, "Rows per request.", lower_bound=1)
    flags.DEFINE_float("timeout_s", 10.0, "Deadline of each request, seconds.",
                       lower_bound=0.001)
    flags.mark_flags_as_required(["server", "model_name", "data", "output"])


@app.command
def main():
    with app.bad_input(OSError, ValueError):
        n, anomalies = score_file()
    print(f"scored {n} rows with model {FLAGS.model_name!r} on {FLAGS.server}: "
          f"{anomalies} flagged as anomalies; wrote {FLAGS.output}")
    return 0


def score_file():
    """Scores --data on the server and writes --output; (rows, rows flagged)."""
    columns = FLAGS.feature_columns
    if columns is None and FLAGS.model_dir:
        columns = export.read_metadata(export.latest_version_dir(FLAGS.model_dir))[
            "feature_names"]
    data = load_data(FLAGS.data, feature_columns=columns)
    folder = os.path.dirname(os.path.abspath(FLAGS.output))
    if not os.path.isdir(folder):
        raise DataError(f"{FLAGS.output}: folder {folder} does not exist")
    options = dict(version=FLAGS.model_version, signature=FLAGS.signature,
                   timeout_s=FLAGS.timeout_s, batch_size=FLAGS.batch_size)
    if FLAGS.rest:
        client = RestClient(FLAGS.server, FLAGS.model_name, **options)
    else:
        try:
            from mmocgan_tf.deploy.serving.grpc_client import GrpcClient
        except ImportError as err:
            raise DataError(f"gRPC needs the serving extra (pip install 'mmocgan-tf[serving]'),"
                            f" or use --rest: {err}") from None
        client = GrpcClient(FLAGS.server, FLAGS.model_name, **options)
    meta = client.metadata()
    shape = meta["inputs"].get("features", {}).get("shape") or (None, None)
    if shape[-1] is not None and shape[-1] != data.x.shape[1]:
        raise DataError(f"{data.source}: {data.x.shape[1]} feature columns, the model expects "
                        f"{shape[-1]}; pick them with --feature_columns")
    columns = [name for name in COLUMNS if name in meta["outputs"]]
    if "score" not in columns:
        raise DataError(f"signature {FLAGS.signature!r} has no score output")
    out = client.predict(data.x)
    with atomic_write(FLAGS.output, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        values = [out[name].astype(int) if name != "score" else out[name] for name in columns]
        for row in zip(*values, strict=True):
            writer.writerow([f"{row[0]:.9g}", *(int(v) for v in row[1:])])
    anomalies = int(out["is_anomaly"].sum()) if "is_anomaly" in out else "none"
    return len(data.x), anomalies


def run():
    """The mmocgan-predict console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
