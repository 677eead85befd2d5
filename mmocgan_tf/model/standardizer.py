"""Standardisation inside the model, so raw features go in everywhere (fit, predict, export)."""

import keras
import numpy as np

from mmocgan_tf.data.moments import Moments

# Standardised values are clipped to +-LIMIT: a value far beyond every training row (1e30)
# would otherwise overflow float32 in the networks and the reference density (score inf).
LIMIT = 1e6


@keras.saving.register_keras_serializable(package="mmocgan_tf")
class Standardizer(keras.layers.Layer):
    """(x - mean) / std with statistics of the training data held as model weights.

    Unlike keras.layers.Normalization it reads its statistics as variables at call time
    (no constants frozen into a traced graph) and maps constant features to scale 1 instead
    of dividing by ~0. Values beyond LIMIT standard deviations are clipped to it, so such a
    row scores a finite value, the same as a row at the limit, instead of inf or NaN.
    """

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.mean = self.add_weight(name="mean", shape=(dim,), initializer="zeros",
                                    trainable=False)
        self.scale = self.add_weight(name="scale", shape=(dim,), initializer="ones",
                                     trainable=False)

    def adapt(self, x):
        """Learns mean and std from an array [n, d] or a dataset of such batches.

        A dataset is read once, batch by batch, in memory independent of its length.
        """
        if hasattr(x, "as_numpy_iterator"):
            moments = Moments()
            for batch in x.as_numpy_iterator():
                moments.update(batch)
            if not moments.count:
                raise ValueError("cannot adapt the standardisation to an empty dataset")
            mean, var = moments.mean, moments.variance
        else:
            x = np.asarray(x, np.float64)
            mean, var = x.mean(axis=0), x.var(axis=0)
        if not self.built:
            self.build((None, len(mean)))
        std = np.sqrt(var)
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        self.mean.assign(mean.astype("float32"))
        self.scale.assign(std.astype("float32"))

    def call(self, x):
        scaled = (keras.ops.cast(x, self.compute_dtype) - self.mean) / self.scale
        return keras.ops.clip(scaled, -LIMIT, LIMIT)

    def compute_output_shape(self, input_shape):
        return input_shape
