"""The interface every reference variant implements, and what all of them share.

A variant decides three things around the discriminator D: the density that L_KL and
eps_T read (the paper's target network T, or a mixture q), whether D also learns against
negatives drawn from that density (noise-contrastive estimation), and how D's logit
becomes the model's normality and score. MMOCGAN asks its reference and never which
variant it is; `make_reference` (this package's __init__) chooses once.
"""

import keras
import numpy as np
import tensorflow as tf


class Reference(keras.layers.Layer):
    """A reference density of the normal rows, with its threshold eps_T as a weight.

    Subclasses implement fit_density, log_density, normality, score and
    normality_at_score; negatives defaults to none (the paper's D learns from G only).

    Attributes:
      score_is_probability: the score is 1 - D(x) in (0, 1), so D(x) < 0.5 is a rule.
      density_threshold: eps_T, in log_density's units (set by fit).
    """

    score_is_probability = False

    def build(self, input_shape):
        self.density_threshold = self.add_weight(
            name="density_threshold", shape=(), initializer="zeros", trainable=False)

    def fit(self, scaled, config, batch_size=100, steps_per_execution=1, strategy=None):
        """Fits the density to standardised rows (array or dataset), then sets eps_T.

        eps_T is the config.density_quantile-quantile of log_density on those rows. The
        model passes its compile options and strategy for a variant that trains a network.
        """
        self.fit_density(scaled, config, batch_size, steps_per_execution, strategy)
        density = eager_in_chunks(self.log_density, scaled)
        self.density_threshold.assign(np.quantile(density, config.density_quantile))

    def fit_density(self, scaled, config, batch_size, steps_per_execution, strategy):
        raise NotImplementedError

    def log_density(self, scaled):
        """The log density that L_KL pushes G's samples below eps_T with."""
        raise NotImplementedError

    def negatives(self, n, seed):
        """n rows for D's noise-contrastive term, from an int32 [2] seed; None: no term."""
        return None

    def normality(self, scaled, d_logit):
        """The model's normality (higher = more normal) from D's logit on the same rows."""
        raise NotImplementedError

    def score(self, normality):
        """The anomaly score (higher = more anomalous), a decreasing map of normality."""
        raise NotImplementedError

    def normality_at_score(self, score):
        """The normality whose score is `score`: where a score threshold sits."""
        raise NotImplementedError

    @property
    def mode_mixture(self):
        """The Gaussian mixture of the modes (its last slot the broad one), or None."""
        return None

    @property
    def trainer(self):
        """A model that fit trains besides these weights (T's regular GAN), or None."""
        return None


def is_dataset(x):
    return isinstance(x, tf.data.Dataset)


def eager_in_chunks(function, scaled, chunk=8192):
    """function(rows) for standardised rows (array or dataset), eagerly in chunks.

    Eager calls avoid tracing a predict function for every new input size.
    """
    if not is_dataset(scaled):
        scaled = [scaled[i:i + chunk] for i in range(0, len(scaled), chunk)]
    return np.concatenate([function(batch).numpy() for batch in scaled])


def first_rows(scaled, limit):
    """The rows of an array, or up to `limit` rows from the batches of a dataset."""
    if not is_dataset(scaled):
        return scaled
    parts, count = [], 0
    for batch in scaled.as_numpy_iterator():
        parts.append(batch)
        count += len(batch)
        if count >= limit:
            break
    return np.concatenate(parts)
