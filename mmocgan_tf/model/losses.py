"""The loss terms of MMOC-GAN as pure functions of logits and features.

Every function returns a scalar mean over the batch. Probabilities are never formed and then
logged: each log is taken from logits (softplus / log_softmax), the numerically safe form of
the paper's eps-clipped logs. Conventions: a discriminator logit l gives D(x) = sigmoid(l) =
P(x is real normal data). Weights are applied by the caller (model.py), so weight 0 can skip
a term.
"""

import tensorflow as tf

__all__ = [
    "real_fake_loss",
    "binary_entropy",
    "code_cross_entropy",
    "mode_information_loss",
    "feature_matching_loss",
    "pull_away_loss",
    "low_density_loss",
    "sigma_regularizer",
]

_EPS = 1e-8


def real_fake_loss(real_logits, fake_logits):
    """BCE(D(x), 1) + BCE(D(x_hat), 0): the discriminator's GAN loss (Goodfellow et al. 2014)."""
    return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(
        tf.nn.softplus(fake_logits))


def binary_entropy(logits):
    """Mean binary entropy H_b(D(x)) in nats.

    On real data it is OCAN's conditional-entropy term (Zheng et al. 2018): minimising it makes
    D confident on normal samples, so its boundary tightens around them.
    """
    p = tf.sigmoid(logits)
    return tf.reduce_mean(p * tf.nn.softplus(-logits) + (1.0 - p) * tf.nn.softplus(logits))


def code_cross_entropy(q_logits, codes):
    """CE(Q(c|x), c): InfoGAN's lower bound on I(c; G(z, c)) (Chen et al. 2016), negated."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=codes, logits=q_logits))


def mode_information_loss(q_logits):
    """mean_x H(Q(c|x)) - H(mean_x Q(c|x)) = -I(x; c) under Q, on real data.

    The paper's "+H(c_x)" term read as mutual information: low per-sample entropy makes each
    sample belong to one mode, high entropy of the average keeps every mode in use.
    """
    log_q = tf.nn.log_softmax(q_logits)
    q = tf.exp(log_q)
    conditional = -tf.reduce_mean(tf.reduce_sum(q * log_q, axis=-1))
    marginal = tf.reduce_mean(q, axis=0)
    marginal_entropy = -tf.reduce_sum(marginal * tf.math.log(marginal + _EPS))
    return conditional - marginal_entropy


def feature_matching_loss(fake_features, real_features):
    """|| mean f(x_hat) - mean f(x) ||^2 (Salimans et al. 2016): G matches D's feature means."""
    gap = tf.reduce_mean(fake_features, axis=0) - tf.reduce_mean(real_features, axis=0)
    return tf.reduce_sum(tf.square(gap))


def pull_away_loss(features):
    """Pull-away term of EBGAN (Zhao et al. 2017): mean squared cosine of distinct pairs.

    Used as OCAN's entropy surrogate for the generator: small when generated samples spread
    out in D's feature space. The eps in the norms keeps a zero row from giving NaN.
    """
    norms = tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1, keepdims=True) + _EPS)
    unit = features / norms
    cosine = tf.matmul(unit, unit, transpose_b=True)
    n = tf.cast(tf.shape(features)[0], features.dtype)
    off_diagonal = tf.reduce_sum(tf.square(cosine)) - tf.reduce_sum(
        tf.square(tf.linalg.diag_part(cosine)))
    return off_diagonal / tf.maximum(n * (n - 1.0), 1.0)


def low_density_loss(log_density, threshold):
    """mean( log T(x_hat) * 1[T(x_hat) >= eps_T] ): OCAN's complementary term.

    Minimising it pushes generated samples that the density model still finds likely (its
    log density at or above the threshold log eps_T) out of the high-density region. The
    paper's density model is the target network T (log T = log sigmoid of its logit); the
    noise-contrastive variant uses log q.
    """
    inside = tf.cast(log_density >= threshold, log_density.dtype)
    return tf.reduce_mean(log_density * inside)


def sigma_regularizer(sigma):
    """sum_c sum_j (1 - sigma_cj)^2 / m (DeLiGAN, Gurumurthy et al. 2017).

    Keeps phi_mix's component widths from collapsing to 0, which would reduce each mode to a
    point. The paper's lambda = 0.03 is applied by the caller as weight_sigma.
    """
    num_modes = tf.cast(tf.shape(sigma)[0], sigma.dtype)
    return tf.reduce_sum(tf.square(1.0 - sigma)) / num_modes
