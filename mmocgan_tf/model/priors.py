"""The generator's latent input phi(z, c): one layer per prior of the paper.

Both priors expose sample(codes, seed) -> generator input, and regularization() -> the
prior's own loss term (0 for phi_cat), so the model treats them alike.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from mmocgan_tf.model import losses, networks

tfd = tfp.distributions


class _Prior(keras.layers.Layer):
    """What both priors share: m modes, noise of size z_dim, and their config."""

    def __init__(self, num_modes, z_dim, seeds=None, **kwargs):
        super().__init__(**kwargs)
        self.num_modes = num_modes
        self.z_dim = z_dim
        object.__setattr__(self, "_seeds", seeds)  # random.Random for initializers, see build

    def get_config(self):
        return {**super().get_config(), "num_modes": self.num_modes, "z_dim": self.z_dim}


@keras.saving.register_keras_serializable(package="mmocgan_tf")
class CategoricalPrior(_Prior):
    """phi_cat(z, c) = concat(z, one_hot(c, m)) with z ~ N(0, I) (InfoGAN's code input)."""

    @property
    def output_dim(self):
        return self.z_dim + self.num_modes

    def sample(self, codes, seed):
        z = tf.random.stateless_normal([tf.shape(codes)[0], self.z_dim], seed=seed)
        return tf.concat([z, tf.one_hot(codes, self.num_modes)], axis=-1)

    def regularization(self):
        return tf.constant(0.0)


@keras.saving.register_keras_serializable(package="mmocgan_tf")
class MixturePrior(_Prior):
    """phi_mix(z, c) = mu_c + sigma_c * z: a learnable Gaussian mixture latent (DeLiGAN).

    Each component is a reparameterised Independent(Normal(mu_c, sigma_c)), so the
    generator's loss trains mu (init U(-1, 1)) and sigma (init 0.2) through the samples.
    """

    @property
    def output_dim(self):
        return self.z_dim

    def build(self, input_shape=None):
        shape = (self.num_modes, self.z_dim)
        self.mu = self.add_weight(
            name="mu", shape=shape,
            initializer=self._uniform())
        self.sigma = self.add_weight(
            name="sigma", shape=shape, initializer=keras.initializers.Constant(0.2))

    def _uniform(self):
        if self._seeds is None:  # deserialised: the saved weights replace these values
            return keras.initializers.RandomUniform(-1.0, 1.0)
        return networks.seeded(keras.initializers.RandomUniform, self._seeds,
                               minval=-1.0, maxval=1.0)

    def component(self, codes):
        """The mode-c component as a TFP distribution over z (built per call for gradients)."""
        # .value: a distribution built from a Keras Variable would see a constant.
        loc = tf.gather(self.mu.value, codes)
        scale = tf.gather(self.sigma.value, codes)
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)

    def sample(self, codes, seed):
        return self.component(codes).sample(seed=seed)

    def regularization(self):
        return losses.sigma_regularizer(self.sigma.value)


def make_prior(prior, num_modes, z_dim, seeds):
    """The prior layer named by ModelConfig.prior ("cat" or "mix"); seeds as in networks.py."""
    layer = {"cat": CategoricalPrior, "mix": MixturePrior}[prior](num_modes, z_dim, seeds,
                                                                  name="prior")
    layer.build(None)
    return layer


def draw_codes(q_logits, seed, how="sample"):
    """Each row's mode code c: drawn from Q(c|x) ("sample", from an int32 [2] seed) or
    its argmax (ModelConfig.code_sampling)."""
    if how == "argmax":
        return tf.argmax(q_logits, axis=-1, output_type=tf.int32)
    return tf.random.stateless_categorical(q_logits, 1, seed=seed, dtype=tf.int32)[:, 0]
