"""MMOCGANDetector follows scikit-learn's outlier-detector conventions."""

import random

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator
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


def test_scores_are_float64(fitted):
    x = data(20, seed=5)
    for method in (fitted.score_samples, fitted.decision_function, fitted.anomaly_score):
        assert method(x).dtype == np.float64 and method(x).shape == (20,)


def test_a_rows_scores_do_not_depend_on_the_rows_scored_with_it(fitted):
    x = data(1500, seed=6)  # more than one scoring batch
    whole = fitted.score_samples(x)
    np.testing.assert_array_equal(fitted.score_samples(x[:7]), whole[:7])
    order = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_array_equal(fitted.score_samples(x[order]), whole[order])


def test_explain_gives_float64_attributions_of_each_row_alone(fitted):
    x = data(1500, seed=7)  # more than one batch
    whole = fitted.explain(x)
    assert whole.dtype == np.float64 and whole.shape == x.shape
    np.testing.assert_array_equal(fitted.explain(x[:7]), whole[:7])
    np.testing.assert_array_equal(whole, fitted.model_.explain(x))
    with pytest.raises(ValueError, match="features"):
        fitted.explain(x[:, :3])


def test_an_int_random_state_repeats_fits_and_leaves_global_generators_alone():
    x, python_state, numpy_state = data(), random.getstate(), np.random.get_state()
    first = MMOCGANDetector(random_state=7, **TINY).fit(x)
    scores = first.score_samples(x)
    first.predict(x)
    assert random.getstate() == python_state
    after = np.random.get_state()  # (name, key array, position, gauss flag, cached gauss)
    assert np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    again = MMOCGANDetector(random_state=7, **TINY).fit(x)
    np.testing.assert_array_equal(again.score_samples(x), scores)
    # The int is the model's own seed.
    model = MMOCGANDetector(random_state=7, **TINY).fit(x).model_
    assert model.config.seed == 7
    # A RandomState is drawn from, as in scikit-learn: two fresh ones seeded alike give the
    # same model, and a second fit from the same generator a different one.
    generator = np.random.RandomState(7)
    from_generator = MMOCGANDetector(random_state=generator, **TINY).fit(x)
    twin = MMOCGANDetector(random_state=np.random.RandomState(7), **TINY).fit(x)
    np.testing.assert_array_equal(from_generator.score_samples(x), twin.score_samples(x))
    assert not np.array_equal(from_generator.fit(x).score_samples(x), twin.score_samples(x))
    with pytest.raises(ValueError, match="random_state"):
        MMOCGANDetector(random_state=-1, **TINY).fit(x)


def test_contamination_is_the_share_of_training_rows_flagged_and_infer_threshold_moves_it():
    x, held_out = data(), data(400, seed=8)
    detector = MMOCGANDetector(contamination=0.1, random_state=2, **TINY).fit(x)
    assert np.sum(detector.predict(x) == -1) == expected_flagged(300, 0.1)
    assert detector.model_.config.threshold_quantile == pytest.approx(0.9)
    assert detector.infer_threshold(held_out, fpr=0.05) is detector
    assert np.sum(detector.predict(held_out) == -1) == expected_flagged(400, 0.05)
    assert detector.offset_ == float(detector.model_.normality_threshold.numpy())
    with pytest.raises(ValueError, match="fpr"):
        detector.infer_threshold(held_out, fpr=1.5)


@pytest.mark.parametrize("contamination", [0.0, 0.6, "half", None])
def test_contamination_out_of_range_is_refused_in_fit(contamination):
    with pytest.raises(ValueError, match="contamination must be 'auto' or a float"):
        MMOCGANDetector(contamination=contamination, **TINY).fit(data(20))


@pytest.mark.slow
def test_passes_every_scikit_learn_estimator_check():
    """All of check_estimator's checks, with one epoch of tiny networks per fit."""
    estimator = MMOCGANDetector(**dict(TINY, epochs=1, target_epochs=1))
    results = check_estimator(estimator, on_fail=None, on_skip=None)
    failed = [f"{r['check_name']}: {r['exception']!r}"[:300] for r in results
              if r["status"] == "failed"]
    assert not failed, "\n".join(failed)
    assert sum(r["status"] == "passed" for r in results) >= 40
