"""SavedModel export for TF Serving: named signatures, metadata, versioned atomic writes.

Layout: EXPORT_BASE/VERSION/ with VERSION an integer, as TF Serving expects. A version is
written into a hidden staging sibling (.tmp-VERSION-HOST-PID-*, never a number, so neither
TF Serving nor next_version takes it for a version) and renamed into place, so a crash never
leaves a half-written version that the server could pick up, and an existing version is
never overwritten. What a killed export leaves is removed by the next export into the base.
"""

import dataclasses
import json
import math
import os
import re
import shutil
import socket
import tempfile
import zipfile

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf.deploy.serving.contract import (
    EXPLAIN_OUTPUTS,
    EXPLAIN_SIGNATURE,
    FEATURE_NAMES_INPUT,
    FEATURE_NAMES_OUTPUT,
    FEATURE_NAMES_SIGNATURE,
)
from mmocgan_tf.files import plain_mode
from mmocgan_tf.model import explanations
from mmocgan_tf.model.mmocgan import MMOCGAN  # also registers the class load_model builds

METADATA_FILE = "mmocgan_metadata.json"
SERVING_OUTPUTS = ("score", "is_anomaly", "mode", "mode_probs")
MAX_CONTAMINATION = 0.5
# A staging folder's name: .tmp-VERSION-HOST-PID-random (older ones: .tmp-VERSION-random).
STAGING_PREFIX = ".tmp-"
_STAGING = re.compile(r"\.tmp-\d+-(?:(?P<host>.*)-(?P<pid>\d+)-)?[^-]*")


class ExportError(ValueError):
    """An export cannot be written; the message is one line."""


def export_saved_model(model, export_base, *, version=None, extra_metadata=None):
    """Writes model as a new version under export_base and returns its path.

    Signatures: `serving_default` and `score` take `features` float32 [None, d] (raw
    values, training column order); `serving_default` returns score, is_anomaly, mode and
    mode_probs, `score` the score alone, `explain` the per-feature attributions [None, d]
    of the score and the mode (model/explanations.py). `feature_names` returns the d names
    as a string tensor, so a client of the server can map table columns by name; it takes a
    float32 scalar `unused`, since TF Serving's Predict cannot call a signature without
    inputs.
    assets/mmocgan_metadata.json describes the model.

    Args:
      model: a fitted MMOCGAN.
      export_base: the model's folder, e.g. saved_models/NAME.
      version: integer version; default the next free one (1 for a new folder).
      extra_metadata: more JSON-serialisable entries for the metadata (e.g. the run config).

    Raises:
      ExportError: if export_base is a file, or the version exists already or is not a
        positive integer.
    """
    check_export_base(export_base)
    version = next_version(export_base) if version is None else int(version)
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final} exists already; versions are never overwritten")
    os.makedirs(export_base, exist_ok=True)
    remove_stale_staging(export_base)
    staging = tempfile.mkdtemp(
        prefix=f"{STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}-",
        dir=export_base)
    try:
        _archive(model).write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, "assets"), exist_ok=True)
        with open(os.path.join(staging, "assets", METADATA_FILE), "w") as f:
            json.dump({**metadata(model), **(extra_metadata or {})}, f, indent=2)
        os.chmod(staging, plain_mode(folder=True))  # not mkdtemp's 0700: a server reads it
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def check_export_base(export_base):
    """Refuses an export base that exists but is not a folder, before any work is done."""
    if os.path.exists(export_base) and not os.path.isdir(export_base):
        raise ExportError(f"export folder {export_base} is a file, not a folder")


