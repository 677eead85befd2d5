"""Scores a file offline with an exported model: no server needed.

  mmocgan-score --model=saved_models/thyroid --data=new_rows.csv --output=scores.csv

(`python -m cli.score` in a clone.) Writes one output row per input row with columns
score,is_anomaly,mode; uses the newest version unless --model names a version folder. CSV
columns are matched by feature name. --explain adds one column attribution_<feature> per
feature (higher: that feature makes the row more anomalous, relative to its mode) and
top_features, the row's three most anomalous features joined by ";". An input larger than
one chunk shows the rows done on stderr: a live line on a terminal, a line a minute in a
log (none with --verbose=0).

With --runner (needs the beam extra) the files matching the pattern --data are scored on
Apache Beam into shards PREFIX-SSSSS-of-NNNNN.csv|.parquet, where --output is the PREFIX;
rows that cannot be scored go to PREFIX-errors-*.jsonl, and flags this command does not
know are Beam pipeline options (docs/BEAM.md):

  mmocgan-score --runner=DirectRunner --direct_num_workers=2 --model=saved_models/thyroid \\
      --data='new/part-*.csv' --output=out/scores --id_column=id

Bad input ends with one `error:` line and exit status 2; with --runner, more rejected rows
than --max_rejected, or any rejected file, end with status 1 after the summary line.
"""

import functools
import logging as std_logging
import sys

from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.deploy import scoring
from mmocgan_tf.progress import Progress

FLAGS = flags.FLAGS

BEAM_ONLY = ("id_column", "max_rejected", "output_format")

# The words after the flags this command knows, kept by parse_flags for Beam (--runner).
_beam_args: list[str] = []


@functools.cache
def define_flags():
    """Defines the model, the rows to score, the output and the chunk size."""
    flags.DEFINE_string("model", None, "saved_models/NAME or saved_models/NAME/VERSION.")
    flags.DEFINE_string("data", None, "Rows to score: .csv (header), .npy, .npz or .parquet. "
                        "With --runner: a file pattern (quote it) of .csv, .parquet or "
                        ".tfrecord shards.")
    flags.DEFINE_string("output", None, "Output CSV path. With --runner: the prefix of the "
                        "output shards, PREFIX-errors-*.jsonl and PREFIX-counts.json.")
    flags.DEFINE_integer("chunk_rows", 65536, "Rows read and scored at a time (bounds memory).",
                         lower_bound=1)
    flags.DEFINE_boolean("explain", False, "Also write each row's per-feature attributions "
                         "(columns attribution_<feature>) and its three most anomalous "
                         "features (top_features, joined by ';').")
    flags.DEFINE_integer("verbose", 1, "0: quiet; 1: the rows done, on inputs larger than "
                         "one chunk.")
    flags.DEFINE_string("runner", None, "Score on Apache Beam with this runner "
                        "(DirectRunner, FlinkRunner, SparkRunner, PortableRunner, ...); "
                        "flags this command does not know go to Beam as pipeline options. "
                        "Unset: one file, in this process.")
    flags.DEFINE_multi_string("id_column", [], "With --runner: a column copied to the "
                              "output, to join the scores back; repeat it for more.")
    flags.DEFINE_integer("max_rejected", 0, "With --runner: exit status 1 when more rows "
                         "than this were rejected, or any file.", lower_bound=0)
    flags.DEFINE_enum("output_format", "csv", ["csv", "parquet"],
                      "With --runner: the output shards' format.")
    flags.mark_flags_as_required(["model", "data", "output"])


@app.command
def main():
    if FLAGS.runner is not None:
        return score_on_beam([f"--runner={FLAGS.runner}", *_beam_args])
    given = [f"--{name}" for name in BEAM_ONLY if FLAGS[name].present]
    if given:
        raise app.BadInput(f"{', '.join(given)}: only with --runner (scoring on Beam)")
    progress = Progress(None, "rows scored", enabled=FLAGS.verbose > 0)

    def report(rows):
        if rows > FLAGS.chunk_rows:  # one chunk is over too soon to need a line
            progress.update(rows)

    try:
        with app.bad_input(OSError):
            rows = scoring.score_file(FLAGS.model, FLAGS.data, FLAGS.output, FLAGS.chunk_rows,
                                      on_chunk=report, explain=FLAGS.explain)
    finally:
        progress.close()
    print(f"scored {rows} rows into {FLAGS.output}")
    return 0


def score_on_beam(pipeline_args):
    """The --runner path: prints the summary line; 1 when more was rejected than allowed."""
    std_logging.disable(std_logging.WARNING)  # Beam's import warns of cloud clients it lacks
    try:
        beam = app.import_extra("mmocgan_tf.deploy.beam", "beam")
    finally:
        std_logging.disable(std_logging.NOTSET)
    with app.bad_input(ValueError, OSError):
        summary = beam.score_with_beam(FLAGS.model, FLAGS.data, FLAGS.output,
                                       id_columns=FLAGS.id_column,
                                       output_format=FLAGS.output_format,
                                       pipeline_args=pipeline_args, explain=FLAGS.explain)
    print(beam.summary_line(summary), flush=True)
    if summary.files_rejected or summary.rows_rejected > FLAGS.max_rejected:
        files = f" and {summary.files_rejected} files" if summary.files_rejected else ""
        print(f"error: {summary.rows_rejected} rows{files} rejected, more than "
              f"--max_rejected={FLAGS.max_rejected} allows; the reasons are in "
              f"{summary.errors_pattern}", file=sys.stderr)
        return 1
    return 0


def parse_flags(argv):
    """app.parse_flags, but with --runner the flags absl does not know are kept for Beam.

    Without --runner the flags are parsed again strictly, as every command parses them,
    so an unknown flag is the same one `error:` line (exit status 2) as before.
    """
    try:
        rest, failed = FLAGS(argv, known_only=True), None
    except flags.Error as err:
        rest, failed = argv, err
    if FLAGS["runner"].value is None:
        FLAGS.unparse_flags()
        return app.parse_flags(argv)
    if failed is not None:
        print(f"{app.error_line(failed)} (--helpfull lists the flags)", file=sys.stderr)
        sys.exit(2)
    _beam_args[:] = rest[1:]
    return argv[:1]


def run():
    """The mmocgan-score console script."""
    app.run(main, define_flags, parse_flags)


if __name__ == "__main__":
    run()
