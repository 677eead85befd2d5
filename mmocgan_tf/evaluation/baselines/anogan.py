"""AnoGAN (Schlegl et al. 2017, IPMI): a GAN of the normal rows, scored by a latent search.

Training is the regular GAN of the "rgan" baseline (the same RegularGAN and networks, so
the same traced train step). Scoring follows the paper's mapping of a row x to the latent
space: starting from a random z, gradient steps on z minimise

    L(z) = (1 - lambda) * ||x - G(z)||_1 + lambda * ||f(x) - f(G(z))||_1,

the residual loss plus the discrimination loss, where f is the discriminator's last
hidden layer. The anomaly score is L at the final z (higher = more anomalous).

Differences from the paper, for tabular data and speed:
  * Gamma = latent_steps = 100 by default (the paper: 500); the steps are Adam's
    (latent_learning_rate 0.1), and z starts from the GAN's own noise prior N(0, I).
  * All rows of a chunk (up to 4096) are searched at once: z is a [rows, z_dim] tensor and
    each row's loss depends only on its own z, so one batched Adam is the same as one Adam
    per row. The search is one tf.function (a tf.while_loop over the steps), traced once
    per detector and width and reused for every call, whatever the number of rows.
"""

import numpy as np
import tensorflow as tf

from mmocgan_tf.config import ModelConfig
from mmocgan_tf.evaluation.baselines.rgan import RGANDetector

_PAPER = ModelConfig()
_BETA_1, _BETA_2, _EPSILON = 0.9, 0.999, 1e-7


class AnoGANDetector(RGANDetector):
    """AnoGAN on the regular GAN of RGANDetector, with a batched latent search.

    Args (besides RGANDetector's epochs, z_dim, d_hidden, g_hidden, learning_rate):
      latent_steps: Gamma, the gradient steps on z per row (the paper: 500).
      latent_learning_rate: Adam learning rate of the search.
      lambda_weight: lambda, the weight of the discrimination (feature) loss (paper: 0.1).
      chunk_size: rows searched at once.

    The initial z of a chunk is drawn from fit's seed and the chunk's index.
    """

    name = "anogan"
    is_gan = False  # the score is the search's loss, not 1 - D(x)

    def __init__(self, epochs=300, z_dim=_PAPER.z_dim, d_hidden=_PAPER.d_hidden,
                 g_hidden=_PAPER.g_hidden, learning_rate=1e-3, latent_steps=100,
                 latent_learning_rate=0.1, lambda_weight=0.1, chunk_size=4096, **kwargs):
        super().__init__(epochs=epochs, z_dim=z_dim, d_hidden=d_hidden, g_hidden=g_hidden,
                         learning_rate=learning_rate, **kwargs)
        if int(latent_steps) < 0:
            raise ValueError(f"latent_steps must be >= 0, got {latent_steps}")
        if not 0.0 <= float(lambda_weight) <= 1.0:
            raise ValueError(f"lambda_weight must be in [0, 1], got {lambda_weight}")
        self.latent_steps = int(latent_steps)
        self.latent_learning_rate = float(latent_learning_rate)
        self.lambda_weight = float(lambda_weight)
        self.chunk_size = int(chunk_size)
        self.seed_ = 0
        self.latent_traces_ = 0  # how often the search was traced (tests check it is 1)
        self._search = None
        self._search_model = None

    def fit(self, x, seed=0):
        self.seed_ = int(seed)
        return super().fit(x, seed)

    def anomaly_score(self, x):
        x = np.asarray(x, np.float32)
        search = self._search_function()
        steps = tf.constant(self.latent_steps, tf.int32)
        rate = tf.constant(self.latent_learning_rate, tf.float32)
        weight = tf.constant(self.lambda_weight, tf.float32)
        scores = [
            search(tf.constant(x[start:start + self.chunk_size]),
                   tf.constant([self.seed_, i], tf.int64), steps, rate, weight).numpy()
            for i, start in enumerate(range(0, len(x), self.chunk_size))]
        return np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)

    def _search_function(self):
        """The traced search of the current model (a new one only when model_ is new)."""
        if self._search is None or self._search_model is not self.model_:
            self._search = self._build_search(self.model_)
            self._search_model = self.model_
        return self._search

    def _build_search(self, gan):
        generator, discriminator = gan.generator, gan.discriminator
        num_features = int(generator.output.shape[-1])

        def loss_per_row(x, features, z, weight):
            x_hat = generator(z, training=False)
            residual = tf.reduce_sum(tf.abs(x - x_hat), axis=1)
            fake_features = discriminator(x_hat, training=False)["features"]
            discrimination = tf.reduce_sum(tf.abs(features - fake_features), axis=1)
            return (1.0 - weight) * residual + weight * discrimination

        @tf.function(input_signature=[
            tf.TensorSpec([None, num_features], tf.float32),
            tf.TensorSpec([2], tf.int64),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32),
            tf.TensorSpec([], tf.float32),
        ])
        def search(x, seed, steps, rate, weight):
            self.latent_traces_ += 1  # Python: runs once per trace
            features = discriminator(x, training=False)["features"]
            z = tf.random.stateless_normal([tf.shape(x)[0], gan.z_dim], seed=seed)
            zeros = tf.zeros_like(z)

            def step(t, z, m, v):
                with tf.GradientTape() as tape:
                    tape.watch(z)
                    # Rows are independent, so the sum's gradient is each row's own.
                    loss = tf.reduce_sum(loss_per_row(x, features, z, weight))
                grad = tape.gradient(loss, z)
                t = t + 1
                m = _BETA_1 * m + (1.0 - _BETA_1) * grad
                v = _BETA_2 * v + (1.0 - _BETA_2) * tf.square(grad)
                tf_t = tf.cast(t, tf.float32)
                m_hat = m / (1.0 - tf.pow(_BETA_1, tf_t))
                v_hat = v / (1.0 - tf.pow(_BETA_2, tf_t))
                return t, z - rate * m_hat / (tf.sqrt(v_hat) + _EPSILON), m, v

            _, z, _, _ = tf.while_loop(lambda t, *_: t < steps, step,
                                       (tf.constant(0), z, zeros, zeros))
            return loss_per_row(x, features, z, weight)

        return search
