"""Resuming an interrupted MMOCGAN fit from its last completed epoch.

The backup is Keras's own keras.callbacks.BackupAndRestore: at every epoch's end it saves
the model's weights, which hold the fitted standardisation and reference, both optimizers
(their step counts too) and the noise stream's state, and the number of epochs done. What
this module adds is what MMOCGAN.fit needs around it for a resumed fit to go on exactly
as an uninterrupted one would have:

- the backup is restored before fit, so fit sees a prepared model and does not refit the
  standardisation or the reference;
- the batch orders: in-memory rows are batched here with the seed an uninterrupted fit
  would have drawn them from, and the pipeline is wound on by the epochs already done, so
  the remaining epochs see the same orders (a dataset given by the caller is wound on
  likewise; a strategy that rewrites the pipeline for its workers starts it afresh, see
  fit).

Python use (the same as mmocgan-train does):

    history, resumed_from = resume.fit(model, x, epochs=300, folder="runs/mine/.resume")

A rerun with the same model, rows and folder after a kill continues from the last epoch
saved; delete the folder after a successful fit (fit leaves it, so that the caller can
publish its results first).
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf

from mmocgan_tf.data import pipeline
from mmocgan_tf.model.references.base import is_dataset

__all__ = ["backup_callback", "check_settings", "completed_epochs", "epochs_agree", "fit",
           "save_settings"]

BACKUP = "backup"  # BackupAndRestore's own folder, inside the resume folder
SETTINGS = "config.json"  # the run's resolved config and data, beside the backup
# TrainConfig fields that do not change what is trained: a rerun may change them.
FREE_FIELDS = ("verbose", "cluster_timeout", "export_dir")


def backup_callback(folder):
    """keras.callbacks.BackupAndRestore writing into folder/backup after every epoch.

    It keeps the previous epoch's files as well (a kill while writing leaves one good
    copy) and never deletes them itself: the caller removes the folder once the results
    are safe.
    """
    return keras.callbacks.BackupAndRestore(os.path.join(folder, BACKUP),
                                            double_checkpoint=True, delete_checkpoint=False)


def completed_epochs(folder):
    """The epochs done by the fit backed up in folder (0: no backup)."""
    path = os.path.join(folder, BACKUP, "training_metadata.json")
    for candidate in (path, path + ".bkp"):
        try:
            with open(candidate) as f:
                return int(json.load(f)["epoch"])
        except (OSError, ValueError, KeyError):
            continue
    return 0


def fit(model, x, epochs, folder, batch_size=100, prepare_x=None, threshold_x=None,
        callbacks=(), **kwargs):
    """model.fit(x, epochs) with a backup in folder; continues a fit that was killed.

    Args:
      model: a compiled MMOCGAN, built the same way as for the interrupted fit (same
        config and seed), not fitted before.
      x: normal rows [n, d], or a tf.data.Dataset of batches of raw rows.
      epochs: the total number of epochs, including those done before the interruption.
      folder: where the backup lives (created at the first epoch's end).
      batch_size: rows per batch, for rows x.
      prepare_x: what the standardisation and the reference are fitted on (default x).
        Pass a second, identically built dataset when x is a dataset: fitting on x itself
        would advance its reshuffles by a count a resumed fit cannot know.
      threshold_x: what the threshold is set on after training (default: prepare_x).
      callbacks: more Keras callbacks; **kwargs: more arguments of model.fit.

    Returns:
      (history, resumed_from): Keras's History of the epochs run now, and the epochs that
      were restored from the backup (0 for a fresh fit).
    """
    callback = backup_callback(folder)
    resumed_from = completed_epochs(folder)
    if resumed_from:  # Keras's own restore, before fit: prepare must see a prepared model
        callback.set_model(model)
        callback.on_train_begin()
    prepare_x = x if prepare_x is None else prepare_x
    if not bool(model.prepared.numpy()):
        model.prepare(prepare_x, batch_size=None if is_dataset(prepare_x) else batch_size)
    data = x
    if not is_dataset(x):
        # The seed MMOCGAN.fit would have keyed this fit's orders on: the step count when
        # it began, before the restored epochs.
        steps = -(-len(x) // batch_size)
        began = int(model.d_optimizer.iterations.numpy()) - resumed_from * steps
        data = pipeline.array_batches(x, batch_size, [model.config.seed, began])
    for _ in range(_iterators_before(resumed_from, data)):  # each draws the next order
        iter(data)
    history = model.fit(data, epochs=epochs, callbacks=[callback, *callbacks],
                        threshold_x=prepare_x if threshold_x is None else threshold_x,
                        **kwargs)
    return history, resumed_from


def _iterators_before(epoch, dataset):
    """How many iterators Keras's epoch loop has made of dataset when `epoch` begins.

    Each new iterator reshuffles, so this is how far a resumed fit winds the pipeline on.
    Keras (trainers/epoch_iterator.py) makes one at every epoch's start and, when the
    dataset's length is known, one more at its end; tests/test_resume.py checks that a
    resumed fit still ends exactly where an uninterrupted one does.
    """
    return epoch * (2 if int(dataset.cardinality()) >= 0 else 1)


def settings(config, feature_names, n_train):
    """What a resumed run must share with the run it continues: config and data shape."""
    values = {k: v for k, v in dataclasses.asdict(config).items() if k not in FREE_FIELDS}
    values["feature_names"], values["n_train"] = list(feature_names), int(n_train)
    return json.loads(json.dumps(values))  # tuples as lists, as they read back


def save_settings(folder, values):
    """Writes folder/config.json (whole or not at all: a kill may come at any time)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, SETTINGS)
    with open(path + ".tmp", "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def check_settings(folder, values):
    """The fields of values that differ from those saved in folder (None: nothing saved)."""
    try:
        with open(os.path.join(folder, SETTINGS)) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    flat_saved, flat_now = _flat(saved), _flat(values)
    return sorted(k for k in flat_saved.keys() | flat_now.keys()
                  if flat_saved.get(k) != flat_now.get(k))


def _flat(values, prefix=""):
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, prefix))  # the model's fields are flags of their own
        else:
            out[prefix + key] = value
    return out


def epochs_agree(strategy, epoch):
    """Whether every task of the strategy restored the same epoch (all tasks must call it).

    Each task of a multi-worker run restores its own backup; tasks killed between their
    epoch-end saves would resume from different epochs and train apart (or hang). Every
    task gets the same answer: the spread of the epochs over the replicas is 0 or not.
    """
    def mean(value):
        per_replica = strategy.run(lambda: tf.constant(value, tf.float64))
        return float(strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None))

    return mean(float(epoch) ** 2) - mean(float(epoch)) ** 2 < 1e-9
