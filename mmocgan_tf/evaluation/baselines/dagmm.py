"""DAGMM (Zong et al. 2018, ICLR): "Deep Autoencoding Gaussian Mixture Model".

A compression network (an autoencoder with a low-dimensional code z_c) and an estimation
network trained jointly. Each row's z = [z_c, relative Euclidean distance ||x - x'|| / ||x||,
cosine similarity of x and x'] goes through the estimation network (MLP, dropout, softmax
over K components) to memberships gamma; the batch's gamma and z give the mixture weights,
means and covariances (phi, mu, Sigma), and the sample energy

    E(z) = -log sum_k phi_k N(z; mu_k, Sigma_k).

Loss (the paper's objective): mean ||x - x'||^2 + lambda1 mean E(z) + lambda2 sum_kj 1/Sigma_kjj.
After training, phi, mu and Sigma are estimated once over all training rows (dropout off)
and kept as non-trainable model variables; the score of a row is its energy.

Defaults are the paper's Thyroid setup, the data set bundled here (3772 rows, 6 features):
compression 12-4-1 tanh layers (decoder mirrored, linear output), estimation 10 tanh units,
dropout 0.5, K = 2 (the paper's KDDCUP setup: 60-30-10-1 and K = 4), lambda1 = 0.1,
lambda2 = 0.005, Adam(1e-4), batch 1024, 20000 epochs (KDDCUP: 200).

Numerics: Sigma gets 1e-6 on its diagonal (besides the paper's lambda2 penalty, so its
Cholesky factor exists when a batch gives a component few rows); the mixture part runs in
float64 (K small matrices of size code + 2); the reconstruction features are computed in
float64 with row norms below 1 counted as 1. The paper's data are not centred; on
standardised rows ||x|| is about 0 near the training mean, where ||x - x'|| / ||x|| would
explode and make the most typical rows look anomalous (a row at the mean would divide by
0). 1 is one standard deviation, below the usual row norm sqrt(d): most rows are unaffected.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf.evaluation.baselines.base import KerasDetector
from mmocgan_tf.model import replicas

_NORM_FLOOR = 1.0  # one standard deviation, see the module's docstring
_TINY = 1e-12


def _norm(v):
    """Row norms [N] with a finite gradient at 0 (tf.norm's is NaN there)."""
    return tf.sqrt(tf.reduce_sum(tf.square(v), axis=1) + _TINY)


def mixture_parameters(z, gamma, covariance_eps):
    """phi [K], mu [K, D], Sigma [K, D, D] (float64) from rows z [N, D] and gamma [N, K]."""
    z, gamma = tf.cast(z, tf.float64), tf.cast(gamma, tf.float64)
    mass = tf.reduce_sum(gamma, axis=0)  # [K]
    phi = mass / tf.cast(tf.shape(z)[0], tf.float64)
    mu = tf.matmul(gamma, z, transpose_a=True) / (mass[:, None] + _TINY)
    diff = z[None] - mu[:, None]  # [K, N, D]
    weighted = diff * tf.transpose(gamma)[:, :, None]
    sigma = tf.matmul(weighted, diff, transpose_a=True) / (mass[:, None, None] + _TINY)
    eye = tf.eye(tf.shape(z)[1], dtype=tf.float64)
    return phi, mu, sigma + covariance_eps * eye


def sample_energy(z, phi, mu, sigma):
    """E(z) [N] (float64) under the mixture (phi, mu, sigma)."""
    z = tf.cast(z, tf.float64)
    chol = tf.linalg.cholesky(sigma)  # [K, D, D]
    diff = tf.transpose(z[None] - mu[:, None], [0, 2, 1])  # [K, D, N]
    mahalanobis = tf.reduce_sum(tf.square(tf.linalg.triangular_solve(chol, diff)), axis=1)
    log_det = 2.0 * tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)), axis=1)  # [K]
    dim = tf.cast(tf.shape(z)[1], tf.float64)
    log_p = (tf.math.log(phi + _TINY)[:, None]
             - 0.5 * (mahalanobis + (log_det + dim * math.log(2.0 * math.pi))[:, None]))
    return -tf.reduce_logsumexp(log_p, axis=0)