def remove_stale_staging(export_base):
    """Removes the staging folders of exports killed before their rename.

    A staging folder is stale when its process (on this machine) is gone; an older one
    without host and process id counts as stale too. Other machines' are left alone.
    """
    for name in os.listdir(export_base):
        match = _STAGING.fullmatch(name)
        path = os.path.join(export_base, name)
        if match is None or not os.path.isdir(path):
            continue
        if match["pid"] is None or (match["host"] == socket.gethostname()
                                    and not _alive(int(match["pid"]))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def export_workdir(workdir, export_base, *, version=None, threshold=None,
                   threshold_quantile=None, contamination=None):
    """Exports the model a cli.train run left in workdir, optionally with a new threshold.

    At most one of threshold, threshold_quantile and contamination may be given. With any
    of them the metadata records `training_flagged_share`, the share of the run's training
    rows (normal rows only) the new threshold flags, so a threshold that flags nearly all
    of them can be noticed; it is None if those rows cannot be loaded for an explicit
    threshold.

    Args:
      workdir: a training run's folder (model.keras and config.json).
      export_base: where versions go, e.g. saved_models/NAME.
      version: as in export_saved_model.
      threshold: a score threshold in the model's own score units (rows scoring above it
        are anomalies): -log p(x) in nats by default, 1 - D(x) in (0, 1) for the paper
        variant; the model's reference refuses values outside its score's range.
      threshold_quantile: recompute the threshold as this quantile of the scores of the
        run's training rows (reloaded from its config).
      contamination: the share of training rows to flag, in (0, 0.5]; the same as
        threshold_quantile = 1 - contamination.

    Raises:
      ExportError, DataError: missing or unusable workdir, model file, data or threshold;
        an export base that is a file (checked before the model is loaded).
    """
    from mmocgan_tf.config import TrainConfig
    from mmocgan_tf.data import DataError
    from mmocgan_tf.data import loading as data_lib

    given = [name for name, value in (("threshold", threshold),
                                      ("threshold_quantile", threshold_quantile),
                                      ("contamination", contamination)) if value is not None]
    if len(given) > 1:
        raise ExportError(f"give one of threshold, threshold_quantile and contamination, "
                          f"not {' and '.join(given)}")
    if threshold is not None and not math.isfinite(threshold):
        raise ExportError(f"threshold must be a finite score, got {threshold}")
    if threshold_quantile is not None and not 0.0 < threshold_quantile < 1.0:
        raise ExportError(f"threshold_quantile={threshold_quantile} must be in (0, 1)")
    if contamination is not None:
        if not 0.0 < contamination <= MAX_CONTAMINATION:
            raise ExportError(f"contamination={contamination} must be in "
                              f"(0, {MAX_CONTAMINATION}]")
        threshold_quantile = 1.0 - contamination
    check_export_base(export_base)
    if not os.path.isdir(workdir):
        reason = "is a file, not a folder" if os.path.exists(workdir) else "does not exist"
        raise ExportError(f"workdir {workdir} {reason}")
    model_path, config_path = (os.path.join(workdir, n) for n in ("model.keras", "config.json"))
    for path in (model_path, config_path):
        if not os.path.isfile(path):
            raise ExportError(f"{path} not found; is {workdir} a cli.train workdir?")
    try:
        with open(config_path) as f:
            config = TrainConfig.from_dict(json.load(f))
    except (OSError, ValueError) as err:  # ConfigError is a ValueError too
        raise ExportError(f"{config_path}: unreadable or corrupt ({err})") from None
    model = load_trained_model(model_path)
    extra = {"run_config": dataclasses.asdict(config)}
    if threshold is not None:
        try:  # the reference knows its score's range, if it has one
            model.set_threshold(score=threshold)
        except ValueError as err:
            raise ExportError(f"bad threshold: {err}") from None
        try:
            _, x_train, _, _ = data_lib.load_split(config)
        except DataError:  # the rows only check the threshold; an explicit one needs none
            x_train = None
        extra["training_flagged_share"] = None if x_train is None else flagged_share(
            model, x_train)
    if threshold_quantile is not None:
        _, x_train, _, _ = data_lib.load_split(config)
        model.set_threshold(x_train, rule="quantile", quantile=threshold_quantile)
        extra["training_flagged_share"] = flagged_share(model, x_train)
    return export_saved_model(model, export_base, version=version, extra_metadata=extra)


def load_trained_model(model_path):
    """The MMOCGAN saved at model_path; a truncated or corrupt file is named as such.

    Keras says "File not found" for any file that is not a whole zip archive.
    """
    if not zipfile.is_zipfile(model_path):
        raise ExportError(f"{model_path}: unreadable, not a whole .keras archive "
                          "(truncated or corrupt)")
    try:
        model = keras.saving.load_model(model_path)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise ExportError(f"{model_path}: corrupt .keras archive, cannot load the model "
                          f"({type(err).__name__}: {err})") from None
    if not isinstance(model, MMOCGAN):
        raise ExportError(f"{model_path} holds a {type(model).__name__}, not an MMOCGAN")
    return model


def flagged_share(model, x):
    """The share of rows x that the model's current threshold flags as anomalies."""
    return float(np.mean(model.predict(x, batch_size=4096, verbose=0)["is_anomaly"]))


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
            EXPLAIN_SIGNATURE: {"inputs": ["features"], "outputs": list(EXPLAIN_OUTPUTS)},
            FEATURE_NAMES_SIGNATURE: {"inputs": [FEATURE_NAMES_INPUT],
                                      "outputs": [FEATURE_NAMES_OUTPUT]},
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

    def explain(features):
        return explanations.explanation(model, features)

    names = list(model.feature_names)

    def feature_names(unused):
        del unused  # there only because Predict needs an input
        return {FEATURE_NAMES_OUTPUT: tf.constant(names, tf.string)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.add_endpoint("score", score, input_signature=[spec])
    archive.add_endpoint(EXPLAIN_SIGNATURE, explain, input_signature=[spec])
    archive.add_endpoint(FEATURE_NAMES_SIGNATURE, feature_names, input_signature=[
        tf.TensorSpec([], tf.float32, name=FEATURE_NAMES_INPUT)])
    return archive
