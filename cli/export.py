"""Exports a trained run for TF Serving: saved_models/NAME/VERSION/.

  python -m cli.export --workdir=runs/demo --export_dir=saved_models/thyroid
  python -m cli.export --workdir=runs/demo --export_dir=saved_models/thyroid --threshold=0.9

A new threshold (--threshold as a score, or --threshold_quantile of the training scores) is
written as a new version; existing versions are never touched.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mmocgan_tf import export  # noqa: E402
from mmocgan_tf.config import ConfigError  # noqa: E402
from mmocgan_tf.data import DataError  # noqa: E402

flags.DEFINE_string("workdir", None, "A cli.train workdir (model.keras, config.json).")
flags.DEFINE_string("export_dir", None, "The model's folder, e.g. saved_models/NAME.")
flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
flags.DEFINE_float("threshold", None,
                   "Score threshold for is_anomaly (in (0, 1) for the paper variant).")
flags.DEFINE_float("threshold_quantile", None,
                   "Set the threshold to this quantile of the training rows' scores.")
flags.mark_flags_as_required(["workdir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # app.run turns on INFO; TF is chatty there
    try:
        path = export.export_workdir(
            FLAGS.workdir, FLAGS.export_dir, version=FLAGS.version, threshold=FLAGS.threshold,
            threshold_quantile=FLAGS.threshold_quantile)
    except (export.ExportError, ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = export.read_metadata(path)
    print(f"exported {path} (threshold score {meta['threshold_score']:.6g}, "
          f"features: {', '.join(meta['feature_names'])})")
    return 0


if __name__ == "__main__":
    app.run(main)
