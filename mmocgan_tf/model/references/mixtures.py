"""Gaussian mixtures as model weights: the reference densities q of the mixture variants.

q is a Gaussian mixture fitted to the standardised training rows, plus one broad isotropic
Gaussian N(0, s^2 I) that puts negatives everywhere around the data (gmm.py says why D
learns against q). Two kinds of mixture:
  fit_bic_arrays: a full-covariance GMM of 1..m components chosen by BIC: the modes;
  fit_local_arrays: LOCAL_COMPONENTS training rows, each the centre of a Gaussian with the mean and
    covariance of its LOCAL_NEIGHBOURS nearest rows. It follows curved modes and the
    uneven spread of rows within a mode, where a few Gaussians are too coarse.

A mixture lives in three arrays of slots + 1 entries (slots: m or LOCAL_COMPONENTS; unused
ones get weight 0), so it can be stored as model weights and evaluated in a SavedModel:
logits [slots + 1], loc [slots + 1, d], scale_tril [slots + 1, d, d] (Cholesky factors of
the covariances); an unused slot keeps an identity factor, so its solve stays finite and its
weight zeroes it. log q reads more weights derived from those when they are set
(Whitening): every component's whitening side by side, so it is a few matrix products.
"""

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

# A GMM is fitted on at most this many training rows (a seeded subsample): BIC needs m full
# EM fits, and this bounds their cost on large data (a cost bound, not a measured optimum).
MAX_FIT_ROWS = 20_000
# q's number of components is chosen by BIC on at most this many of those rows; only the
# chosen k is then fitted to all of them: this keeps the mixture's AUROC and bounds the cost
# of BIC's candidate fits on large data (docs/RESULTS.md).
SELECTION_ROWS = 2_000
# The local mixture's shape (measured in docs/RESULTS.md, "A more local reference"); the
# ridge keeps a neighbourhood's covariance invertible when it has fewer rows than columns.
LOCAL_COMPONENTS = 300
LOCAL_NEIGHBOURS = 50
LOCAL_RIDGE = 1e-6
# log_prob evaluates the rows in chunks of at most this many floats of per-component work,
# so a mixture of hundreds of components scores large inputs in bounded memory.
MAX_CHUNK_FLOATS = 1 << 24
_EMPTY_LOGIT = -1e9  # log-weight of an unused slot
_EINSUM_COMPONENTS = 32  # sample() multiplies by every factor up to this many components
# log q's whitening is split into this many blocks of whitened coordinates; fewer skip fewer
# of the triangular factors' zeros, more run more, smaller products (docs/PERFORMANCE.md).
WHITENING_BLOCKS = 3


def _fit_gmm(x, k, seed):
    return GaussianMixture(k, covariance_type="full", random_state=seed).fit(x)


def fit_bic_mixture(x, max_components, seed=0, selection_rows=None):
    """The full-covariance GaussianMixture with 1..max_components components of lowest BIC.

    With selection_rows, BIC compares the candidates on a seeded subsample of that many
    rows, and only the winner is fitted to all of x. A k whose fit collapses (a singular
    covariance) is skipped; ValueError if none fits. BLAS runs on one thread: these
    matrices are small, and BLAS threads compete with TensorFlow's for the same cores,
    which slows the search many times over (docs/RESULTS.md).
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


def fit_local_mixture(x, components, neighbours, seed=0):
    """Means and Cholesky factors of the local mixture's Gaussians (module docstring)."""
    centres = np.random.default_rng(seed).choice(len(x), min(components, len(x)),
                                                 replace=False)
    count = min(neighbours, len(x))
    with threadpool_limits(1):
        nearest = NearestNeighbors(n_neighbors=count).fit(x).kneighbors(
            x[centres], return_distance=False)
    groups = x[nearest]  # [components, neighbours, d]
    loc = groups.mean(axis=1)
    centred = groups - loc[:, None]
    covariance = (np.einsum("cki,ckj->cij", centred, centred) / max(count - 1, 1)
                  + LOCAL_RIDGE * np.eye(x.shape[1]))
    return loc, np.linalg.cholesky(covariance)


def fit_bic_arrays(x, num_modes, broad_weight, broad_scale, seed=0):
    """The arrays of q = the BIC mixture of at most num_modes components (+ broad), fitted
    to standardised x [n, d]; num_modes slots."""
    x = _fit_rows(x, seed)
    gmm = fit_bic_mixture(x, num_modes, seed, SELECTION_ROWS)
    return _arrays(gmm.weights_, gmm.means_, np.linalg.cholesky(gmm.covariances_), num_modes,
                   broad_weight, broad_scale)


def fit_local_arrays(x, broad_weight, broad_scale, seed=0):
    """The arrays of q = the local mixture (+ broad) fitted to standardised x [n, d];
    LOCAL_COMPONENTS slots."""
    x = _fit_rows(x, seed)
    means, factors = fit_local_mixture(x, LOCAL_COMPONENTS, LOCAL_NEIGHBOURS, seed)
    return _arrays(np.full(len(means), 1.0 / len(means)), means, factors, LOCAL_COMPONENTS,
                   broad_weight, broad_scale)


