"""MMOCGANDetector: MMOC-GAN behind scikit-learn's outlier-detector conventions.

Conventions (those of sklearn.ensemble.IsolationForest): score_samples is higher for more
normal rows, decision_function = score_samples - offset_ is negative for anomalies, predict
returns +1 (normal) / -1 (anomaly). anomaly_score follows PyOD instead: higher = more
anomalous (-log p(x) by default; the paper variant's 1 - D(x) is in [0, 1]).
"""

import dataclasses

import keras
import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mmocgan_tf.config import ModelConfig
from mmocgan_tf.model.mmocgan import MMOCGAN

_DEFAULTS = ModelConfig()
_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))


class MMOCGANDetector(OutlierMixin, BaseEstimator):
    """Multimodal one-class GAN anomaly detector, trained on normal rows only.

    Every argument of ModelConfig is an argument here (see its docstring), with its
    defaults: the noise-contrastive variant (reference="gmm"); reference="none" gives the
    paper's method. epochs is 300, not the paper's 1000, to keep fits short (docs/RESULTS.md).

    Args:
      epochs: training epochs of the complementary GAN (the paper: 1000).
      batch_size: minibatch size (the paper: 100).
      d_learning_rate, g_learning_rate: Adam learning rates of D (with Q) and of G.
      steps_per_execution: training steps per compiled call.
      random_state: int seed of weights and noise (None = 0, so fits repeat).
      verbose: Keras progress output during fit.

    Attributes:
      model_: the trained MMOCGAN (a Keras model; save it with model_.save(path)).
      offset_: decision_function's offset, the model's normality at the threshold.
      n_features_in_: number of columns seen in fit.
    """

    def __init__(
        self, *, num_modes=_DEFAULTS.num_modes, prior=_DEFAULTS.prior, z_dim=_DEFAULTS.z_dim,
        d_hidden=_DEFAULTS.d_hidden, g_hidden=_DEFAULTS.g_hidden, epochs=300, batch_size=100,
        d_learning_rate=1e-3, g_learning_rate=1e-3, target_epochs=_DEFAULTS.target_epochs,
        target_learning_rate=_DEFAULTS.target_learning_rate, code_sampling=_DEFAULTS.code_sampling,
        weight_d_entropy=_DEFAULTS.weight_d_entropy, weight_q_fake=_DEFAULTS.weight_q_fake,
        weight_q_real=_DEFAULTS.weight_q_real, weight_fm=_DEFAULTS.weight_fm,
        weight_pt=_DEFAULTS.weight_pt, weight_kl=_DEFAULTS.weight_kl, weight_mi=_DEFAULTS.weight_mi,
        weight_sigma=_DEFAULTS.weight_sigma, density_quantile=_DEFAULTS.density_quantile,
        threshold_rule=_DEFAULTS.threshold_rule, threshold_quantile=_DEFAULTS.threshold_quantile,
        reference=_DEFAULTS.reference, reference_broad_weight=_DEFAULTS.reference_broad_weight,
        reference_broad_scale=_DEFAULTS.reference_broad_scale, weight_nce=_DEFAULTS.weight_nce,
        weight_complement=_DEFAULTS.weight_complement, steps_per_execution=16,
        random_state=None, verbose=0,
    ):
        self.num_modes = num_modes
        self.prior = prior
        self.z_dim = z_dim
        self.d_hidden = d_hidden
        self.g_hidden = g_hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.d_learning_rate = d_learning_rate
        self.g_learning_rate = g_learning_rate
        self.target_epochs = target_epochs
        self.target_learning_rate = target_learning_rate
        self.code_sampling = code_sampling
        self.weight_d_entropy = weight_d_entropy
        self.weight_q_fake = weight_q_fake
        self.weight_q_real = weight_q_real
        self.weight_fm = weight_fm
        self.weight_pt = weight_pt
        self.weight_kl = weight_kl
        self.weight_mi = weight_mi
        self.weight_sigma = weight_sigma
        self.density_quantile = density_quantile
        self.threshold_rule = threshold_rule
        self.threshold_quantile = threshold_quantile
        self.reference = reference
        self.reference_broad_weight = reference_broad_weight
        self.reference_broad_scale = reference_broad_scale
        self.weight_nce = weight_nce
        self.weight_complement = weight_complement
        self.steps_per_execution = steps_per_execution
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None):
        """Trains on X, which must hold normal rows only; y is ignored (API convention)."""
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        seed = 0 if self.random_state is None else int(self.random_state)
        keras.utils.set_random_seed(seed)
        hyper = {name: getattr(self, name) for name in _MODEL_FIELDS if name != "seed"}
        self.model_ = MMOCGAN(num_features=X.shape[1], seed=seed, **hyper)
        self.model_.compile(
            d_optimizer=keras.optimizers.Adam(self.d_learning_rate),
            g_optimizer=keras.optimizers.Adam(self.g_learning_rate),
            steps_per_execution=self.steps_per_execution)
        self.model_.fit(X, epochs=self.epochs, batch_size=min(self.batch_size, len(X)),
                        verbose=self.verbose)
        self.offset_ = float(self.model_.normality_threshold.numpy())
        return self

    def _outputs(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self.model_.predict(X, batch_size=4096, verbose=0)

    def score_samples(self, X):
        """The model's normality: higher = more normal (scikit-learn's orientation)."""
        return self._outputs(X)["normality"]

    def decision_function(self, X):
        """score_samples - offset_: negative for rows the threshold calls anomalous."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for normal rows, -1 for anomalies."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def anomaly_score(self, X):
        """Higher = more anomalous (PyOD's orientation): -log p(x), or the paper's 1 - D(x)."""
        return self._outputs(X)["score"]

    def predict_mode(self, X):
        """The learned mode argmax_c Q(c|x) of each row."""
        return self._outputs(X)["mode"]
