"""AnoGAN baseline: regular GAN training, batched latent-search scoring traced once."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from tiny import TINY_NETWORKS, blobs, far_rows

from mmocgan_tf.evaluation.baselines import make_detector
from mmocgan_tf.evaluation.baselines.anogan import AnoGANDetector

TINY = dict(TINY_NETWORKS, epochs=3, batch_size=50, steps_per_execution=4, latent_steps=30)


@pytest.fixture(scope="module")
def fitted():
    return AnoGANDetector(**TINY).fit(blobs(), seed=5)


def test_scores_are_finite_and_far_rows_rank_above_training_rows(fitted):
    train, far = blobs(), far_rows()
    train_scores = fitted.training_scores(train)
    far_scores = fitted.anomaly_score(far)
    assert train_scores.shape == (300,) and far_scores.shape == (30,)
    assert np.isfinite(train_scores).all() and np.isfinite(far_scores).all()
    assert np.median(far_scores) > np.quantile(train_scores, 0.9)
    labels = np.r_[np.zeros(300), np.ones(30)]
    assert roc_auc_score(labels, np.r_[train_scores, far_scores]) > 0.8


def test_seeded_search_and_the_search_lowers_the_loss(fitted):
    x = blobs(40, seed=2)
    np.testing.assert_array_equal(fitted.anomaly_score(x), fitted.anomaly_score(x))
    steps = fitted.latent_steps
    try:
        fitted.latent_steps = 0  # a tensor argument: no new trace
        start = fitted.anomaly_score(x)
    finally:
        fitted.latent_steps = steps
    assert fitted.anomaly_score(x).mean() < start.mean()


def test_search_is_traced_once_for_any_row_count_and_chunking(fitted):
    fitted.anomaly_score(blobs(17, seed=3))
    traces = fitted.latent_traces_
    assert traces == 1
    chunk = fitted.chunk_size
    try:
        fitted.chunk_size = 64  # 150 rows: chunks of 64, 64 and 22
        scores = fitted.anomaly_score(blobs(150, seed=4))
    finally:
        fitted.chunk_size = chunk
    assert scores.shape == (150,) and np.isfinite(scores).all()
    assert fitted.latent_traces_ == traces
    fitted.fit(blobs(seed=6), seed=6)  # same width: same model, same traced search
    fitted.anomaly_score(blobs(9, seed=7))
    assert fitted.latent_traces_ == traces


def test_registry_makes_anogan_with_epochs():
    detector = make_detector("anogan", epochs=3)
    assert isinstance(detector, AnoGANDetector)
    assert detector.name == "anogan" and detector.epochs == 3 and not detector.is_gan
    assert detector.lambda_weight == 0.1 and detector.latent_steps == 100
