"""One training run from a TrainConfig: load, train, evaluate, and write the workdir.

The workdir is only written once the run has succeeded: everything is produced in a
staging folder first, so a failed run never overwrites a good model, config or log.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np

from mmocgan_tf import data as data_lib
from mmocgan_tf import export
from mmocgan_tf.config import TrainConfig
from mmocgan_tf.metrics import detection_metrics
from mmocgan_tf.model import MMOCGAN

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"


def train(config: TrainConfig):
    """Trains MMOC-GAN as configured and fills config.workdir; returns the metrics dict.

    Raises:
      ConfigError, DataError: bad configuration or data, before anything is written.
    """
    config.validate()
    data, x_train, x_eval, y_eval = data_lib.load_split(config)
    os.makedirs(config.workdir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=config.workdir)
    try:
        model, metrics = _train_into(staging, config, data, x_train, x_eval, y_eval)
        _publish(staging, config.workdir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if config.export_dir:
        metrics["export"] = export.export_saved_model(
            model, config.export_dir, extra_metadata={"run_config": dataclasses.asdict(config)})
    return metrics


def build_model(config: TrainConfig, feature_names):
    """A compiled MMOCGAN for this config, seeded (weights by the global seed, noise by cfg)."""
    keras.utils.set_random_seed(config.model.seed)
    model = MMOCGAN(num_features=len(feature_names), feature_names=feature_names,
                    **dataclasses.asdict(config.model))
    model.compile(d_optimizer=keras.optimizers.Adam(config.d_learning_rate),
                  g_optimizer=keras.optimizers.Adam(config.g_learning_rate),
                  steps_per_execution=config.steps_per_execution)
    return model


def _train_into(folder, config, data, x_train, x_eval, y_eval):
    model = build_model(config, data.feature_names)
    start = time.perf_counter()
    history = model.fit(
        x_train, epochs=config.epochs, batch_size=config.batch_size, verbose=config.verbose,
        callbacks=[keras.callbacks.TensorBoard(os.path.join(folder, LOGS_DIR))])
    fit_seconds = time.perf_counter() - start

    metrics = {
        "source": data.source,
        "feature_names": list(data.feature_names),
        "n_train": int(len(x_train)),
        "fit_seconds": round(fit_seconds, 2),
        "threshold_logit": float(model.threshold_logit.numpy()),
        "target_threshold_logit": float(model.target_threshold_logit.numpy()),
        "final_losses": {k: float(v[-1]) for k, v in history.history.items()},
    }
    if y_eval is not None:
        metrics["eval"] = evaluate(model, x_train, x_eval, y_eval)
    model.save(os.path.join(folder, MODEL_FILE))
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        f.write(config.to_json())
    with open(os.path.join(folder, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
    return model, metrics


def evaluate(model, x_train, x_eval, y_eval):
    """Detection metrics of both decision rules on labelled rows (labels used here only).

    "half" flags D(x) < 0.5; "quantile" flags scores above the configured quantile of the
    scores of the (normal) training rows, whichever rule the model itself applies.
    """
    train_logits = model.predict(x_train, batch_size=4096, verbose=0)["logit"]
    out = model.predict(x_eval, batch_size=4096, verbose=0)
    cut = np.quantile(train_logits, 1.0 - model.config.threshold_quantile)
    rules = {"quantile": out["logit"] < cut, "half": out["logit"] < 0.0}
    return {rule: detection_metrics(y_eval, out["score"], flagged)
            for rule, flagged in rules.items()}


def _publish(staging, workdir):
    """Moves every produced file and folder into workdir, replacing older ones."""
    for name in os.listdir(staging):
        source, destination = os.path.join(staging, name), os.path.join(workdir, name)
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.replace(source, destination)
