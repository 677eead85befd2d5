"""Seeds for the noise of training steps, correct under tf.distribute.

A keras SeedGenerator's state is mirrored, so on its own it draws the same noise on every
replica. Folding the replica id into a stateless seed gives each replica its own noise
while keeping runs reproducible.
"""

import tensorflow as tf


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
