"""One training run from a TrainConfig: load, train, evaluate, and write the workdir.

The workdir is only written once the run has succeeded: everything is produced in a
staging folder first, so a failed run never overwrites a good model, config or log.
At verbose=1 the fit shows one progress line (training/progress.py) rather than a Keras
bar per epoch; verbose=2 keeps Keras's line per epoch.

A run that is killed keeps a backup of its last completed epoch in WORKDIR/.resume
(training/resume.py, keras.callbacks.BackupAndRestore); the same run started again
continues from there, and the backup is deleted once the results are published.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf.config import ConfigError, TrainConfig
from mmocgan_tf.data import loading as data_lib
from mmocgan_tf.data import streaming
from mmocgan_tf.deploy import export
from mmocgan_tf.evaluation.metrics import detection_metrics
from mmocgan_tf.model.mmocgan import MMOCGAN
from mmocgan_tf.training import distribute, resume
from mmocgan_tf.training.progress import EpochProgress

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"
FIGURES_DIR = "figures"
RESUME_DIR = ".resume"  # the backup of an interrupted run, found again by a rerun
STAGING_PREFIX = ".staging-"


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """What a run trains and evaluates on: arrays, or a tf.data pipeline when streaming."""

    source: str
    feature_names: tuple
    fit_data: object  # what fit gets: the float32 [n, d] rows, or a dataset of raw batches
    n_train: int
    x_train: np.ndarray | None = None  # the training rows, when in memory
    x_eval: np.ndarray | None = None
    y_eval: np.ndarray | None = None
    new_batches: object = None  # streaming: makes another dataset like fit_data


def train(config: TrainConfig, figures=False):
    """Trains MMOC-GAN as configured and fills config.workdir; returns the metrics dict.

    figures=True also draws the held-out rows' score histogram, ROC and precision-recall
    curves into config.workdir/figures when there are labelled held-out rows (it needs
    matplotlib, the plots extra); metrics["figures"] then lists them, relative to workdir.
    Under --strategy=multi_worker every task runs this with the same config; the chief
    writes config.workdir (and export_dir), the other workers write the same files to a
    temporary folder that is removed afterwards, so all of them take part in every step.
    Each task backs its fit up in resume_folder(...) after every epoch; started again with
    the same config, train continues from the last epoch backed up (metrics
    "resumed_from_epoch"), and the backup goes once the results are published.

    Raises:
      ConfigError, DataError: bad configuration or data, or a backup in the workdir of a
        run with other settings, before anything is written.
      distribute.ClusterError: a multi_worker cluster that did not come together, or lost
        a task during training.
    """
    config.validate()
    for name in ("workdir", "export_dir"):
        path = getattr(config, name)
        if path and os.path.exists(path) and not os.path.isdir(path):
            raise ConfigError(f"{name}={path} is a file, not a folder")
    started = time.time()
    # First: threads, logical CPU devices and a multi-worker cluster must be set up before
    # TF runs ops.
    distribute.set_intra_op_threads(config.intra_op_threads)
    strategy = distribute.make_strategy(config.strategy, config.cpu_replicas,
                                        config.cluster_timeout)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the {replicas} "
                          "replicas (Keras fails on a first batch it cannot split evenly)")
    inputs = _load_inputs(config)
    chief = distribute.is_chief(strategy)
    backup = resume_folder(config.workdir, strategy)
    settings = resume.settings(config, inputs.feature_names, inputs.n_train)
    resumed_from = _check_backup(backup, settings, strategy)
    created = not os.path.isdir(config.workdir)
    workdir = config.workdir if chief else tempfile.mkdtemp(prefix="mmocgan-worker-")
    try:
        os.makedirs(workdir, exist_ok=True)
        _remove_stale_staging(workdir, started)
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=workdir)
        try:
            resume.save_settings(backup, settings)
            model, metrics = _train_into(staging, config, strategy, inputs, backup,
                                         resumed_from, figures)
            _publish(staging, workdir)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as err:
            if not distribute.is_multi_worker(strategy):
                raise
            lines = [line.strip() for line in str(err.message).splitlines()]
            reason = next((line for line in lines if "aborted by" in line or "down" in line),
                          lines[-1] if lines else "")
            raise distribute.ClusterError(
                f"multi_worker: lost another task of the cluster during training "
                f"({type(err).__name__}: {reason})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(backup, ignore_errors=True)  # the results are safe: nothing to resume
        if config.export_dir:
            exported = export.export_saved_model(
                model, config.export_dir if chief else os.path.join(workdir, "export"),
                extra_metadata={"run_config": dataclasses.asdict(config)})
            if chief:
                metrics["export"] = exported
    finally:
        if not chief:
            shutil.rmtree(workdir, ignore_errors=True)
        _tidy(config.workdir, backup, created)
    return metrics


def resume_folder(workdir, strategy=None):
    """Where a run in workdir keeps its backup: WORKDIR/.resume (the chief's).

    Under multi_worker every task restores its own backup, so the other tasks keep theirs
    in WORKDIR/.resume/TYPE-INDEX: apart from the chief's when the workdir is shared.
    """
    folder = os.path.join(workdir, RESUME_DIR)
    if strategy is None or distribute.is_chief(strategy):
        return folder
    resolver = strategy.cluster_resolver
    return os.path.join(folder, f"{resolver.task_type}-{int(resolver.task_id or 0)}")


def _check_backup(folder, settings, strategy):
    """The epochs a backup in folder holds for this run (0: none), or a ConfigError.

    A backup of a run with other settings is refused, not mixed into this one.
    """
    epochs = resume.completed_epochs(folder)
    changed = resume.check_settings(folder, settings) if epochs else []
    # Every task of a cluster takes part in the check before any of them refuses.
    agree = (not distribute.is_multi_worker(strategy)
             or resume.epochs_agree(strategy, -1 if changed != [] else epochs))
    if changed != []:
        what = ("its settings are unreadable" if changed is None
                else f"it had other values of {', '.join(changed)}")
        raise ConfigError(
            f"{folder} holds the backup of an interrupted run after {epochs} epochs, but "
            f"{what}; rerun with its settings to resume it, or remove {folder} (or use "
            "another --workdir) to start over")
    if not agree:
        raise ConfigError(
            f"the tasks' backups hold different epochs or settings (this task's {folder}: "
            f"{epochs} epochs); remove WORKDIR/.resume on every task to start over")
    return epochs


def _remove_stale_staging(workdir, started):
    """Removes staging folders that runs killed before publishing left in workdir.

    Only folders named like a staging folder and older than this run: a killed run's
    staging holds nothing it would publish.
    """
    for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        if (name.startswith(STAGING_PREFIX) and os.path.isdir(path)
                and not os.path.islink(path) and os.path.getmtime(path) < started):
            shutil.rmtree(path, ignore_errors=True)


def _tidy(workdir, backup, created):
    """After a run, leaves no backup without an epoch in it and no empty new workdir.

    A backup with a completed epoch stays (that is what a rerun resumes); the workdir goes
    only if this run created it and nothing is left in it.
    """
    if not resume.completed_epochs(backup):
        shutil.rmtree(backup, ignore_errors=True)
    folders = [os.path.dirname(backup)] if os.path.dirname(backup) != workdir else []
    folders += [workdir] if created else []
    for folder in folders:
        try:
            os.rmdir(folder)  # only when empty
        except OSError:
            pass


def build_model(config: TrainConfig, feature_names, strategy=None):
    """A compiled MMOCGAN for this config (its seed sets weights, noise and batch orders).

    Built and compiled under `strategy` (default: the current one), so fit distributes.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = MMOCGAN(num_features=len(feature_names), feature_names=feature_names,
                        **dataclasses.asdict(config.model))
        model.compile(d_optimizer=keras.optimizers.Adam(config.d_learning_rate),
                      g_optimizer=keras.optimizers.Adam(config.g_learning_rate),
                      steps_per_execution=config.steps_per_execution)
    return model


def _load_inputs(config):
    """The training (and evaluation) data, checked before any model is built."""
    seed = config.model.seed
    if config.streaming:
        stream = streaming.open_stream(config.data, tuple(config.feature_columns) or None)
        count = streaming.scan(stream).count
        if count < config.batch_size:
            raise data_lib.DataError(
                f"only {count} training rows, fewer than one batch of {config.batch_size}; "
                "use a smaller batch size or more data")
        def new_batches():
            return stream.batches(config.batch_size, config.shuffle_buffer, seed, count)

        return _Inputs(stream.path, stream.feature_names, new_batches(), count,
                       new_batches=new_batches)
    # Arrays: MMOCGAN.fit draws every worker's batch orders from the model's seed.
    data, x_train, x_eval, y_eval = data_lib.load_split(config)
    return _Inputs(data.source, data.feature_names, x_train, len(x_train), x_train, x_eval,
                   y_eval)


def _train_into(folder, config, strategy, inputs, backup, resumed_from, figures=False):
    model = build_model(config, inputs.feature_names, strategy)
    progress = EpochProgress(enabled=config.verbose == 1, initial_epoch=resumed_from)
    start = time.perf_counter()
    # Streaming: the standardisation and reference are fitted on a twin of the training
    # pipeline, so that the training pipeline's reshuffles are the epochs' alone.
    prepare_x = inputs.new_batches() if inputs.new_batches else None
    try:
        history, resumed_from = resume.fit(
            model, inputs.fit_data, config.epochs, backup, batch_size=config.batch_size,
            prepare_x=prepare_x, verbose=2 if config.verbose == 2 else 0,
            callbacks=[keras.callbacks.TensorBoard(os.path.join(folder, LOGS_DIR)), progress])
    finally:  # a fit that raised leaves no half line before the error
        progress.close()
    fit_seconds = time.perf_counter() - start

    metrics = {
        "source": inputs.source,
        "feature_names": list(inputs.feature_names),
        "n_train": int(inputs.n_train),
        "fit_seconds": round(fit_seconds, 2),
        "strategy": config.strategy,
        "replicas": int(strategy.num_replicas_in_sync),
        "chief": distribute.is_chief(strategy),
        "normality_threshold": float(model.normality_threshold.numpy()),
        "density_threshold": float(model.reference.density_threshold.numpy()),
        "final_losses": {k: float(v[-1]) for k, v in history.history.items()},
        "resumed_from_epoch": int(resumed_from),  # epochs restored from WORKDIR/.resume
        "epochs_run": len(next(iter(history.history.values()), [])),  # by this process
    }
    if inputs.y_eval is not None:
        metrics["eval"] = evaluate(model, inputs.x_train, inputs.x_eval, inputs.y_eval)
        if figures and metrics["chief"]:  # the other workers' files are thrown away
            metrics["figures"] = draw_figures(folder, model, inputs.x_eval, inputs.y_eval,
                                              inputs.source)
    model.save(os.path.join(folder, MODEL_FILE))
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        f.write(config.to_json())
    with open(os.path.join(folder, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
    return model, metrics


def evaluate(model, x_train, x_eval, y_eval):
    """Detection metrics of the decision rules on labelled rows (labels used here only).

    "quantile" flags scores above the configured quantile of the scores of the (normal)
    training rows, whichever rule the model itself applies; the paper's variant also gets
    "half", which flags D(x) < 0.5.
    """
    train_normality = _outputs(model, x_train)["normality"]
    out = _outputs(model, x_eval)
    cut = np.quantile(train_normality, 1.0 - model.config.threshold_quantile)
    rules = {"quantile": out["normality"] < cut}
    if model.reference.score_is_probability:
        rules["half"] = out["normality"] < 0.0
    return {rule: detection_metrics(y_eval, out["score"], flagged)
            for rule, flagged in rules.items()}


def draw_figures(folder, model, x_eval, y_eval, source):
    """folder/figures: held-out scores against the model's threshold, ROC and PR curves,
    and explanations.png, the attributions of the highest-scoring held-out rows (chosen by
    score alone).

    Returns the PNG paths relative to folder. Imports the plots package (matplotlib) here,
    so training without the extra never needs it.
    """
    from mmocgan_tf.evaluation import plots

    scores = _outputs(model, x_eval)["score"]
    threshold = float(np.asarray(model.reference.score(model.normality_threshold)))
    config = model.config
    if config.threshold_rule == "half":
        how = "threshold: D(x) < 0.5"
    else:
        how = f"threshold: {100 * config.threshold_quantile:g}th pct of training scores"
    name = source if ":" in source else os.path.basename(source)
    figures = os.path.join(folder, FIGURES_DIR)
    paths = plots.heldout_figures(y_eval, scores, threshold, figures, name, threshold_label=how)
    explained = plots.heldout_explanations(model, x_eval, scores, figures, name, y=y_eval)
    paths += [explained] if explained is not None else []
    return [os.path.relpath(p, folder) for p in paths]


def _outputs(model, x, chunk=4096):
    """The model's outputs for rows x, by direct calls on this process only.

    Unlike predict, this never distributes: under a multi-worker strategy, predict would
    share the rows out between the workers and gather them back.
    """
    parts = [model(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return {key: np.concatenate([p[key].numpy() for p in parts]) for key in ("normality", "score")}


def _publish(staging, workdir):
    """Moves every produced file and folder into workdir, replacing older ones."""
    for name in os.listdir(staging):
        source, destination = os.path.join(staging, name), os.path.join(workdir, name)
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.replace(source, destination)
