"""RDA (Zhou & Paffenroth 2017, KDD): "Anomaly Detection with Robust Deep Autoencoders".

The training rows are split as X = L_D + S: L_D is what the autoencoder reconstructs, S a
sparse matrix of entries it should not have to, so noisy entries do not shape the
autoencoder. The paper's alternating optimisation (the l1 version):

    S <- 0; repeat: L_D <- X - S; train the autoencoder on L_D (backpropagation);
                    L_D <- AE(L_D); S <- prox_{lambda, l1}(X - L_D)

where prox is the element-wise shrinkage sign(v) max(|v| - lambda, 0). The l1 version is
used, not the l2,1 one (which shrinks whole rows of S together, for outlying rows): the
training rows here are all normal, so S only has to absorb scattered noisy entries. The
outer loop is Python (`iterations` fits of one compiled autoencoder, so one traced train
step); the paper's convergence test is left out, the budget of epochs is fixed.

Rows seen in training have their S, new rows do not, so the score of any row is its
reconstruction error ||x - AE(x)||^2 (in float64), for the training rows too, so that the
quantile threshold and the test scores are on one scale.

Defaults: 20 outer iterations of 50 epochs each and batch 50 (the authors' code). The
authors' autoencoder (tied weights, sigmoid layers, gradient descent) is for pixels in
[0, 1]; for standardised rows: untied tanh layers of 64 units around a tanh code of a
quarter of the features (the authors' MNIST networks compress 784 to 400 or fewer), a
linear output, and Adam(1e-3) on the mean squared error. lambda is in standardised units:
2.5 moves only the part of a residual beyond 2.5 standard deviations into S (the paper
tunes lambda per data set, on pixel data, so its values do not transfer).
"""

import keras
import numpy as np

from mmocgan_tf.evaluation.baselines.base import KerasDetector, fit_passes
from mmocgan_tf.model import replicas


def shrink(values, threshold):
    """prox of threshold * ||.||_1: each entry moved towards 0 by threshold, or to 0."""
    return np.sign(values) * np.maximum(np.abs(values) - threshold, 0.0)


class RDADetector(KerasDetector):
    """Robust deep autoencoder (l1 version); score ||x - AE(x)||^2.

    Args (besides KerasDetector's epochs, batch_size, steps_per_execution):
      epochs: all epochs, split as evenly as possible over the outer iterations.
      iterations: outer iterations (fewer when epochs < iterations).
      lam: lambda, the shrinkage threshold of S, in standardised units.
      hidden: widths of the encoder's tanh layers (the decoder mirrors them).
      code_size: width of the code (None: a quarter of the features, at least 1).
      learning_rate: Adam's.

    After fit, sparse_ holds S of the training rows.
    """

    name = "rda"

    def __init__(self, epochs=1000, batch_size=50, iterations=20, lam=2.5, hidden=(64,),
                 code_size=None, learning_rate=1e-3, **kwargs):
        super().__init__(epochs=epochs, batch_size=batch_size, **kwargs)
        if int(iterations) < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = int(iterations)
        self.lam = float(lam)
        self.hidden = tuple(int(w) for w in hidden)
        self.code_size = None if code_size is None else int(code_size)
        self.learning_rate = float(learning_rate)
        self.sparse_ = None

    def build_model(self, num_features, seed):
        code_size = self.code_size or max(1, round(num_features / 4))
        x = keras.Input((num_features,))
        h = x
        for width in self.hidden:
            h = keras.layers.Dense(width, activation="tanh")(h)
        h = keras.layers.Dense(code_size, activation="tanh")(h)
        for width in reversed(self.hidden):
            h = keras.layers.Dense(width, activation="tanh")(h)
        model = keras.Model(x, keras.layers.Dense(num_features)(h), name="autoencoder")
        model.compile(keras.optimizers.Adam(self.learning_rate), loss="mse",
                      steps_per_execution=replicas.steps_per_execution(
                          self.steps_per_execution, model.distribute_strategy))
        return model

    def fit(self, x, seed=0):
        self.start_fit(x.shape[1], seed)
        x = np.asarray(x, np.float32)
        sparse = np.zeros_like(x)
        for epochs in self._epochs_per_iteration(self.epochs_for(len(x))):
            low_rank = x - sparse
            fit_passes(self.model_, low_rank, epochs, self.batch_size, y=low_rank)
            low_rank = self.model_.predict(low_rank, batch_size=4096, verbose=0)
            sparse = shrink(x - low_rank, self.lam)
        self.sparse_ = sparse
        return self

    def _epochs_per_iteration(self, epochs):
        iterations = min(self.iterations, epochs)
        return [len(part) for part in np.array_split(np.arange(epochs), iterations)]

    def anomaly_score(self, x):
        x = np.asarray(x, np.float64)
        x_hat = self.model_.predict(x.astype(np.float32), batch_size=4096, verbose=0)
        return np.sum(np.square(x - x_hat), axis=1)
