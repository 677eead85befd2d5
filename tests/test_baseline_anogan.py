"""AnoGAN baseline: regular GAN training, batched latent-search scoring traced once."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mmocgan_tf.baselines import make_detector
from mmocgan_tf.baselines.anogan import AnoGANDetector

TINY = dict(epochs=3, z_dim=4, d_hidden=(16, 16), g_hidden=(16,), batch_size=50,
            steps_per_execution=4, latent_steps=30)


def blobs(n=300, seed=0):
    """Three Gaussian blobs in 4 features."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0, 0, 0], [-2, 2, 0, 0], [0, -2, 2, 0]], np.float32)
    return (centers[rng.integers(0, 3, n)] + 0.3 * rng.normal(size=(n, 4))).astype("float32")


def far_rows(n=30, seed=1):
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n, 4))
    return (8.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)).astype(
        "float32")


@pytest.fixture(scope="module")
def fitted():
    return AnoGANDetector(**TINY).fit(blobs(), seed=5)


def test_scores_are_finite_and_far_rows_rank_above_training_rows(fitted):
    train, far = blobs(), far_rows()
    train_scores = fitted.training_scores(train)
    far_scores = fitted.score_samples(far)
    assert train_scores.shape == (300,) and far_scores.shape == (30,)
    assert np.isfinite(train_scores).all() and np.isfinite(far_scores).all()
    assert np.median(far_scores) > np.quantile(train_scores, 0.9)
    labels = np.r_[np.zeros(300), np.ones(30)]
    assert roc_auc_score(labels, np.r_[train_scores, far_scores]) > 0.8


def test_seeded_search_and_the_search_lowers_the_loss(fitted):
    x = blobs(40, seed=2)
    np.testing.assert_array_equal(fitted.score_samples(x), fitted.score_samples(x))
    steps = fitted.latent_steps
    try:
        fitted.latent_steps = 0  # a tensor argument: no new trace
        start = fitted.score_samples(x)
    finally:
        fitted.latent_steps = steps
    assert fitted.score_samples(x).mean() < start.mean()


def test_search_is_traced_once_for_any_row_count_and_chunking(fitted):
    fitted.score_samples(blobs(17, seed=3))
    traces = fitted.latent_traces_
    assert traces == 1
    chunk = fitted.chunk_size
    try:
        fitted.chunk_size = 64  # 150 rows: chunks of 64, 64 and 22
        scores = fitted.score_samples(blobs(150, seed=4))
    finally:
        fitted.chunk_size = chunk
    assert scores.shape == (150,) and np.isfinite(scores).all()
    assert fitted.latent_traces_ == traces
    fitted.fit(blobs(seed=6), seed=6)  # same width: same model, same traced search
    fitted.score_samples(blobs(9, seed=7))
    assert fitted.latent_traces_ == traces


def test_registry_makes_anogan_with_epochs():
    detector = make_detector("anogan", epochs=3)
    assert isinstance(detector, AnoGANDetector)
    assert detector.name == "anogan" and detector.epochs == 3 and not detector.is_gan
    assert detector.lambda_weight == 0.1 and detector.latent_steps == 100
