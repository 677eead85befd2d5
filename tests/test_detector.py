"""MMOCGANDetector follows scikit-learn's outlier-detector conventions."""

import numpy as np
import pytest
from sklearn.base import clone
from tiny import TINY_MODEL, expected_flagged

from mmocgan_tf import MMOCGANDetector

TINY = dict(TINY_MODEL, epochs=2, target_epochs=2, batch_size=50, steps_per_execution=4)


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype("float32")


@pytest.fixture(scope="module")
def fitted():
    return MMOCGANDetector(random_state=3, **TINY).fit(data())


def test_init_only_stores_and_clone_copies_params_unfitted(fitted):
    params = fitted.get_params()
    assert params["random_state"] == 3 and params["num_modes"] == 3
    copy = clone(fitted)
    assert copy.get_params() == params
    assert not hasattr(copy, "model_")
    copy.set_params(num_modes=2)
    assert copy.num_modes == 2 and fitted.num_modes == 3


def test_decision_function_is_score_samples_minus_offset(fitted):
    x = data(50, seed=1)
    np.testing.assert_allclose(fitted.score_samples(x),
                               fitted.decision_function(x) + fitted.offset_, rtol=1e-6, atol=1e-6)
    # offset_ is the training scores' 0.5% quantile: the threshold_quantile rule in
    # scikit-learn's orientation.
    assert fitted.offset_ == pytest.approx(np.quantile(fitted.score_samples(data()), 0.005),
                                           rel=1e-5, abs=1e-5)


def test_predict_is_plus_one_or_minus_one_by_the_sign_of_decision_function(fitted):
    x = np.concatenate([data(50, seed=1), data(5, seed=2) * 20])
    labels = fitted.predict(x)
    np.testing.assert_array_equal(labels[-5:], -1)  # rows 20 standard deviations out
    assert np.mean(labels[:50] == 1) >= 0.9 and set(np.unique(labels)) == {-1, 1}
    np.testing.assert_array_equal(labels == -1, fitted.decision_function(x) < 0)


def test_quantile_offset_flags_half_a_percent_of_training_rows(fitted):
    assert np.sum(fitted.predict(data()) == -1) == expected_flagged(300, 0.005)


def test_anomaly_score_is_opposite_to_score_samples(fitted):
    x = data(100, seed=4)
    score = fitted.anomaly_score(x)
    np.testing.assert_allclose(score, -fitted.score_samples(x), rtol=1e-6)
    order = np.argsort(fitted.score_samples(x))
    assert np.all(np.diff(score[order]) <= 1e-7)


def test_wrong_number_of_features_is_refused(fitted):
    with pytest.raises(ValueError, match="features"):
        fitted.score_samples(np.zeros((3, 4), "float32"))


def test_paper_values_are_one_argument_away():
    assert MMOCGANDetector(epochs=1000).get_params()["epochs"] == 1000
    defaults = MMOCGANDetector().get_params()
    assert defaults["num_modes"] == 10 and defaults["weight_d_entropy"] == 1.85
