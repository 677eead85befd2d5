"""Exports a trained run for TF Serving: saved_models/NAME/VERSION/.

  mmocgan-export --workdir=runs/demo --export_dir=saved_models/thyroid
  mmocgan-export --workdir=runs/demo --export_dir=saved_models/thyroid --contamination=0.02

(`python -m cli.export` in a clone.) A new threshold is written as a new version; existing
versions are never touched. Give it as a score in the model's own units (--threshold: the
default model's score is -log p(x) in nats, the paper variant's 1 - D(x) in (0, 1)), as
the share of training rows to flag (--contamination), or as a quantile of the training
rows' scores (--threshold_quantile). A threshold that flags more than half of the training
rows, all normal, gets a warning line. Bad input ends with one `error:` line and exit
status 2.
"""

import functools
import sys

from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.deploy import export

FLAGS = flags.FLAGS
WARN_SHARE = export.MAX_CONTAMINATION  # flagging more normal rows than this is suspect


@functools.cache
def define_flags():
    """Defines the workdir to read, the export folder and the threshold overrides."""
    flags.DEFINE_string("workdir", None, "An mmocgan-train workdir (model.keras, config.json).")
    flags.DEFINE_string("export_dir", None, "The model's folder, e.g. saved_models/NAME.")
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    flags.DEFINE_float("threshold", None, "Score threshold for is_anomaly, in the model's "
                       "score units (-log p(x) by default; in (0, 1) for the paper variant).")
    flags.DEFINE_float("contamination", None, "Share of the training rows to flag, in "
                       "(0, 0.5]; the same as --threshold_quantile=1-contamination.")
    flags.DEFINE_float("threshold_quantile", None,
                       "Set the threshold to this quantile of the training rows' scores.")
    flags.mark_flags_as_required(["workdir", "export_dir"])


@app.command
def main():
    path = export.export_workdir(
        FLAGS.workdir, FLAGS.export_dir, version=FLAGS.version, threshold=FLAGS.threshold,
        threshold_quantile=FLAGS.threshold_quantile, contamination=FLAGS.contamination)
    meta = export.read_metadata(path)
    share = meta.get("training_flagged_share")
    flagged = "" if share is None else f", flags {share:.2%} of the training rows"
    print(f"exported {path} (threshold score {meta['threshold_score']:.6g}{flagged}; "
          f"features: {', '.join(meta['feature_names'])})")
    if share is not None and share > WARN_SHARE:
        print(f"warning: threshold score {meta['threshold_score']:.6g} flags {share:.2%} of "
              "the training rows, which are all normal; is it in the model's score units? "
              "(--contamination sets a share instead)", file=sys.stderr)
    return 0


def run():
    """The mmocgan-export console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
