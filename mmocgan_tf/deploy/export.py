"""SavedModel export for TF Serving: named signatures, metadata, versioned atomic writes.

Layout: EXPORT_BASE/VERSION/ with VERSION an integer, as TF Serving expects. A version is
written into a hidden temporary sibling and renamed into place, so a crash never leaves a
half-written version that the server could pick up, and an existing version is never
overwritten.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf.model.mmocgan import MMOCGAN  # also registers the class load_model builds

METADATA_FILE = "mmocgan_metadata.json"
SERVING_OUTPUTS = ("score", "is_anomaly", "mode", "mode_probs")


class ExportError(ValueError):
    """An export cannot be written; the message is one line."""


def export_saved_model(model, export_base, *, version=None, extra_metadata=None):
    """Writes model as a new version under export_base and returns its path.

    Signatures, both taking `features` float32 [None, d] (raw values, training column
    order): `serving_default` returns score, is_anomaly, mode and mode_probs; `score`
    returns the score alone. assets/mmocgan_metadata.json describes the model.

    Args:
      model: a fitted MMOCGAN.
      export_base: the model's folder, e.g. saved_models/NAME.
      version: integer version; default the next free one (1 for a new folder).
      extra_metadata: more JSON-serialisable entries for the metadata (e.g. the run config).

    Raises:
      ExportError: if the version exists already or is not a positive integer.
    """
    version = next_version(export_base) if version is None else int(version)
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final} exists already; versions are never overwritten")
    os.makedirs(export_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_base)
    try:
        _archive(model).write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, "assets"), exist_ok=True)
        with open(os.path.join(staging, "assets", METADATA_FILE), "w") as f:
            json.dump({**metadata(model), **(extra_metadata or {})}, f, indent=2)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def export_workdir(workdir, export_base, *, version=None, threshold=None,
                   threshold_quantile=None):
    """Exports the model a cli.train run left in workdir, optionally with a new threshold.

    Args:
      workdir: a training run's folder (model.keras and config.json).
      export_base: where versions go, e.g. saved_models/NAME.
      version: as in export_saved_model.
      threshold: an explicit score threshold in (0, 1).
      threshold_quantile: recompute the threshold as this quantile of the scores of the
        run's training rows (reloaded from its config; they hold normal rows only).

    Raises:
      ExportError, DataError: missing or unusable workdir, data or threshold.
    """
    from mmocgan_tf.config import TrainConfig
    from mmocgan_tf.data import loading as data_lib

    model_path, config_path = (os.path.join(workdir, n) for n in ("model.keras", "config.json"))
    for path in (model_path, config_path):
        if not os.path.isfile(path):
            raise ExportError(f"{path} not found; is {workdir} a cli.train workdir?")
    with open(config_path) as f:
        config = TrainConfig.from_dict(json.load(f))
    model = keras.saving.load_model(model_path)
    if not isinstance(model, MMOCGAN):
        raise ExportError(f"{model_path} holds a {type(model).__name__}, not an MMOCGAN")
    if threshold is not None and threshold_quantile is not None:
        raise ExportError("give threshold or threshold_quantile, not both")
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
            raise ExportError(f"threshold={threshold} must be a score in (0, 1)")
        model.set_threshold(score=threshold)
    if threshold_quantile is not None:
        if not 0.0 < threshold_quantile < 1.0:
            raise ExportError(f"threshold_quantile={threshold_quantile} must be in (0, 1)")
        _, x_train, _, _ = data_lib.load_split(config)
        model.set_threshold(x_train, rule="quantile", quantile=threshold_quantile)
    return export_saved_model(model, export_base, version=version,
                              extra_metadata={"run_config": dataclasses.asdict(config)})


def next_version(export_base):
    """1 + the largest integer version folder under export_base (1 if there is none)."""
    if not os.path.isdir(export_base):
        return 1
    versions = [int(name) for name in os.listdir(export_base) if name.isdigit()]
    return max(versions, default=0) + 1


def latest_version_dir(path):
    """path itself if it is a version folder, else its newest integer version folder."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if not os.path.isdir(path):
        raise ExportError(f"{path}: no such model folder")
    version = next_version(path) - 1
    if version < 1:
        raise ExportError(f"{path}: no SavedModel and no version folders in it")
    return os.path.join(path, str(version))


def read_metadata(version_dir):
    with open(os.path.join(version_dir, "assets", METADATA_FILE)) as f:
        return json.load(f)


def metadata(model):
    """What clients need besides the graph: feature order, config, training statistics."""
    from mmocgan_tf import __version__

    threshold = float(model.normality_threshold.numpy())
    return {
        "feature_names": list(model.feature_names),
        "num_features": model.num_features,
        "num_modes": model.config.num_modes,
        "model_config": dataclasses.asdict(model.config),
        "threshold_normality": threshold,
        "threshold_score": float(model.reference.score(tf.constant(threshold))),
        "training_statistics": {
            "feature_mean": model.standardizer.mean.numpy().tolist(),
            "feature_std": model.standardizer.scale.numpy().tolist(),
            "density_threshold": float(model.reference.density_threshold.numpy()),
        },
        "signatures": {
            "serving_default": {"inputs": ["features"], "outputs": list(SERVING_OUTPUTS)},
            "score": {"inputs": ["features"], "outputs": ["score"]},
        },
        "package_version": __version__,
    }


def _archive(model):
    spec = tf.TensorSpec([None, model.num_features], tf.float32, name="features")
    model(np.zeros((1, model.num_features), np.float32))  # a subclass must have been called

    def serve(features):
        out = model(features)
        return {name: out[name] for name in SERVING_OUTPUTS}

    def score(features):
        return {"score": model(features)["score"]}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.add_endpoint("score", score, input_signature=[spec])
    return archive