class DeepAutoencodingGMM(keras.Model):
    """Compression + estimation networks; call(x) gives z, gamma and the stored energy.

    Args:
      encoder, decoder: the compression network (x -> z_c -> x').
      estimator: z -> gamma (softmax over the K components).
      lambda_energy, lambda_covariance: lambda1, lambda2.
      covariance_eps: added to the covariances' diagonals.
    """

    def __init__(self, encoder, decoder, estimator, lambda_energy, lambda_covariance,
                 covariance_eps, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.estimator = encoder, decoder, estimator
        self.lambda_energy = float(lambda_energy)
        self.lambda_covariance = float(lambda_covariance)
        self.covariance_eps = float(covariance_eps)
        k, dim = int(estimator.output.shape[-1]), int(estimator.input.shape[-1])
        # The mixture of the whole training set, filled at the end of fit.
        self.phi = self.add_weight(shape=(k,), initializer=keras.initializers.Constant(1.0 / k),
                                   dtype="float64", trainable=False, name="phi")
        self.mu = self.add_weight(shape=(k, dim), initializer="zeros", dtype="float64",
                                  trainable=False, name="mu")
        self.sigma = self.add_weight(
            shape=(k, dim, dim), dtype="float64", trainable=False, name="sigma",
            initializer=lambda shape, dtype: np.tile(np.eye(shape[-1]), (shape[0], 1, 1)))
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def compile(self, optimizer, steps_per_execution=1, **kwargs):
        steps_per_execution = replicas.steps_per_execution(
            steps_per_execution, self.distribute_strategy)
        super().compile(optimizer=optimizer, steps_per_execution=steps_per_execution, **kwargs)
        optimizer.build(self.trainable_variables)  # slots now: the first trace is the only one

    @property
    def metrics(self):
        return [self.loss_tracker]

    def _forward(self, x, training):
        """x' [N, d], z [N, code + 2], gamma [N, K]."""
        code = self.encoder(x, training=training)
        x_hat = self.decoder(code, training=training)
        # float64: the squares of huge entries (unseen rows) overflow float32.
        x64, x_hat64 = tf.cast(x, tf.float64), tf.cast(x_hat, tf.float64)
        x_norm = tf.maximum(_norm(x64), _NORM_FLOOR)
        relative_distance = _norm(x64 - x_hat64) / x_norm
        cosine = tf.reduce_sum(x64 * x_hat64, axis=1) / (x_norm * tf.maximum(_norm(x_hat64),
                                                                             _NORM_FLOOR))
        reconstruction = tf.cast(tf.stack([relative_distance, cosine], axis=1), code.dtype)
        z = tf.concat([code, reconstruction], axis=1)
        return x_hat, z, self.estimator(z, training=training)

    def call(self, x, training=False):
        _, z, gamma = self._forward(x, training)
        return {"z": z, "gamma": gamma,
                "energy": sample_energy(z, self.phi, self.mu, self.sigma)}

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            x_hat, z, gamma = self._forward(x, training=True)
            # The batch statistics are the global batch's (no-op on one device).
            x, x_hat, z, gamma = replicas.gather(x, x_hat, z, gamma)
            phi, mu, sigma = mixture_parameters(z, gamma, self.covariance_eps)
            energy = tf.reduce_mean(sample_energy(z, phi, mu, sigma))
            penalty = tf.reduce_sum(1.0 / tf.linalg.diag_part(sigma))
            reconstruction = tf.reduce_mean(tf.reduce_sum(tf.square(x - x_hat), axis=1))
            loss = reconstruction + tf.cast(self.lambda_energy * energy
                                            + self.lambda_covariance * penalty, tf.float32)
            scaled = loss * replicas.loss_scale()
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        return replicas.step_logs({"loss": self.loss_tracker.result()})


class DAGMMDetector(KerasDetector):
    """DAGMM; the score is the sample energy under the training set's mixture.

    Args (besides KerasDetector's epochs, batch_size, steps_per_execution):
      hidden: widths of the compression network's tanh layers before the code.
      code_size: width of z_c (the paper: 1 on KDDCUP and Thyroid).
      estimation_hidden: width of the estimation network's tanh layer.
      dropout: the estimation network's dropout rate.
      num_components: K.
      lambda_energy, lambda_covariance: the paper's lambda1 and lambda2.
      covariance_eps: added to every covariance's diagonal.
      learning_rate: Adam's.
    """

    name = "dagmm"

    def __init__(self, epochs=20000, batch_size=1024, hidden=(12, 4), code_size=1,
                 estimation_hidden=10, dropout=0.5, num_components=2, lambda_energy=0.1,
                 lambda_covariance=0.005, covariance_eps=1e-6, learning_rate=1e-4, **kwargs):
        super().__init__(epochs=epochs, batch_size=batch_size, **kwargs)
        self.hidden = tuple(int(w) for w in hidden)
        self.code_size = int(code_size)
        self.estimation_hidden = int(estimation_hidden)
        self.dropout = float(dropout)
        self.num_components = int(num_components)
        self.lambda_energy = float(lambda_energy)
        self.lambda_covariance = float(lambda_covariance)
        self.covariance_eps = float(covariance_eps)
        self.learning_rate = float(learning_rate)

    def build_model(self, num_features, seed):
        x = keras.Input((num_features,))
        h = x
        for width in self.hidden:
            h = keras.layers.Dense(width, activation="tanh")(h)
        encoder = keras.Model(x, keras.layers.Dense(self.code_size)(h), name="encoder")

        code = keras.Input((self.code_size,))
        h = code
        for width in reversed(self.hidden):
            h = keras.layers.Dense(width, activation="tanh")(h)
        decoder = keras.Model(code, keras.layers.Dense(num_features)(h), name="decoder")

        z = keras.Input((self.code_size + 2,))
        h = keras.layers.Dense(self.estimation_hidden, activation="tanh")(z)
        h = keras.layers.Dropout(self.dropout)(h)
        gamma = keras.layers.Dense(self.num_components, activation="softmax")(h)
        estimator = keras.Model(z, gamma, name="estimator")

        model = DeepAutoencodingGMM(encoder, decoder, estimator, self.lambda_energy,
                                    self.lambda_covariance, self.covariance_eps)
        model.compile(keras.optimizers.Adam(self.learning_rate),
                      steps_per_execution=self.steps_per_execution)
        return model

    def fit(self, x, seed=0):
        super().fit(x, seed)
        model = self.model_
        out = model.predict(x, batch_size=4096, verbose=0)
        for variable, value in zip((model.phi, model.mu, model.sigma),
                                   mixture_parameters(out["z"], out["gamma"],
                                                      model.covariance_eps), strict=True):
            variable.assign(value)
        return self

    def anomaly_score(self, x):
        return self.model_.predict(x, batch_size=4096, verbose=0)["energy"].astype(np.float64)
