"""Scores a file offline with an exported model: no server needed.

  python -m cli.score --model=saved_models/thyroid --data=new_rows.csv --output=scores.csv

Writes one output row per input row with columns score,is_anomaly,mode; uses the newest
version unless --model names a version folder. CSV columns are matched by feature name.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mmocgan_tf import scoring  # noqa: E402
from mmocgan_tf.data import DataError  # noqa: E402
from mmocgan_tf.export import ExportError  # noqa: E402

flags.DEFINE_string("model", None, "saved_models/NAME or saved_models/NAME/VERSION.")
flags.DEFINE_string("data", None, "Rows to score: .csv (header), .npy, .npz or .parquet.")
flags.DEFINE_string("output", None, "Output CSV path.")
flags.DEFINE_integer("chunk_rows", 65536, "Rows read and scored at a time (bounds memory).")
flags.mark_flags_as_required(["model", "data", "output"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    try:
        rows = scoring.score_file(FLAGS.model, FLAGS.data, FLAGS.output, FLAGS.chunk_rows)
    except (ExportError, DataError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"scored {rows} rows into {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
