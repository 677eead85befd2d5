"""Trains MMOC-GAN: `python -m cli.train --flagfile=configs/demo.flags`.

Writes config.json, model.keras, metrics.json and TensorBoard logs into --workdir. Bad
input ends with one line on stderr and exit status 2; the workdir is left as it was. A
multi-worker task whose cluster does not come together, or loses a task during training,
ends with one line and status 1.
"""

import json
import sys

from absl import app, logging

from cli import flags as config_flags
from mmocgan_tf import training
from mmocgan_tf.config import ConfigError
from mmocgan_tf.data import DataError
from mmocgan_tf.distribute import ClusterError

config_flags.define_config_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # app.run turns on INFO; TF is chatty there
    try:
        config = config_flags.config_from_flags()
        metrics = training.train(config)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary(config, metrics))
    return 0


def summary(config, metrics):
    """A few lines for the terminal; metrics.json has everything."""
    written = (f"wrote {config.workdir}/" if metrics.get("chief", True)
               else "the chief writes the results")
    lines = [f"trained on {metrics['n_train']} normal rows of {metrics['source']} "
             f"in {metrics['fit_seconds']:.1f} s; {written}"]
    for rule, values in metrics.get("eval", {}).items():
        shown = {k: values[k] for k in ("auroc", "auprc", "normal_accuracy",
                                        "anomaly_accuracy", "f1_anomaly")}
        lines.append(f"held-out ({rule} rule): " + json.dumps(
            {k: None if v is None else round(v, 4) for k, v in shown.items()}))
    if "export" in metrics:
        lines.append(f"exported SavedModel: {metrics['export']}")
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main)
