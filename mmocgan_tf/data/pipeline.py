"""The data layer's input pipeline for arrays: seeded shuffles, sharded by data.

`array_batches` feeds rows held in memory to MMOCGAN.fit and to its target network's
training; the streams (`streaming`) use the same seeded shuffle and sharding, so a
stream and an array of the same rows are batched by one set of rules.
"""

import numpy as np
import tensorflow as tf

__all__ = ["array_batches", "seeded_shuffle", "shard_by_data"]


def array_batches(x, batch_size, seed, shuffle=True):
    """In-memory rows as batches in a new order every epoch, the orders drawn from `seed`.

    The orders depend on `seed` alone, not on TensorFlow's global seed (see
    seeded_shuffle). Workers share the seed, so they draw the same orders and each keeps
    its share of the batches (sharded by data). Starting an epoch stays cheap: no Python
    runs in the pipeline, and tf.data's autotuning, which has nothing to tune in it, is off
    (its background thread could delay an epoch's start). The shuffle buffer holds a
    second copy of the rows.

    Args:
        x: Rows [n, d], converted to float32.
        batch_size: Rows per batch (the global batch under a distribution strategy).
        seed: An int or a sequence of ints.
        shuffle: False keeps the rows in order.

    Returns:
        A tf.data.Dataset of float32 batches [<= batch_size, d].
    """
    rows = tf.data.Dataset.from_tensor_slices(np.asarray(x, np.float32))
    if shuffle:
        rows = seeded_shuffle(rows, len(x), seed)
    options = tf.data.Options()
    options.autotune.enabled = False
    return shard_by_data(rows.batch(batch_size)).prefetch(2).with_options(options)


def seeded_shuffle(dataset, buffer, seed):
    """dataset.shuffle(buffer) reshuffled every epoch, with orders drawn from `seed` alone.

    Dataset.shuffle mixes TensorFlow's global seed into its own when one is set, so a model
    reinitialized with seed s (MMOCGAN.reinitialize) would see other orders than a fresh
    model built after keras.utils.set_random_seed(s); setting the global seed instead clears
    TensorFlow's function caches, which is slow. The same shuffle op, given its two seeds
    directly, depends on `seed` only.

    Args:
        dataset: A dataset of single tensors (not tuples).
        buffer: Elements in the shuffle buffer; 0 or None leaves the order as it is.
        seed: An int or a sequence of ints.

    Returns:
        The shuffled dataset.
    """
    if not buffer:
        return dataset
    seeds = np.random.default_rng(seed).integers(1, 2**62, size=2)
    variant = tf.raw_ops.ShuffleDatasetV3(
        input_dataset=tf.data.experimental.to_variant(dataset), buffer_size=buffer,
        seed=seeds[0], seed2=seeds[1], seed_generator=tf.raw_ops.DummySeedGenerator(),
        reshuffle_each_iteration=True,
        output_types=[dataset.element_spec.dtype], output_shapes=[dataset.element_spec.shape])
    return tf.data.experimental.from_variant(variant, dataset.element_spec)


def shard_by_data(dataset):
    """The dataset set to be sharded by data, not by file, across a multi-worker strategy.

    One file cannot be split between workers by file, and arrays have no files at all.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
