"""Exports a trained run for TF Serving: saved_models/NAME/VERSION/.

  mmocgan-export --workdir=runs/demo --export_dir=saved_models/thyroid
  mmocgan-export --workdir=runs/demo --export_dir=saved_models/thyroid --threshold=0.9

(`python -m cli.export` in a clone.) A new threshold (--threshold as a score, or
--threshold_quantile of the training scores) is written as a new version; existing
versions are never touched. Bad input ends with one `error:` line and exit status 2.
"""

import functools

from absl import flags

from mmocgan_tf.cli import app
from mmocgan_tf.deploy import export

FLAGS = flags.FLAGS


@functools.cache
def define_flags():
    """Defines the workdir to read, the export folder and the threshold overrides."""
    flags.DEFINE_string("workdir", None, "An mmocgan-train workdir (model.keras, config.json).")
    flags.DEFINE_string("export_dir", None, "The model's folder, e.g. saved_models/NAME.")
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    flags.DEFINE_float("threshold", None,
                       "Score threshold for is_anomaly (in (0, 1) for the paper variant).")
    flags.DEFINE_float("threshold_quantile", None,
                       "Set the threshold to this quantile of the training rows' scores.")
    flags.mark_flags_as_required(["workdir", "export_dir"])


@app.command
def main():
    path = export.export_workdir(
        FLAGS.workdir, FLAGS.export_dir, version=FLAGS.version, threshold=FLAGS.threshold,
        threshold_quantile=FLAGS.threshold_quantile)
    meta = export.read_metadata(path)
    print(f"exported {path} (threshold score {meta['threshold_score']:.6g}, "
          f"features: {', '.join(meta['feature_names'])})")
    return 0


def run():
    """The mmocgan-export console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
