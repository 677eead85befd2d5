"""The paper variant behind the scikit-learn estimator, and how the latent codes are drawn.

MMOCGANDetector(reference="none") is the paper's method, whose score is 1 - D(x) rather than
-log p(x), so its estimator conventions are checked on their own. code_sampling decides
which mode's code c_x every real row hands the generator: "argmax" must take argmax Q(c|x)
whatever the seed, "sample" must draw c_x ~ Q(c|x), so both are checked on the codes that
generate() really feeds the prior, and on fixed logits.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmocgan_tf import MMOCGAN, MMOCGANDetector
from mmocgan_tf.model import priors

TINY = dict(num_modes=3, z_dim=4, d_hidden=(16, 16), g_hidden=(16,))


def data(n=300, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 4)).astype("float32")


@pytest.fixture(scope="module")
def paper():
    return MMOCGANDetector(reference="none", epochs=2, target_epochs=2, batch_size=50,
                           steps_per_execution=4, random_state=1, **TINY).fit(data())


def test_paper_detector_scores_one_minus_d_and_predicts_by_the_offset(paper):
    x = np.concatenate([data(100, seed=1), data(10, seed=2) * 20])
    logit, score = paper.score_samples(x), paper.anomaly_score(x)
    assert np.all((score >= 0) & (score <= 1))
    np.testing.assert_allclose(score, 1 / (1 + np.exp(logit)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(paper.decision_function(x), logit - paper.offset_, rtol=1e-6,
                               atol=1e-6)
    labels = paper.predict(x)
    assert set(np.unique(labels)) <= {-1, 1}
    np.testing.assert_array_equal(labels == -1, paper.decision_function(x) < 0)
    np.testing.assert_array_equal(labels == -1, paper.model_.predict(x, verbose=0)["is_anomaly"])
    # The 99.5% quantile rule on the 300 training rows: 2 of them (linear interpolation).
    assert np.sum(paper.predict(data()) == -1) == 2


def test_predict_mode_is_the_models_mode_output(paper):
    x = np.concatenate([data(200, seed=3), data(50, seed=4) * 5])
    modes = paper.predict_mode(x)
    assert modes.shape == (len(x),) and np.issubdtype(modes.dtype, np.integer)
    assert modes.min() >= 0 and modes.max() < TINY["num_modes"]
    live = paper.model_.predict(x, verbose=0)
    np.testing.assert_array_equal(modes, live["mode"])
    np.testing.assert_array_equal(modes, live["mode_probs"].argmax(axis=1))
    assert len(np.unique(modes)) > 1  # so the equality says something


def sampler(code_sampling):
    """An unfitted model (identity standardisation, random Q and G): enough to draw codes."""
    keras.utils.set_random_seed(0)  # the weights: whichever tests ran before
    model = MMOCGAN(num_features=4, code_sampling=code_sampling, seed=0, **TINY)
    model.build((None, 4))
    return model


def codes_fed_to_the_prior(model, x, seed):
    """The codes generate(x, seed) hands the prior, caught on their way in."""
    seen, sample = [], model.prior.sample

    def spy(codes, z_seed):
        seen.append(codes.numpy())
        return sample(codes, z_seed)

    model.prior.sample = spy
    try:
        model.generate(x, seed=seed)
    finally:
        model.prior.sample = sample
    return seen[0]


def q_argmax(model, x):
    return model.discriminator(model.standardizer(x))["q_logits"].numpy().argmax(axis=1)


def test_argmax_codes_are_argmax_q_whatever_the_seed():
    model, x = sampler("argmax"), data(500, seed=5) * 3
    want = q_argmax(model, x)
    assert len(np.unique(want)) > 1
    for seed in (1, 2):
        np.testing.assert_array_equal(codes_fed_to_the_prior(model, x, seed), want)
    logits = tf.constant(np.log([[0.2, 0.5, 0.3]] * 1000), tf.float32)
    for seed in ([1, 0], [2, 0]):
        np.testing.assert_array_equal(priors.draw_codes(logits, tf.constant(seed), "argmax"), 1)


def test_sampled_codes_follow_q_and_change_with_the_seed():
    model, x = sampler("sample"), data(500, seed=5) * 3
    first, second = (codes_fed_to_the_prior(model, x, seed) for seed in (1, 2))
    assert np.mean(first != second) > 0.1
    assert np.mean(first != q_argmax(model, x)) > 0.1
    probs = np.array([0.6, 0.3, 0.1])
    logits = tf.constant(np.log(np.tile(probs, (20000, 1))), tf.float32)
    codes = priors.draw_codes(logits, tf.constant([3, 0])).numpy()
    # 20,000 draws: a share's standard deviation is at most 0.0035; 0.015 is > 4 of them.
    np.testing.assert_allclose(np.bincount(codes, minlength=3) / len(codes), probs, atol=0.015)
    assert not np.array_equal(codes, priors.draw_codes(logits, tf.constant([4, 0])).numpy())
