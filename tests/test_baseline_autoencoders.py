"""The deep baselines OC-NN, DAGMM and RDA: scores, reuse of the traced step, the papers' rules."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from tiny import blobs

from mmocgan_tf.evaluation import baselines
from mmocgan_tf.evaluation.baselines.dagmm import DAGMMDetector
from mmocgan_tf.evaluation.baselines.ocnn_network import OCNNDetector
from mmocgan_tf.evaluation.baselines.rda import RDADetector, shrink

# Tiny settings: seconds per fit on 2 cores. DAGMM needs a fast learning rate to train its
# autoencoder in a few steps; RDA's small lambda puts some entries into S.
TINY = {
    "ocnn_network": (OCNNDetector, dict(epochs=4, batch_size=50, encoder_hidden=(16,),
                                        hidden_units=8, steps_per_execution=4)),
    "dagmm": (DAGMMDetector, dict(epochs=5, batch_size=32, learning_rate=1e-2,
                                  steps_per_execution=8)),
    "rda": (RDADetector, dict(epochs=4, iterations=2, batch_size=50, hidden=(16,), lam=0.5,
                              steps_per_execution=4)),
}


# The rows every test here trains on: random centres, standardised as the protocol does.
DATA = dict(spread=3.0, noise=0.5, standardize=True)


def make(name):
    cls, options = TINY[name]
    return cls(**options)


@pytest.fixture(scope="module")
def fitted():
    """name -> (detector fitted with seed 0, its scores of the rows and of rows + 8 std)."""
    x = blobs(**DATA)
    results = {}
    for name in TINY:
        detector = make(name).fit(x, seed=0)
        results[name] = (detector, detector.anomaly_score(x), detector.anomaly_score(x + 8.0))
    return results


@pytest.mark.parametrize("name", list(TINY))
def test_scores_are_finite_float64_per_row(fitted, name):
    _, scores, far = fitted[name]
    for s in (scores, far):
        assert s.shape == (300,) and s.dtype == np.float64
        assert np.isfinite(s).all()


@pytest.mark.parametrize("name", ["dagmm", "rda"])
def test_far_rows_score_above_training_rows(fitted, name):
    _, scores, far = fitted[name]
    labels = np.r_[np.zeros(len(scores)), np.ones(len(far))]
    assert roc_auc_score(labels, np.r_[scores, far]) > 0.8


def test_ocnn_r_is_the_nu_quantile_of_the_training_outputs(fitted):
    # OC-NN is a hyperplane in its learned features: rows far away in some directions look
    # more normal than the training rows (see ocnn_network), so there is no far-row test.
    # r is set after the last epoch: the training rows above it are the nu fraction.
    detector, scores, _ = fitted["ocnn_network"]
    assert abs(np.mean(scores > 0) - detector.nu) <= 1.0 / len(scores)


@pytest.mark.parametrize("name", list(TINY))
def test_refit_reuses_the_traced_step_and_matches_a_fresh_fit(fitted, name):
    detector = fitted[name][0]
    train_function = detector.model_.train_function
    x = blobs(seed=1, **DATA)
    detector.fit(x, seed=1)
    assert detector.model_.train_function is train_function
    fresh = make(name).fit(x, seed=1)
    np.testing.assert_allclose(detector.anomaly_score(x), fresh.anomaly_score(x), atol=1e-5)


def test_dagmm_stays_finite_with_constant_columns_and_extreme_rows():
    x = blobs(**DATA)
    x = np.c_[np.zeros((len(x), 1), np.float32), x]  # a constant column, standardised to 0
    x[:5] = 0.0  # rows at the training mean: ||x|| = 0 in the relative distance
    test = np.r_[x[:5], np.full((1, 5), 1e30, np.float32), np.full((1, 5), -3.0, np.float32)]
    test[-1, 0] = 1e6  # the constant column moves
    detector = DAGMMDetector(epochs=2, batch_size=100, learning_rate=1e-2).fit(x, seed=0)
    assert np.isfinite(detector.anomaly_score(test)).all()
    assert np.isfinite(detector.training_scores(x)).all()
    np.testing.assert_allclose(detector.model_.phi.numpy().sum(), 1.0, rtol=1e-6)


def test_rda_shrinkage_and_sparse_part(fitted):
    np.testing.assert_allclose(shrink(np.array([-2.0, -0.3, 0.0, 0.5, 3.0]), 0.5),
                               [-1.5, 0.0, 0.0, 0.0, 2.5])
    sparse = fitted["rda"][0].sparse_
    assert sparse.shape == (300, 4) and 0 < np.count_nonzero(sparse) < sparse.size


@pytest.mark.parametrize("name", list(TINY))
def test_registry_builds_them(name):
    detector = baselines.make_detector(name, epochs=3)
    assert isinstance(detector, TINY[name][0])
    assert detector.name == name and detector.epochs == 3 and not detector.is_gan
