"""Scores a file offline with an exported model: no server needed.

  mmocgan-score --model=saved_models/thyroid --data=new_rows.csv --output=scores.csv

(`python -m cli.score` in a clone.) Writes one output row per input row with columns
score,is_anomaly,mode; uses the newest version unless --model names a version folder. CSV
columns are matched by feature name. An input larger than one chunk shows the rows done
on stderr: a live line on a terminal, a line a minute in a log (none with --verbose=0).
Bad input ends with one `error:` line and exit status 2.
"""

import functools

from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.deploy import scoring
from mmocgan_tf.progress import Progress

FLAGS = flags.FLAGS


@functools.cache
def define_flags():
    """Defines the model, the rows to score, the output and the chunk size."""
    flags.DEFINE_string("model", None, "saved_models/NAME or saved_models/NAME/VERSION.")
    flags.DEFINE_string("data", None, "Rows to score: .csv (header), .npy, .npz or .parquet.")
    flags.DEFINE_string("output", None, "Output CSV path.")
    flags.DEFINE_integer("chunk_rows", 65536, "Rows read and scored at a time (bounds memory).",
                         lower_bound=1)
    flags.DEFINE_integer("verbose", 1, "0: quiet; 1: the rows done, on inputs larger than "
                         "one chunk.")
    flags.mark_flags_as_required(["model", "data", "output"])


@app.command
def main():
    progress = Progress(None, "rows scored", enabled=FLAGS.verbose > 0)

    def report(rows):
        if rows > FLAGS.chunk_rows:  # one chunk is over too soon to need a line
            progress.update(rows)

    try:
        with app.bad_input(OSError):
            rows = scoring.score_file(FLAGS.model, FLAGS.data, FLAGS.output, FLAGS.chunk_rows,
                                      on_chunk=report)
    finally:
        progress.close()
    print(f"scored {rows} rows into {FLAGS.output}")
    return 0


def run():
    """The mmocgan-score console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
