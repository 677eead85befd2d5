"""MMOCGANDetector: MMOC-GAN behind scikit-learn's outlier-detector conventions.

Conventions (those of sklearn.ensemble.IsolationForest): score_samples is higher for more
normal rows, decision_function = score_samples - offset_ is negative for anomalies, predict
returns +1 (normal) / -1 (anomaly). anomaly_score follows PyOD instead: higher = more
anomalous (-log p(x) by default; the paper variant's 1 - D(x) is in [0, 1]). Scores are
float64, as scikit-learn's are; the model computes them in float32. docs/CONVENTIONS.md
sets the three faces (this one, mmocgan_tf.pyod and the Keras model) side by side.
"""

import dataclasses
import numbers

import keras
import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from mmocgan_tf.config import ModelConfig
from mmocgan_tf.model.mmocgan import MMOCGAN

_DEFAULTS = ModelConfig()
_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
_SEEDS = np.iinfo(np.int32).max  # model seeds are drawn below this: TensorFlow takes int32
_CHUNK = 1024  # rows per scoring batch, every batch padded to it (see _outputs)


class MMOCGANDetector(OutlierMixin, BaseEstimator):
    """Multimodal one-class GAN anomaly detector, trained on normal rows only.

    Every argument of ModelConfig is an argument here (see its docstring), with its
    defaults: the noise-contrastive variant with a flow reference (reference="flow");
    reference="none" gives the paper's method. epochs is 300, not the paper's 1000, to keep
    fits short (docs/RESULTS.md).

    Args:
      epochs: training epochs of the complementary GAN (the paper: 1000).
      batch_size: minibatch size (the paper: 100).
      d_learning_rate, g_learning_rate: Adam learning rates of D (with Q) and of G.
      steps_per_execution: training steps per compiled call.
      contamination: "auto" sets the threshold by threshold_rule and threshold_quantile; a
        float in (0, 0.5] is the share of training rows flagged (IsolationForest's meaning;
        it replaces the rule by the quantile rule at 1 - contamination).
      random_state: None, an int or a numpy RandomState, as in scikit-learn. An int is the
        model's seed (weights, noise, batch orders, the reference mixture), so it repeats
        fits exactly and MMOCGAN(seed=that int) builds the same model; for a RandomState
        or None (NumPy's global one) the seed is drawn from it. No generator is seeded.
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
        reference_broad_scale=_DEFAULTS.reference_broad_scale,
        reference_flow_share=_DEFAULTS.reference_flow_share,
        reference_flow_steps=_DEFAULTS.reference_flow_steps,
        reference_flow_base=_DEFAULTS.reference_flow_base, weight_nce=_DEFAULTS.weight_nce,
        weight_complement=_DEFAULTS.weight_complement, steps_per_execution=16,
        contamination="auto", random_state=None, verbose=0,
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
        self.reference_flow_share = reference_flow_share
        self.reference_flow_steps = reference_flow_steps
        self.reference_flow_base = reference_flow_base
        self.weight_nce = weight_nce
        self.weight_complement = weight_complement
        self.steps_per_execution = steps_per_execution
        self.contamination = contamination
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None):
        """Trains on X, which must hold normal rows only; y is ignored (API convention)."""
        self._check_counts()
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        hyper = {name: getattr(self, name) for name in _MODEL_FIELDS if name != "seed"}
        hyper.update(self._threshold_options())
        seed = self._seed()
        self.model_ = MMOCGAN(num_features=X.shape[1], seed=seed, **hyper)
        self.model_.compile(
            d_optimizer=keras.optimizers.Adam(self.d_learning_rate),
            g_optimizer=keras.optimizers.Adam(self.g_learning_rate),
            steps_per_execution=self.steps_per_execution)
        self.model_.fit(X, epochs=self.epochs, batch_size=min(self.batch_size, len(X)),
                        verbose=self.verbose)
        self._read_offset()
        return self

    def _check_counts(self):
        """Refuses epochs, batch_size or steps_per_execution < 1 in one line, as the CLI does."""
        for name in ("epochs", "batch_size", "steps_per_execution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    def _seed(self):
        if isinstance(self.random_state, numbers.Integral):
            if not 0 <= self.random_state < _SEEDS:
                raise ValueError(f"random_state={self.random_state} must be in [0, {_SEEDS})")
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(_SEEDS))

    def infer_threshold(self, X_normal, fpr=0.005):
        """Moves the threshold so that a share fpr of held-out normal rows is flagged.

        For a threshold chosen on rows the model has not seen (alibi-detect's name and
        meaning): scores of training rows are optimistic. Never pass labelled anomalies.
        Returns self; a later fit sets the threshold by contamination again.
        """
        check_is_fitted(self, "model_")
        X_normal = validate_data(self, X_normal, dtype=np.float32, reset=False)
        self.model_.infer_threshold(X_normal, fpr=fpr)
        self._read_offset()
        return self

    def _threshold_options(self):
        """The ModelConfig threshold fields that contamination implies (none for "auto")."""
        if isinstance(self.contamination, str) and self.contamination == "auto":
            return {}
        if (not isinstance(self.contamination, numbers.Real)
                or not 0.0 < self.contamination <= 0.5):
            raise ValueError(f"contamination must be 'auto' or a float in (0, 0.5], got "
                             f"{self.contamination!r}")
        return {"threshold_rule": "quantile", "threshold_quantile": 1.0 - self.contamination}

    def _read_offset(self):
        self.offset_ = float(self.model_.normality_threshold.numpy())

    def _outputs(self, X):
        """The model's outputs for X, scored in batches of one fixed shape.

        float32 kernels choose their summation order by the shape of the batch, so a row
        scored with other rows could differ in its last digits from the same row alone;
        padding every batch to _CHUNK rows makes a row's outputs its own.
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        padded = np.zeros((-(-len(X) // _CHUNK) * _CHUNK, X.shape[1]), np.float32)
        padded[:len(X)] = X
        outputs = self.model_.predict(padded, batch_size=_CHUNK, verbose=0)
        return {name: value[:len(X)] for name, value in outputs.items()}

    def score_samples(self, X):
        """The model's normality: higher = more normal (scikit-learn's orientation)."""
        return self._outputs(X)["normality"].astype(np.float64)

    def decision_function(self, X):
        """score_samples - offset_: negative for rows the threshold calls anomalous."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for normal rows, -1 for anomalies."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def anomaly_score(self, X):
        """Higher = more anomalous (PyOD's orientation): -log p(x), or the paper's 1 - D(x)."""
        return self._outputs(X)["score"].astype(np.float64)

    def predict_mode(self, X):
        """The learned mode argmax_c Q(c|x) of each row."""
        return self._outputs(X)["mode"]

    def explain(self, X):
        """Per-feature attributions [n, d] of anomaly_score (float64), higher = this feature
        makes the row more anomalous, relative to its mode (MMOCGAN.explain)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self.model_.explain(X, batch_size=_CHUNK).astype(np.float64)
