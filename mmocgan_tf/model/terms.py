"""The loss terms each network trains on, the ModelConfig field that weighs each, their sum.

One table per network: train_step's logged names, the weighted losses and the check that a
configuration leaves each network something to learn all follow from it. A weight of 0
switches its term off.
"""

import tensorflow as tf

from mmocgan_tf.config import ConfigError

D_TERMS = {"d_real_fake": "weight_complement", "d_nce": "weight_nce",
           "d_entropy": "weight_d_entropy", "q_fake": "weight_q_fake", "q_real": "weight_q_real"}
G_TERMS = {"g_fm": "weight_fm", "g_pt": "weight_pt", "g_kl": "weight_kl", "g_mi": "weight_mi",
           "g_sigma": "weight_sigma"}
LOGGED = ("d_loss", "g_loss", *D_TERMS, *G_TERMS)
WEIGHTS = {**D_TERMS, **G_TERMS}


def weighted_sum(values, config):
    """Sum of weight * value over the terms (by name) whose weight in config is not 0."""
    total = tf.constant(0.0)
    for name, value in values.items():
        weight = getattr(config, WEIGHTS[name])
        if weight:
            total += weight * value
    return total


def check_something_trains(config):
    """Refuses weights that leave D or G without a loss term (no gradient to follow)."""
    for network, table in (("D", D_TERMS), ("G", G_TERMS)):
        fields = [field for term, field in table.items() if term != "g_sigma"]  # prior only
        if not any(getattr(config, field) for field in fields):
            raise ConfigError(f"{', '.join(fields)} are all 0: {network} would have no loss "
                              "term to train on; give one of them a positive weight")