def _fit_rows(x, seed):
    """float64 rows, a seeded subsample of MAX_FIT_ROWS of them on large data."""
    x = np.asarray(x, np.float64)
    if len(x) > MAX_FIT_ROWS:
        x = x[np.random.default_rng(seed).choice(len(x), MAX_FIT_ROWS, replace=False)]
    return x


def _arrays(weights, means, factors, slots, broad_weight, broad_scale):
    """(logits, loc, scale_tril) float32 of `slots` + 1 slots, the broad one last."""
    k, d = means.shape
    logits = np.full(slots + 1, _EMPTY_LOGIT)
    logits[:k] = np.log(weights) + np.log1p(-broad_weight)
    logits[slots] = np.log(broad_weight) if broad_weight > 0 else _EMPTY_LOGIT
    loc = np.zeros((slots + 1, d))
    loc[:k] = means
    scale_tril = np.tile(np.eye(d), (slots + 1, 1, 1))
    scale_tril[:k] = factors
    scale_tril[slots] *= broad_scale
    return [a.astype(np.float32) for a in (logits, loc, scale_tril)]


def log_prob_in_chunks(whitening, x):
    """whitened_log_prob in chunks of rows that bound the memory (MAX_CHUNK_FLOATS).

    For scoring; rows that fit in one chunk (a small mixture, or few rows) take it directly.
    """
    d = whitening.matrices[-1].shape[0]
    rows = max(1, MAX_CHUNK_FLOATS // (whitening.log_norm.shape[0] * d))
    n = tf.shape(x)[0]

    def chunked():
        padded = tf.pad(x, [[0, -n % rows], [0, 0]])
        chunks = tf.reshape(padded, [-1, rows, d])
        values = tf.map_fn(lambda chunk: whitened_log_prob(whitening, chunk), chunks)
        return tf.reshape(values, [-1])[:n]

    return tf.cond(n <= rows, lambda: whitened_log_prob(whitening, x), chunked)


def whitened_log_prob(whitening, x):
    """log q(x) of rows x [n, d]: one matrix product over all components per block of
    whitened coordinates (Whitening)."""
    k = whitening.log_norm.shape[0]
    squares = 0.0
    for matrix, offset in zip(whitening.matrices, whitening.offsets, strict=True):
        z = tf.matmul(x[:, :matrix.shape[0]], matrix) - offset
        squares += tf.reduce_sum(tf.square(tf.reshape(z, [-1, k, matrix.shape[1] // k])), -1)
    return tf.reduce_logsumexp(whitening.log_norm - 0.5 * squares, axis=-1)


def log_prob(logits, loc, scale_tril, x):
    """log q(x) of rows x [n, d] from the three arrays: one triangular solve per component.

    The direct form, which the Whitening is checked against; a Mixture layer scores with
    whitened_log_prob. Neither is taken from tfp.distributions, whose mixture broadcasts
    every Cholesky factor to every row (docs/RESULTS.md).
    """
    return tf.reduce_logsumexp(joint_log_probs(logits, loc, scale_tril, x), axis=0)


def joint_log_probs(logits, loc, scale_tril, x):
    """log (weight_k N_k(x)) [k, n] of rows x [n, d], for every component k."""
    d = tf.cast(tf.shape(x)[1], x.dtype)
    centred = tf.transpose(x[None] - loc[:, None], [0, 2, 1])  # [k, d, n]
    z = tf.linalg.triangular_solve(scale_tril, centred, lower=True)
    log_det = tf.reduce_sum(tf.math.log(tf.linalg.diag_part(scale_tril)), axis=-1)
    log_normal = (-0.5 * tf.reduce_sum(tf.square(z), axis=1) - log_det[:, None]
                  - 0.5 * d * np.log(2.0 * np.pi).astype(np.float32))  # [k, n]
    return tf.nn.log_softmax(logits)[:, None] + log_normal


def sample(logits, loc, scale_tril, n, seed):
    """n rows of q, from an int32 [2] stateless seed (one per replica and step)."""
    component_seed, normal_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    components = tf.random.stateless_categorical(logits[None], n, component_seed)[0]
    noise = tf.random.stateless_normal([n, tf.shape(loc)[1]], seed=normal_seed)
    if scale_tril.shape[0] <= _EINSUM_COMPONENTS:
        # Every component's factor times every row's noise ([n, k, d]), then each row's
        # own: cheaper than gathering an [n, d, d] stack of factors in many dimensions.
        spread = tf.gather(tf.einsum("kij,nj->nki", scale_tril, noise), components,
                           batch_dims=1)
    else:  # hundreds of components: each row's own factor only
        spread = tf.linalg.matvec(tf.gather(scale_tril, components), noise)
    return tf.gather(loc, components) + spread


class Whitening(NamedTuple):
    """A mixture's log q(x) as logsumexp_k(log_norm_k - |L_k^-1 (x - mu_k)|^2 / 2).

    L_k^-1, the inverse Cholesky factor, is lower triangular: whitened coordinates
    [a, b) read only x[:, :b]. So the coordinates are split into blocks, and block i
    holds every component's rows [a, b) of L_k^-1, transposed, side by side:
    matrices[i] [b, k*(b-a)], with offsets[i] [k*(b-a)] the whitened means; log_norm [k]
    the log weights less the log normalisers. Derived in float64 once, when the mixture
    is set, so log q (scoring, and L_KL in every step) is a few GEMMs that skip most of
    the factors' zeros, instead of k triangular solves (docs/PERFORMANCE.md).
    """

    matrices: tuple
    offsets: tuple
    log_norm: object

    def flat(self):
        return [*self.matrices, *self.offsets, self.log_norm]


def block_ends(d):
    """The ends of the whitened coordinates' blocks (WHITENING_BLOCKS, fewer for small d)."""
    return sorted({int(e) for e in np.linspace(0, d, min(WHITENING_BLOCKS, d) + 1)[1:]})


def whitening_arrays(logits, loc, scale_tril):
    """The Whitening (float32 arrays) of the mixture (logits, loc, scale_tril)."""
    logits, loc, scale_tril = (np.asarray(a, np.float64) for a in (logits, loc, scale_tril))
    k, d = loc.shape
    inverse = np.linalg.inv(scale_tril)  # [k, d, d], lower triangular
    offset = np.einsum("kij,kj->ki", inverse, loc)
    ends = block_ends(d)
    blocks = list(zip([0, *ends[:-1]], ends, strict=True))
    # matrices[i][j, (k, c)] = inverse[k, a + c, j] for j < b
    matrices = [np.transpose(inverse[:, a:b, :b], (2, 0, 1)).reshape(b, k * (b - a))
                for a, b in blocks]
    offsets = [offset[:, a:b].reshape(-1) for a, b in blocks]
    log_weights = logits - np.logaddexp.reduce(logits)
    log_det = np.log(np.diagonal(scale_tril, axis1=1, axis2=2)).sum(axis=1)
    log_norm = log_weights - log_det - 0.5 * d * np.log(2.0 * np.pi)
    return Whitening(tuple(a.astype(np.float32) for a in matrices),
                     tuple(a.astype(np.float32) for a in offsets), log_norm.astype(np.float32))


class Mixture(keras.layers.Layer):
    """A mixture of `slots` Gaussians plus the broad one, held as non-trainable weights.

    Weights, not constants, so a .keras file or SavedModel carries the fitted q and a
    refit reuses the traced functions that read it. Files hold the three arrays only; the
    Whitening weights are derived from them on assign and on load.
    """

    def __init__(self, slots, **kwargs):
        super().__init__(**kwargs)
        self.slots = int(slots)

    def build(self, input_shape):
        m, d = self.slots + 1, int(input_shape[-1])
        self.logits = self.add_weight(name="logits", shape=(m,), initializer="zeros",
                                      trainable=False)
        self.loc = self.add_weight(name="loc", shape=(m, d), initializer="zeros",
                                   trainable=False)
        self.scale_tril = self.add_weight(
            name="scale_tril", shape=(m, d, d), trainable=False,
            initializer=lambda shape, dtype=None: tf.eye(d, batch_shape=[m], dtype=dtype))
        initial = whitening_arrays(*(w.numpy() for w in self.arrays))

        def weight(name, value):
            return self.add_weight(name=name, shape=value.shape, trainable=False,
                                   initializer=lambda shape, dtype=None: value)

        self.whitening = Whitening(
            tuple(weight(f"matrix_{i}", a) for i, a in enumerate(initial.matrices)),
            tuple(weight(f"offset_{i}", a) for i, a in enumerate(initial.offsets)),
            weight("log_norm", initial.log_norm))

    @property
    def arrays(self):
        """(logits, loc, scale_tril): the arguments of log_prob and sample."""
        return self.logits, self.loc, self.scale_tril

    def assign(self, arrays):
        arrays = [np.asarray(a) for a in arrays]
        for variable, value in zip([*self.arrays, *self.whitening.flat()],
                                   arrays + whitening_arrays(*arrays).flat(), strict=True):
            variable.assign(value)

    def save_own_variables(self, store):
        for i, variable in enumerate(self.arrays):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        self.assign([store[str(i)] for i in range(len(self.arrays))])

    def log_prob(self, x):
        return whitened_log_prob(self.whitening, x)

    def log_prob_in_chunks(self, x):
        return log_prob_in_chunks(self.whitening, x)

    def sample(self, n, seed):
        return sample(*self.arrays, n, seed)
