"""Golden values of every loss term on tiny fixed inputs (hand-computed)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mmocgan_tf.model import losses


def value(tensor):
    return float(tensor.numpy())


def test_real_fake_loss_at_chance_is_two_log_two():
    assert value(losses.real_fake_loss(tf.zeros([3]), tf.zeros([2]))) == pytest.approx(
        2 * math.log(2), rel=1e-6)


def test_real_fake_loss_matches_bce():
    real, fake = np.array([2.0, -1.0], "float32"), np.array([0.5], "float32")
    sig = lambda v: 1 / (1 + np.exp(-v))
    expected = -np.mean(np.log(sig(real))) - np.mean(np.log(1 - sig(fake)))
    assert value(losses.real_fake_loss(real, fake)) == pytest.approx(expected, rel=1e-5)


def test_binary_entropy_is_log_two_at_half_and_small_when_confident():
    assert value(losses.binary_entropy(tf.zeros([4]))) == pytest.approx(math.log(2), rel=1e-6)
    p = 1 / (1 + math.exp(-3.0))
    expected = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert value(losses.binary_entropy(tf.constant([3.0, -3.0]))) == pytest.approx(expected,
                                                                                    rel=1e-5)


def test_code_cross_entropy_of_uniform_q_is_log_m():
    got = losses.code_cross_entropy(tf.zeros([2, 4]), tf.constant([0, 3]))
    assert value(got) == pytest.approx(math.log(4), rel=1e-6)


def test_code_cross_entropy_reads_the_logit_of_each_rows_own_code():
    logits = tf.constant([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    # -log softmax: row 0 at code 0, row 1 at code 2.
    first = -(2.0 - math.log(math.exp(2.0) + 2.0))
    second = -(3.0 - math.log(1.0 + math.exp(1.0) + math.exp(3.0)))
    got = losses.code_cross_entropy(logits, tf.constant([0, 2]))
    assert value(got) == pytest.approx((first + second) / 2, rel=1e-6)
    swapped = losses.code_cross_entropy(logits, tf.constant([2, 0]))
    assert value(swapped) > value(got) + 1.0  # the wrong codes cost more


def test_mode_information_loss_uniform_is_zero_and_confident_balanced_is_minus_log_m():
    assert value(losses.mode_information_loss(tf.zeros([2, 2]))) == pytest.approx(0, abs=1e-6)
    confident = tf.constant([[50.0, 0.0], [0.0, 50.0]])
    assert value(losses.mode_information_loss(confident)) == pytest.approx(-math.log(2),
                                                                           abs=1e-5)


def test_mode_information_loss_collapsed_modes_is_zero():
    collapsed = tf.constant([[50.0, 0.0], [50.0, 0.0]])
    assert value(losses.mode_information_loss(collapsed)) == pytest.approx(0, abs=1e-5)


def test_feature_matching_is_squared_distance_of_means():
    fake = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    real = tf.constant([[0.0, 0.0]])
    assert value(losses.feature_matching_loss(fake, real)) == pytest.approx(13.0)


def test_pull_away_golden_value():
    features = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # squared cosines of distinct pairs: 0, 1/2, 1/2 (each counted twice), over 3 * 2
    assert value(losses.pull_away_loss(features)) == pytest.approx(1 / 3, rel=1e-5)


def test_pull_away_zero_row_gives_no_nan():
    features = tf.constant([[0.0, 0.0], [1.0, 0.0]])
    got = value(losses.pull_away_loss(features))
    assert math.isfinite(got) and got == pytest.approx(0.0, abs=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = losses.pull_away_loss(features)
    assert np.all(np.isfinite(tape.gradient(loss, features).numpy()))


def test_low_density_loss_counts_only_samples_at_or_above_eps():
    log_t = tf.math.log_sigmoid(tf.constant([0.0, 10.0, -10.0]))  # the paper's log T(x_hat)
    expected = (math.log(0.5) + math.log(1 / (1 + math.exp(-10.0)))) / 3
    threshold = math.log(0.5)  # eps_T = 0.5
    assert value(losses.low_density_loss(log_t, threshold)) == pytest.approx(expected, rel=1e-5)
    assert value(losses.low_density_loss(log_t, 0.0)) == 0.0


def test_sigma_regularizer_golden_value():
    sigma = tf.constant([[0.2, 0.2], [1.0, 1.0]])
    assert value(losses.sigma_regularizer(sigma)) == pytest.approx((0.64 * 2) / 2, rel=1e-5)
