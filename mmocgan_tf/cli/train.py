"""Trains MMOC-GAN and reports its held-out AUROC and accuracies.

    mmocgan-train --workdir=runs/demo        # the demo job: bundled thyroid data
    mmocgan-train --config=paper             # the paper's hyper-parameters
    mmocgan-train --data=my.csv --label_column=label --normal_label=ok --workdir=runs/mine
    python -m cli.train --flagfile=configs/demo.flags    # in a clone

With no flags it trains the demo job on the thyroid data shipped with the package.
--config=NAME reads a flagfile shipped with the package (demo, paper); flags given on the
command line or in a --flagfile override its values. Writes config.json, model.keras,
metrics.json and TensorBoard logs into --workdir and, when labelled rows were held out,
figures/scores.png, roc.png, pr.png and explanations.png (the plots extra; --noplots
skips them). Shows one progress line on stderr (--verbose=0: none, 2: Keras's line per
epoch). Bad input ends with one line on stderr and exit status 2; the workdir is left as
it was. A multi-worker task whose cluster does not come together, or loses a task during
training, ends with one line and status 1.

A run that is killed (Ctrl-C, SIGTERM, or even kill -9) after an epoch keeps a backup in
WORKDIR/.resume: the same command started again continues from its last completed epoch
(metrics.json: resumed_from_epoch). Other settings than the backup's are refused; remove
WORKDIR/.resume to start over.
"""

import functools
import importlib
import json
import os
import signal
import sys

from absl import flags

from mmocgan_tf.cli import app, presets
from mmocgan_tf.cli import flags as config_flags
from mmocgan_tf.training import fit as training

FLAGS = flags.FLAGS


@functools.cache
def define_flags():
    """Defines a flag per TrainConfig and ModelConfig field, and --config."""
    config_flags.define_choice(
        "config", "", presets.names(),
        "A flagfile shipped with the package, by name: its values apply to every flag not "
        "given on the command line or in a --flagfile (the files: mmocgan_tf/cli/configs/).")
    flags.DEFINE_boolean("plots", True, "Draw the held-out rows' score histogram, ROC and "
                         "precision-recall curves and the attributions of the "
                         "highest-scoring rows into WORKDIR/figures (the plots extra).")
    config_flags.define_config_flags()


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: cleaned up, the resume backup kept


@app.command
def main():
    signal.signal(signal.SIGTERM, _interrupt)
    if FLAGS.config:
        presets.apply(FLAGS.config)
    config = config_flags.config_from_flags()
    figures = FLAGS.plots and plots_available()
    metrics = training.train(config, figures=figures)
    print(summary(config, metrics))
    if FLAGS.plots and not figures and "eval" in metrics:
        print(NO_PLOTS, file=sys.stderr)
    return 0


NO_PLOTS = ("note: no pictures of the held-out rows: matplotlib is not installed; "
            "pip install 'mmocgan-tf[plots]' to get them (--noplots hides this note)")


def plots_available():
    """Whether the pictures can be drawn: the plots package and matplotlib import."""
    try:
        importlib.import_module("mmocgan_tf.evaluation.plots")
    except ImportError:
        return False
    return True


def summary(config, metrics):
    """A few lines for the terminal; metrics.json has everything.

    Args:
      config: the run's TrainConfig.
      metrics: what training.train returned.

    Returns:
      The lines, joined.
    """
    written = (f"wrote {config.workdir}/" if metrics.get("chief", True)
               else "the chief writes the results")
    lines = [f"trained on {metrics['n_train']} normal rows of {metrics['source']} "
             f"in {metrics['fit_seconds']:.1f} s; {written}"]
    for rule, values in metrics.get("eval", {}).items():
        shown = {k: values[k] for k in ("auroc", "auprc", "normal_accuracy",
                                        "anomaly_accuracy", "f1_anomaly")}
        lines.append(f"held-out ({rule} rule): " + json.dumps(
            {k: None if v is None else round(v, 4) for k, v in shown.items()}))
    if metrics.get("figures") and metrics.get("chief", True):
        folder = os.path.join(config.workdir, os.path.dirname(metrics["figures"][0]))
        names = ", ".join(os.path.basename(path) for path in metrics["figures"])
        lines.append(f"pictures in {folder}/: {names}")
    if "export" in metrics:
        lines.append(f"exported SavedModel: {metrics['export']}")
    return "\n".join(lines)


def run():
    """The mmocgan-train console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
