"""What a custom train_step needs to stay correct when tf.distribute replicates it.

Keras splits each global batch across the replicas, but several of MMOC-GAN's loss terms are
statistics of the whole batch (feature matching compares batch means, the mode term uses the
batch's average Q(c|x), the pull-away term compares every pair of rows). `gather` hands the
losses the global batch, so a replicated step computes what one device computes. On one
device it returns its inputs unchanged: single-device graphs carry no extra ops.

Noise: a keras SeedGenerator's state is mirrored, so on its own it draws the same noise on
every replica. Folding the replica id into a stateless seed gives each replica its own noise
while keeping runs reproducible.
"""

import math

import tensorflow as tf


def _replica_context():
    """The replica context of a step replicated over >= 2 replicas, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def gather(*tensors):
    """Rows of the global batch: each tensor's rows from every replica, concatenated.

    Differentiable: the gradient of an all-gather sums the replicas' upstream gradients and
    hands each replica its own rows back, so a loss computed on gathered rows and scaled by
    noise.loss_scale() gives, summed over replicas, the gradient of the global-batch loss.
    Replicas may hold different numbers of rows (a final partial batch, or none at all).
    Loss terms are means over rows, so the row order (replica by replica) does not matter.

    Args:
      *tensors: per-row tensors of this replica with rows along axis 0, of one dtype and
        static trailing shapes (gather integer codes in a call of their own).

    Returns:
      A tuple of the gathered tensors; on one device (or outside a step) the inputs.
    """
    context = _replica_context()
    if context is None:
        return tensors
    # One all-gather of the tensors side by side: a single collective per call, and TF's
    # all_gather gradient cannot take several tensors of different ranks at once.
    widths = [math.prod(t.shape[1:]) for t in tensors]
    columns = [tf.reshape(t, [-1, width]) for t, width in zip(tensors, widths, strict=True)]
    gathered = context.all_gather(tf.concat(columns, axis=1), axis=0)
    parts = tf.split(gathered, widths, axis=1)
    return tuple(tf.reshape(part, [-1, *t.shape[1:]])
                 for part, t in zip(parts, tensors, strict=True))


def step_logs(logs):
    """Logs as train_step should return them under the current strategy.

    Across several workers Keras reduces each log with strategy.reduce(..., axis=0), which
    fails on scalars (tensorflow/tensorflow#72388); shape [1] reduces to a plain number.
    Everywhere else the scalars are returned as they are, so History holds plain floats.
    """
    strategy = tf.distribute.get_strategy()
    # Keras takes its cross-worker reduction path exactly when this (private) flag is set.
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    if in_multi_worker_mode is None or not in_multi_worker_mode():
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def steps_per_execution(requested, strategy):
    """The steps_per_execution Keras can run under `strategy`: 1 when it has >= 2 replicas.

    Keras 3 runs several steps per call in a while loop whose tf.cond cannot hold a
    replicated step (its merge calls): fit fails with "You must feed a value for placeholder
    tensor" (keras-team/keras#19246), even for a plain Sequential model.
    """
    return 1 if strategy.num_replicas_in_sync > 1 else requested


def replica_seeds(seed_generator, count):
    """Returns `count` independent int32 [2] stateless seeds for this step and replica."""
    base = tf.cast(seed_generator.next(), tf.int32)
    context = tf.distribute.get_replica_context()
    replica = context.replica_id_in_sync_group if context is not None else 0
    base = tf.random.experimental.stateless_fold_in(base, replica)
    return [tf.random.experimental.stateless_fold_in(base, i) for i in range(count)]


def loss_scale():
    """1 / replicas: Keras's optimizer SUMs replica gradients, so each replica's loss is scaled."""
    return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
