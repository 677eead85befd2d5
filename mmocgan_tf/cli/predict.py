"""Scores a data file with a model on TensorFlow Serving and writes one CSV row per input row.

    mmocgan-predict --server=localhost:8500 --model_name=thyroid \\
        --data=new_rows.csv --output=scores.csv            # gRPC
    mmocgan-predict --server=localhost:8501 --rest ...     # REST

(`python -m cli.predict` in a clone.) CSV and Parquet columns are matched by name, in any
order, to the feature names the export's feature_names signature gives over the server;
--feature_columns overrides them, and --model_dir (a local copy of the export) names them
for exports made before that signature existed, which otherwise get every column in file
order. Output: score,is_anomaly,mode per input row (is_anomaly as 0/1; the "score"
signature writes score only), renamed into place when complete, so a failed run leaves no
partial file. --explain also calls the export's explain signature: the CSV gets
attribution_<feature> for every feature and top_features (the three features of largest
attribution, joined by ";"), and stdout shows the top features of the highest-scoring rows.
Bad input or a server error: one line `error: ...` on stderr, exit status 2.
The work is deploy/server_scoring.py's.
"""

import functools

import numpy as np
from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.cli import flags as config_flags
from mmocgan_tf.deploy import export, server_scoring
from mmocgan_tf.deploy.serving import RestClient
from mmocgan_tf.deploy.serving.contract import top_feature_indices
from mmocgan_tf.progress import Progress

FLAGS = flags.FLAGS
SIGNATURES = ("serving_default", "score")  # what deploy.export writes
SHOWN_ROWS = 10  # --explain prints the top features of this many highest-scoring rows


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
                      "order; default: the names the server's export gives (feature_names "
                      "signature), else all columns in file order (their count must match).")
    flags.DEFINE_string("model_dir", None, "For exports without the feature_names signature: "
                        "a local copy (saved_models/NAME[/VERSION]) whose metadata names the "
                        "features.")
    flags.DEFINE_string("output", None, "CSV to write: score,is_anomaly,mode per input row.")
    flags.DEFINE_boolean("explain", False, "Also call the export's explain signature: write "
                         "each row's per-feature attributions (attribution_<feature>) and its "
                         "three most anomalous features (top_features), and print those of "
                         f"the {SHOWN_ROWS} highest-scoring rows.")
    flags.DEFINE_integer("batch_size", 1000, "Rows per request.", lower_bound=1)
    flags.DEFINE_float("timeout_s", 10.0, "Deadline of each request, seconds.",
                       lower_bound=0.001)
    flags.DEFINE_integer("verbose", 1, "0: quiet; 1: the rows done, on inputs of more than "
                         f"{server_scoring.BLOCK_ROWS} rows.")
    flags.mark_flags_as_required(["server", "model_name", "data", "output"])


@app.command
def main():
    progress = None

    def report(done, total):
        nonlocal progress
        if total > server_scoring.BLOCK_ROWS:  # one block is over too soon to need a line
            progress = progress or Progress(total, "rows scored", enabled=FLAGS.verbose > 0)
            progress.update(done)

    try:
        with app.bad_input(OSError, ValueError):
            n, flagged, *explained = server_scoring.score_file(
                make_client(), FLAGS.data, FLAGS.output, feature_columns=feature_columns(),
                on_rows=report, explain=FLAGS.explain)
    finally:
        if progress is not None:
            progress.close()
    verdict = "" if flagged is None else f": {flagged} flagged as anomalies"
    print(f"scored {n} rows with model {FLAGS.model_name!r} on {FLAGS.server}{verdict}; "
          f"wrote {FLAGS.output}")
    if explained:
        print("\n".join(explanation_lines(explained[0], FLAGS.output)))
    return 0


def explanation_lines(explained, output, shown=SHOWN_ROWS):
    """What a person reads first: the top features of the highest-scoring rows.

    One line per row, rows numbered from 1 in file order, highest score first:
    `row 17: score 14.2, anomaly, mode 1; b 8.31, c 2.05, a 0.12`.
    """
    names, scores = explained["feature_names"], explained["score"]
    attributions, decisions = explained["attributions"], explained["is_anomaly"]
    order = np.argsort(-scores, kind="stable")[:shown]
    top = top_feature_indices(attributions)
    what = "row" if len(scores) == 1 else f"{len(order)} highest-scoring rows"
    lines = [f"features of largest attribution of the {what} (every row's are in {output}):"]
    for i in order:
        decision = "" if decisions is None else (", anomaly" if decisions[i] else ", normal")
        features = ", ".join(f"{names[j]} {attributions[i, j]:.4g}" for j in top[i])
        lines.append(f"  row {i + 1}: score {scores[i]:.6g}{decision}, mode "
                     f"{explained['mode'][i]}; {features}")
    return lines


def make_client():
    options = dict(version=FLAGS.model_version, signature=FLAGS.signature,
                   timeout_s=FLAGS.timeout_s, batch_size=FLAGS.batch_size)
    if FLAGS.rest:
        return RestClient(FLAGS.server, FLAGS.model_name, **options)
    grpc_client = app.import_extra("mmocgan_tf.deploy.serving.grpc_client", "serving")
    return grpc_client.GrpcClient(FLAGS.server, FLAGS.model_name, **options)


def feature_columns():
    """--feature_columns, else the names in --model_dir's metadata, else None (the server's)."""
    if FLAGS.feature_columns is not None or not FLAGS.model_dir:
        return FLAGS.feature_columns
    return export.read_metadata(export.latest_version_dir(FLAGS.model_dir))["feature_names"]


def run():
    """The mmocgan-predict console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
