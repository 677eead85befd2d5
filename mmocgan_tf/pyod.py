"""MMOCGAN for PyOD: MMOC-GAN behind pyod.models.base.BaseDetector's conventions.

So MMOC-GAN drops into code written for PyOD's detectors (KNN, IForest, LUNAR, ...):
decision_function is higher for more anomalous rows, `contamination` (PyOD's default 0.1)
sets threshold_ on the training scores, predict returns 1 for anomalies and 0 otherwise,
and predict_proba / predict_confidence come from BaseDetector. The model underneath is
MMOCGANDetector's (docs/CONVENTIONS.md compares the faces). PyOD stays optional.
"""

import inspect
import numbers

import numpy as np

try:
    from pyod.models.base import BaseDetector
except ImportError:
    raise ImportError("mmocgan_tf.pyod needs PyOD: pip install 'mmocgan-tf[pyod]'") from None
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from mmocgan_tf.detector import MMOCGANDetector

# MMOCGANDetector's arguments, whose defaults are this class's, but for contamination.
_MODEL_PARAMETERS = [p for name, p in inspect.signature(MMOCGANDetector).parameters.items()
                     if name != "contamination"]


class MMOCGAN(BaseDetector):
    """Multimodal one-class GAN anomaly detector with PyOD's interface.

    PyOD's protocol fits on rows that may include anomalies (a share `contamination`);
    MMOC-GAN learns what it is given as normal, so it does best on clean rows.

    Args:
      contamination: share of training rows above threshold_, a float in (0, 0.5]; the
        Keras model's own threshold flags the same share. A PyThresh object is handed to
        BaseDetector as PyOD does, and the Keras model keeps its configured rule.
      **params: the arguments of MMOCGANDetector (random_state, epochs, num_modes, ...),
        with its defaults.

    Attributes:
      decision_scores_: anomaly scores of the training rows (float64, higher = anomalous).
      threshold_: the score above which a row is an anomaly.
      labels_: 1 for the training rows above threshold_, else 0.
      detector_: the fitted MMOCGANDetector.
      model_: its trained MMOCGAN Keras model.
    """

    def __init__(self, contamination=0.1, **params):
        super().__init__(contamination=contamination)
        unknown = sorted(set(params) - {p.name for p in _MODEL_PARAMETERS})
        if unknown:
            raise TypeError(f"MMOCGAN got unexpected argument(s) {unknown}")
        for parameter in _MODEL_PARAMETERS:
            setattr(self, parameter.name, params.get(parameter.name, parameter.default))

    # What get_params, clone and help() read: contamination and MMOCGANDetector's arguments.
    __init__.__signature__ = inspect.Signature([
        *list(inspect.signature(__init__).parameters.values())[:2], *_MODEL_PARAMETERS])

    def fit(self, X, y=None):
        """Trains on X and sets threshold_ and labels_ on its scores; y is ignored."""
        X = check_array(X)
        self._set_n_classes(y)
        params = {p.name: getattr(self, p.name) for p in _MODEL_PARAMETERS}
        share = self.contamination if isinstance(self.contamination, numbers.Real) else "auto"
        self.detector_ = MMOCGANDetector(contamination=share, **params).fit(X)
        self.model_ = self.detector_.model_
        self.decision_scores_ = self.decision_function(X)
        self._process_decision_scores()
        return self

    def decision_function(self, X):
        """The model's anomaly score (float64): -log p(x), or the paper's 1 - D(x)."""
        check_is_fitted(self, "detector_")
        return np.asarray(self.detector_.anomaly_score(X), np.float64)

    def explain(self, X):
        """Per-feature attributions [n, d] of decision_function (float64), higher = this
        feature makes the row more anomalous, relative to its mode (MMOCGAN.explain)."""
        check_is_fitted(self, "detector_")
        return self.detector_.explain(X)
