"""The flow reference: a masked autoregressive flow as q, alone or shared with the mixture."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from tiny import TINY_MODEL

from mmocgan_tf import MMOCGAN
from mmocgan_tf.config import ConfigError
from mmocgan_tf.evaluation import reinit
from mmocgan_tf.model.references import flows, mixtures

FLOW = dict(TINY_MODEL, reference="flow", reference_flow_steps=150)


def fitted_flow(rows, steps=300, seed=0):
    flow = flows.Flow(rows.shape[1], random.Random(seed))
    flow.build((None, rows.shape[1]))
    flow.fit(rows, seed, steps, steps_per_execution=50)
    return flow


def mixed_columns(n=600, seed=0):
    """A continuous column, a binary one, one of five integer levels and a constant one."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(size=n), rng.integers(0, 2, n), rng.integers(0, 5, n),
                     np.full(n, 3.0)], axis=1).astype("float32")


def test_each_made_output_depends_on_earlier_columns_only():
    made = flows.MADE(4, (8, 8), random.Random(0))
    made.build((None, 4))
    x = tf.random.normal([1, 4], seed=1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        shift, log_scale = made(x)
    for output in (shift, log_scale):
        jacobian = tape.batch_jacobian(output, x)[0].numpy()  # [output k, input j]
        assert np.all(jacobian[np.triu_indices(4)] == 0)  # nothing from columns j >= k
        assert np.any(jacobian[np.tril_indices(4, -1)] != 0)


def test_the_flow_learns_a_correlated_gaussian_and_samples_it():
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    rows = np.random.default_rng(0).multivariate_normal([0, 0], cov, 3000).astype("float32")
    flow = fitted_flow(rows, steps=600)
    fresh = np.random.default_rng(1).multivariate_normal([0, 0], cov, 2000).astype("float32")
    truth = multivariate_normal([0, 0], cov + flows.DEQUANTISATION_FLOOR**2 * np.eye(2))
    assert flow.log_prob(fresh).numpy().mean() == pytest.approx(truth.logpdf(fresh).mean(),
                                                                abs=0.1)
    pool = flow.pool.numpy()
    assert np.corrcoef(pool.T)[0, 1] == pytest.approx(0.8, abs=0.05)
    drawn = flow.negatives(100, tf.constant([3, 4], tf.int32)).numpy()
    assert all((pool == row).all(axis=1).any() for row in drawn)  # every negative from the pool


def test_a_flow_over_the_mixture_starts_as_the_mixture():
    x = np.random.default_rng(0).normal(size=(300, 3)).astype("float32")
    mixture = mixtures.Mixture(2)
    mixture.build((None, 3))
    mixture.assign(mixtures.fit_bic_arrays(x, 2, broad_weight=0.1, broad_scale=2.0))
    flow = flows.Flow(3, random.Random(0), identity_start=True)
    flow.build((None, 3))
    np.testing.assert_allclose(flow.log_prob(x, mixture).numpy(), mixture.log_prob(x).numpy(),
                               rtol=1e-6)


def test_dequantisation_follows_each_columns_resolution():
    noise = flows.dequantisation_noise(mixed_columns() * [1, 2, 10, 1])
    share = flows.DEQUANTISATION_SHARE
    np.testing.assert_allclose(noise[1:], [share * 2, share * 10, flows.DEQUANTISATION_FLOOR],
                               rtol=1e-6)
    assert noise[0] < 0.01  # a continuous column: far below its spread


def test_discrete_and_constant_columns_get_finite_densities():
    x = mixed_columns()
    model = MMOCGAN(num_features=4, **FLOW)
    model.compile(steps_per_execution=8)
    model.fit(x, epochs=1, batch_size=100, verbose=0)
    odd = np.array([[0.0, 0.5, 2.5, 3.0], [0.0, 1.0, 7.0, -4.0], [1e30, -1e30, 0.0, 1e30]],
                   np.float32)  # between the levels, new levels, far beyond every row
    out = model.predict(np.concatenate([x, odd]), verbose=0)
    assert np.isfinite(out["score"]).all()
    assert np.isfinite(model.reference.flow.log_prob(model.standardizer(x)).numpy()).all()
    assert out["score"][-2:].min() > np.quantile(out["score"][:-3], 0.99)  # new and far


def test_the_fit_stops_on_the_held_out_likelihood_and_keeps_its_best_weights(monkeypatch):
    monkeypatch.setattr(flows, "EVALUATE_EVERY", 25)
    rows = np.random.default_rng(0).normal(size=(400, 2)).astype("float32")
    flow = flows.Flow(2, random.Random(0))
    flow.build((None, 2))
    losses = flow.fit(rows, 0, 40 * 25, steps_per_execution=25).history["val_loss"]
    assert len(losses) == int(np.argmin(losses)) + 1 + flows.PATIENCE < 40  # stopped early
    # The held-out rows as the fit drew them: 10% of the rows, dequantised.
    rng = np.random.default_rng([0, 3])
    held = rows[rng.permutation(400)[:40]]
    held = held + flows.dequantisation_noise(rows) * rng.standard_normal(held.shape)
    assert -flow.raw_log_prob(held.astype("float32")).numpy().mean() == pytest.approx(
        min(losses), rel=1e-4)  # the best weights are back


def test_far_rows_condition_the_flow_as_rows_at_the_clip_range_and_still_invert():
    """A row far out in a tail gets the shift and scale of one at the range (a fit on
    shuttle's 100-sigma rows diverged without it), and the flow stays a bijection."""
    made = flows.MADE(3, (8, 8), random.Random(0))
    made.build((None, 3))
    r = flows.CONDITIONER_RANGE
    far = tf.constant([[1e4, -1e4, 3.0]])
    for a, b in zip(made(far), made(tf.constant([[r, -r, 3.0]])), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    flow = flows.Flow(3, random.Random(0))
    flow.build((None, 3))
    rows = tf.constant([[150.0, -80.0, 0.5], [0.1, 0.2, 0.3]])
    bijector = flow.bijector()
    np.testing.assert_allclose(bijector.forward(bijector.inverse(rows)).numpy(), rows.numpy(),
                               rtol=1e-4, atol=1e-4)


def test_a_diverging_fit_is_one_clear_error():
    flow = flows.Flow(2, random.Random(0))
    flow.build((None, 2))
    with pytest.raises(flows.FlowFitError, match="diverged"):
        flow.fit(np.full((200, 2), 1e30, np.float32), 0, 20, steps_per_execution=10)


def test_flow_options_are_validated():
    with pytest.raises(ConfigError, match="reference_flow_share"):
        MMOCGAN(num_features=2, reference="flow", reference_flow_share=0.0)
    with pytest.raises(ConfigError, match="reference_flow_steps"):
        MMOCGAN(num_features=2, reference="flow", reference_flow_steps=0)
    with pytest.raises(ConfigError, match="reference_flow_base"):
        MMOCGAN(num_features=2, reference="flow", reference_flow_base="uniform")


@pytest.fixture(scope="module")
def shared():
    """A model whose q is half a flow over N(0, I), half mixture, prepared on two blobs."""
    rng = np.random.default_rng(0)
    x = (np.array([[-3.0, 0, 0], [3.0, 0, 0]])[rng.integers(0, 2, 500)]
         + rng.normal(0, 0.5, (500, 3))).astype("float32")
    model = MMOCGAN(num_features=3, **{**FLOW, "reference_flow_share": 0.5,
                                       "reference_flow_base": "normal"})
    model.compile(steps_per_execution=8)
    model.prepare(x)
    return model, x


def test_a_shared_q_is_the_weighted_sum_of_flow_broad_and_mixture(shared):
    model, x = shared
    reference, scaled = model.reference, model.standardizer(x[:50])
    b, s = model.config.reference_broad_weight, model.config.reference_broad_scale
    flow = reference.flow.log_prob(scaled).numpy()
    broad = multivariate_normal(np.zeros(3), s**2 * np.eye(3)).logpdf(scaled.numpy())
    mixture = reference.q.log_prob(scaled).numpy()
    expected = logsumexp([np.log(0.5 * (1 - b)) + flow, np.log(0.5 * b) + broad,
                          np.log(0.5) + mixture], axis=0)
    np.testing.assert_allclose(reference.log_q(scaled).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(reference.log_density(scaled).numpy(), mixture)  # L_KL's


def test_a_shared_q_draws_its_negatives_from_each_part_in_its_share(shared):
    model, _ = shared
    reference = model.reference
    seed = tf.constant([5, 6], tf.int32)
    drawn = reference.negatives(4000, seed).numpy()
    np.testing.assert_array_equal(drawn, reference.negatives(4000, seed).numpy())
    pool = reference.flow.pool.numpy()
    from_pool = np.mean([(pool == row).all(axis=1).any() for row in drawn[:1000]])
    b = model.config.reference_broad_weight
    assert from_pool == pytest.approx(0.5 * (1 - b), abs=0.05)


@pytest.mark.slow
def test_save_load_and_reinitialize_keep_the_flow_variant_reproducible(tmp_path):
    """The flow over the mixture (the default base): its fit, pool and scores survive save
    and load, and a reinitialized model refits like a fresh one."""
    x = mixed_columns(300)
    model = MMOCGAN(num_features=4, **FLOW)
    model.compile(steps_per_execution=8)
    model.fit(x, epochs=1, batch_size=100, verbose=0)
    path = str(tmp_path / "flow.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0)["score"],
                                  model.predict(x, verbose=0)["score"])
    np.testing.assert_array_equal(loaded.reference.flow.pool.numpy(),
                                  model.reference.flow.pool.numpy())
    fresh = MMOCGAN(num_features=4, **{**FLOW, "seed": 7})
    fresh.compile(steps_per_execution=8)
    fresh.prepare(x)
    reinit.reinitialize_mmocgan(model, 7)
    model.prepare(x)
    np.testing.assert_allclose(model.reference.flow.pool.numpy(),
                               fresh.reference.flow.pool.numpy(), atol=1e-5)
