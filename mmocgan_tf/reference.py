"""The reference density q of the noise-contrastive variant: the normal data's modes.

q is a Gaussian mixture: the components of a full-covariance GMM fitted to the standardised
training rows (1..m components, chosen by BIC), plus one broad isotropic Gaussian N(0, s^2 I)
that puts negatives everywhere around the data. D, trained to tell real rows from samples
of q, estimates log p(x) - log q(x) (noise-contrastive estimation, Gutmann & Hyvarinen
2010), so logit D(x) + log q(x) is a log-density estimate that stays meaningful far from
the data, where D alone extrapolates. The mixture's components are the learned modes.

The mixture lives in three arrays of m + 1 slots (unused slots get weight 0), so it can be
stored as model weights and evaluated in a SavedModel: logits [m + 1], loc [m + 1, d],
scale_tril [m + 1, d, d] (Cholesky factors of the covariances); an unused slot keeps an
identity factor, so its solve stays finite and its weight zeroes it.
"""

import numpy as np
import tensorflow as tf
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

# A GMM is fitted on at most this many training rows (a seeded subsample): BIC needs m full
# EM fits, and this bounds their cost on large data (a cost bound, not a measured optimum).
MAX_FIT_ROWS = 20_000
# q's number of components is chosen by BIC on at most this many of those rows; only the
# chosen k is then fitted to all of them. Measured (docs/RESULTS.md): the mixture's AUROC
# within 0.005 and its fit 1.1-3.3x faster on eight larger sets; optdigits' fit 4.6 s, not 11.8.
SELECTION_ROWS = 2_000
_EMPTY_LOGIT = -1e9  # log-weight of an unused slot


def _fit_gmm(x, k, seed):
    return GaussianMixture(k, covariance_type="full", random_state=seed).fit(x)


def fit_bic_mixture(x, max_components, seed=0, selection_rows=None):
    """The full-covariance GaussianMixture with 1..max_components components of lowest BIC.

    With selection_rows, BIC compares the candidates on a seeded subsample of that many
    rows, and only the winner is fitted to all of x. A k whose fit collapses (a singular
    covariance) is skipped; ValueError if none fits. BLAS runs on one thread: these
    matrices are small, and BLAS threads competing with TensorFlow's made the search ten
    times slower (63 s against 7 s on cardio).
    """
    subsample = selection_rows is not None and len(x) > selection_rows
    rows = (x[np.random.default_rng(seed).choice(len(x), selection_rows, replace=False)]
            if subsample else x)
    best, failures = None, []
    with threadpool_limits(1):
        for k in range(1, min(max_components, len(rows) // 2) + 1):
            try:
                gmm = _fit_gmm(rows, k, seed)
            except ValueError as err:
                failures.append(f"k={k}: {err}")
                continue
            bic = gmm.bic(rows)
            if best is None or bic < best[0]:
                best = (bic, gmm)
        if best is None:
            raise ValueError(f"no Gaussian mixture could be fitted ({failures[0]})")
        return _fit_gmm(x, best[1].n_components, seed) if subsample else best[1]


def fit_reference(x, num_modes, broad_weight, broad_scale, seed=0):
    """The arrays (logits, loc, scale_tril) of q fitted to standardised rows x [n, d]."""
    x = np.asarray(x, np.float64)
    if len(x) > MAX_FIT_ROWS:
        x = x[np.random.default_rng(seed).choice(len(x), MAX_FIT_ROWS, replace=False)]
    gmm = fit_bic_mixture(x, num_modes, seed, SELECTION_ROWS)
    k, d = gmm.n_components, x.shape[1]
    logits = np.full(num_modes + 1, _EMPTY_LOGIT)
    logits[:k] = np.log(gmm.weights_) + np.log1p(-broad_weight)
    logits[num_modes] = np.log(broad_weight) if broad_weight > 0 else _EMPTY_LOGIT
    loc = np.zeros((num_modes + 1, d))
    loc[:k] = gmm.means_
    scale_tril = np.tile(np.eye(d), (num_modes + 1, 1, 1))
    scale_tril[:k] = np.linalg.cholesky(gmm.covariances_)
    scale_tril[num_modes] *= broad_scale
    return [a.astype(np.float32) for a in (logits, loc, scale_tril)]


def log_prob(logits, loc, scale_tril, x):
    """log q(x) of rows x [n, d]: one triangular solve per component.

    Written out rather than taken from tfp.distributions, whose mixture broadcasts every
    Cholesky factor to every row: four times slower in 166 dimensions (21 ms against 5 ms
    per training step's call, with its gradient).
    """
    d = tf.cast(tf.shape(x)[1], x.dtype)
    centred = tf.transpose(x[None] - loc[:, None], [0, 2, 1])  # [k, d, n]
    z = tf.linalg.triangular_solve(scale_tril, centred, lower=True)
    log_det = tf.reduce_sum(tf.math.log(tf.linalg.diag_part(scale_tril)), axis=-1)
    log_normal = (-0.5 * tf.reduce_sum(tf.square(z), axis=1) - log_det[:, None]
                  - 0.5 * d * np.log(2.0 * np.pi).astype(np.float32))  # [k, n]
    return tf.reduce_logsumexp(tf.nn.log_softmax(logits)[:, None] + log_normal, axis=0)


def sample(logits, loc, scale_tril, n, seed):
    """n rows of q, from an int32 [2] stateless seed (one per replica and step)."""
    component_seed, normal_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    components = tf.random.stateless_categorical(logits[None], n, component_seed)[0]
    noise = tf.random.stateless_normal([n, tf.shape(loc)[1]], seed=normal_seed)
    # Every component's factor times every row's noise ([n, k, d]), then each row's own:
    # cheaper than gathering an [n, d, d] stack of factors in many dimensions.
    spread = tf.gather(tf.einsum("kij,nj->nki", scale_tril, noise), components, batch_dims=1)
    return tf.gather(loc, components) + spread
