"""mmocgan_tf.pyod.MMOCGAN behaves as a PyOD detector, call for call like PyOD's own."""

import importlib
import sys

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from tiny import TINY_MODEL

pytest.importorskip("pyod")

from pyod.utils.data import generate_data  # noqa: E402

from mmocgan_tf.evaluation.baselines.pyod_adapter import resolve  # noqa: E402
from mmocgan_tf.pyod import MMOCGAN  # noqa: E402

TINY = dict(TINY_MODEL, epochs=2, target_epochs=2, batch_size=50, steps_per_execution=4)
CONTAMINATION = 0.1


@pytest.fixture(scope="module")
def generated():
    """PyOD's protocol: a training set with anomalies in it, a labelled test set."""
    return generate_data(n_train=200, n_test=100, n_features=5, contamination=CONTAMINATION,
                         random_state=42, behaviour="new")


@pytest.fixture(scope="module")
def fitted(generated):
    x_train, _, _, _ = generated
    return MMOCGAN(contamination=CONTAMINATION, random_state=0, **TINY).fit(x_train)


def test_labels_flag_the_contamination_share_above_threshold(fitted, generated):
    x_train = generated[0]
    assert fitted.decision_scores_.shape == (len(x_train),)
    assert abs(fitted.labels_.mean() - CONTAMINATION) <= 1 / len(x_train)
    np.testing.assert_array_equal(fitted.labels_, fitted.decision_scores_ > fitted.threshold_)
    np.testing.assert_array_equal(fitted.decision_scores_, fitted.decision_function(x_train))
    # The Keras model's own threshold flags the same training rows.
    flagged = fitted.model_.predict(x_train.astype("float32"), verbose=0)["is_anomaly"]
    assert isinstance(fitted.model_, keras.Model)
    np.testing.assert_array_equal(flagged, fitted.labels_ == 1)


def test_predict_is_decision_function_above_threshold(fitted, generated):
    x_test = generated[1]
    scores, labels = fitted.decision_function(x_test), fitted.predict(x_test)
    assert scores.dtype == np.float64 and set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (scores > fitted.threshold_).astype(int))


@pytest.mark.parametrize("method", ["linear", "unify"])
def test_predict_proba_rows_are_distributions(fitted, generated, method):
    x_test = generated[1]
    proba = fitted.predict_proba(x_test, method=method)
    assert proba.shape == (len(x_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.min() >= 0 and proba.max() <= 1
    confidence = fitted.predict_confidence(x_test)
    assert confidence.shape == (len(x_test),) and 0 <= confidence.min() <= confidence.max() <= 1


def test_test_anomalies_rank_above_test_inliers(fitted, generated):
    _, x_test, _, y_test = generated  # labels only to measure, never to fit
    assert roc_auc_score(y_test, fitted.decision_function(x_test)) > 0.8


def test_explain_gives_the_detectors_attributions(fitted, generated):
    x_test = generated[1]
    attributions = fitted.explain(x_test)
    assert attributions.shape == x_test.shape and attributions.dtype == np.float64
    np.testing.assert_array_equal(attributions, fitted.detector_.explain(x_test))


def test_params_are_contamination_and_the_detectors_and_clone_unfitted(fitted):
    params = fitted.get_params()
    assert params["contamination"] == CONTAMINATION and params["num_modes"] == 3
    assert params["random_state"] == 0 and MMOCGAN().get_params()["epochs"] == 300
    copy = clone(fitted)
    assert copy.get_params() == params and not hasattr(copy, "detector_")
    copy.set_params(contamination=0.2, num_modes=2)
    assert (copy.contamination, copy.num_modes) == (0.2, 2) and fitted.num_modes == 3
    with pytest.raises(TypeError, match="nmodes"):
        MMOCGAN(nmodes=2)
    with pytest.raises(ValueError, match="contamination"):
        MMOCGAN(contamination=0.7)


def interface(detector, x_train, x_test):
    """(shape, dtype) of everything a PyOD user reads after fit, call by call."""
    def described(value):
        value = np.asarray(value)
        return value.shape, value.dtype

    labels, confidence = detector.predict(x_test, return_confidence=True)
    return {
        "decision_scores_": described(detector.decision_scores_),
        "threshold_": described(detector.threshold_),
        "labels_": described(detector.labels_),
        "decision_function": described(detector.decision_function(x_test)),
        "predict": described(detector.predict(x_test)),
        "predict values": set(np.unique(detector.predict(x_test))) <= {0, 1},
        "predict(return_confidence)": (described(labels), described(confidence)),
        "predict_proba linear": described(detector.predict_proba(x_test, method="linear")),
        "predict_proba unify": described(detector.predict_proba(x_test, method="unify")),
        "predict_confidence": described(detector.predict_confidence(x_test)),
    }


@pytest.mark.parametrize("name", ["KNN", "IForest", "LUNAR"])
def test_interface_matches_the_benchmarks_pyod_detectors(fitted, generated, name):
    x_train, x_test, _, _ = generated
    try:
        detector_class = resolve(name)  # as cli.benchmark's --methods=pyod:NAME does
    except ValueError as error:  # LUNAR without torch
        pytest.skip(str(error))
    theirs = detector_class(contamination=CONTAMINATION).fit(x_train)
    assert interface(fitted, x_train, x_test) == interface(theirs, x_train, x_test)


def test_without_pyod_the_import_error_says_what_to_install(monkeypatch):
    for name in ("pyod", "pyod.models", "pyod.models.base"):
        monkeypatch.setitem(sys.modules, name, None)  # None: "not installed" to import
    monkeypatch.delitem(sys.modules, "mmocgan_tf.pyod")
    with pytest.raises(ImportError) as error:
        importlib.import_module("mmocgan_tf.pyod")
    assert str(error.value) == "mmocgan_tf.pyod needs PyOD: pip install 'mmocgan-tf[pyod]'"
