"""The reference density q and the noise-contrastive variant of MMOCGAN built on it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from tiny import TINY_MODEL, expected_flagged

from mmocgan_tf import MMOCGAN
from mmocgan_tf.config import ConfigError
from mmocgan_tf.evaluation import reinit
from mmocgan_tf.model.references import mixtures

TINY = TINY_MODEL


def two_blobs(n=400, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0] * d, [4.0] * d])
    return (centres[rng.integers(0, 2, n)] + rng.normal(0, 0.5, (n, d))).astype("float32")


def test_fit_bic_arrays_finds_the_modes_and_fills_the_spare_slots():
    logits, loc, tril = mixtures.fit_bic_arrays(two_blobs(), num_modes=4, broad_weight=0.1,
                                                broad_scale=2.0)
    weights = np.exp(logits.astype(np.float64))
    assert np.count_nonzero(weights > 1e-6) == 3  # BIC picks 2 components, plus the broad one
    assert weights.sum() == pytest.approx(1.0, abs=1e-5) and weights[-1] == pytest.approx(0.1)
    used = np.sort(loc[:2, 0])
    np.testing.assert_allclose(used, [-4, 4], atol=0.2)
    np.testing.assert_allclose(tril[-1], 2.0 * np.eye(3))  # N(0, s^2 I)


def test_bic_picks_k_on_a_subsample_then_fits_that_k_to_every_row():
    x = np.concatenate([two_blobs(n=600, seed=1), two_blobs(n=600, seed=2) + 12.0])  # 4 blobs
    gmm = mixtures.fit_bic_mixture(x, max_components=6, seed=3, selection_rows=200)
    assert gmm.n_components == 4
    rows = x[np.random.default_rng(3).choice(len(x), 200, replace=False)]
    on_rows = mixtures.fit_bic_mixture(rows, max_components=6, seed=3)
    assert on_rows.n_components == 4
    # The winner was refitted to all 1,200 rows, not kept from the 200.
    assert not np.allclose(np.sort(gmm.means_[:, 0]), np.sort(on_rows.means_[:, 0]))
    small = x[::10]  # fewer rows than selection_rows: the plain search
    np.testing.assert_allclose(
        mixtures.fit_bic_mixture(small, 6, seed=3, selection_rows=200).means_,
        mixtures.fit_bic_mixture(small, 6, seed=3).means_)


def test_log_prob_is_the_mixture_density():
    x = two_blobs()
    arrays = mixtures.fit_bic_arrays(x, num_modes=3, broad_weight=0.2, broad_scale=3.0)
    logits, loc, tril = arrays
    expected = logsumexp(np.stack([
        logits[k] + multivariate_normal(loc[k], tril[k] @ tril[k].T).logpdf(x[:20])
        for k in range(len(logits)) if logits[k] > -1e6]), axis=0)
    got = mixtures.log_prob(*arrays, x[:20]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    whitened = mixtures.whitened_log_prob(mixtures.whitening_arrays(*arrays), x[:20]).numpy()
    np.testing.assert_allclose(whitened, expected, rtol=1e-4)


def test_a_mixture_stores_its_three_arrays_and_derives_the_whitening_on_load():
    x = two_blobs()
    arrays = mixtures.fit_bic_arrays(x, num_modes=3, broad_weight=0.2, broad_scale=3.0)
    mixture = mixtures.Mixture(3)
    mixture.build((None, 3))
    mixture.assign(arrays)
    store = {}
    mixture.save_own_variables(store)
    assert sorted(store) == ["0", "1", "2"]  # the file format of models saved before it
    loaded = mixtures.Mixture(3)
    loaded.build((None, 3))
    loaded.load_own_variables(store)
    np.testing.assert_allclose(loaded.log_prob(x[:20]).numpy(),
                               mixtures.log_prob(*arrays, x[:20]).numpy(), rtol=1e-5)


def test_samples_are_seeded_and_follow_the_mixture():
    arrays = mixtures.fit_bic_arrays(two_blobs(), num_modes=2, broad_weight=0.0, broad_scale=1.0)
    seed = tf.constant([1, 2], tf.int32)
    a = mixtures.sample(*arrays, 4000, seed).numpy()
    np.testing.assert_array_equal(a, mixtures.sample(*arrays, 4000, seed).numpy())
    assert not np.allclose(a, mixtures.sample(*arrays, 4000, tf.constant([1, 3])).numpy())
    logits, loc, _ = arrays
    positive_weight = np.exp(logits[loc[:, 0] > 0]).sum()
    assert np.mean(a[:, 0] > 0) == pytest.approx(positive_weight, abs=0.03)
    np.testing.assert_allclose(np.abs(a[:, 0]).mean(), 4.0, atol=0.2)


def variant(num_features=3, **overrides):
    keras.utils.set_random_seed(overrides.get("seed", 0))
    model = MMOCGAN(num_features=num_features, **{**TINY, **overrides})
    model.compile(steps_per_execution=4)
    return model


@pytest.fixture(scope="module")
def fitted():
    model = variant()
    model.fit(two_blobs(), epochs=3, batch_size=50, verbose=0)
    return model


def test_the_default_scores_minus_the_log_density_estimate(fitted):
    x = two_blobs(seed=1)[:50]
    out = fitted.predict(x, verbose=0)
    scaled = fitted.standardizer(x)
    d_logit = fitted.discriminator(scaled)["logit"].numpy()
    log_q = fitted.reference.log_q(scaled).numpy()
    np.testing.assert_allclose(out["normality"], d_logit + log_q, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["score"], -out["normality"], rtol=1e-6)
    # The threshold is the 99.5th percentile of the training rows' scores.
    train = fitted.predict(two_blobs(), verbose=0)
    assert np.sum(train["is_anomaly"]) == expected_flagged(400, 0.005)


def test_far_rows_and_rows_between_the_modes_score_above_the_data(fitted):
    normal = fitted.predict(two_blobs(seed=2)[:100], verbose=0)["score"]
    between = fitted.predict(np.zeros((5, 3), np.float32), verbose=0)["score"]
    far = fitted.predict(np.full((5, 3), 40.0, np.float32), verbose=0)["score"]
    assert between.min() > np.quantile(normal, 0.99) and far.min() > between.max()
    assert np.all(fitted.predict(np.zeros((5, 3), np.float32), verbose=0)["is_anomaly"])


def test_the_variant_trains_no_target_network_and_logs_its_nce_loss():
    model = variant()
    history = model.fit(two_blobs(), epochs=2, batch_size=50, verbose=0)
    assert not hasattr(model.reference, "target") and model.reference.trainer is None
    # q fits these blobs well, so D cannot tell the rows from q's samples: the NCE loss
    # stays near its chance value 2 log 2 (it would be 0 if no negatives were drawn).
    assert abs(history.history["d_nce"][-1] - 2 * np.log(2)) < 0.15
    # eps_T is now a quantile of log q (the BIC mixture) on the training rows.
    log_q = model.reference.log_q(model.standardizer(two_blobs())).numpy()
    assert float(model.reference.density_threshold.numpy()) == pytest.approx(
        np.quantile(log_q, model.config.density_quantile), rel=1e-4)


def test_save_and_load_keep_the_reference(tmp_path, fitted):
    path = str(tmp_path / "model.keras")
    fitted.save(path)
    loaded = keras.saving.load_model(path)
    x = two_blobs(seed=3)[:20]
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["score"],
                               fitted.predict(x, verbose=0)["score"], rtol=1e-5)


def test_reinitialize_refits_the_reference_like_a_fresh_model():
    x = two_blobs()
    model = variant(seed=1)
    model.fit(x[:200], epochs=1, batch_size=50, verbose=0)
    reinit.reinitialize_mmocgan(model, 3)
    model.fit(x, epochs=2, batch_size=50, verbose=0)
    fresh = variant(seed=3)
    fresh.fit(x, epochs=2, batch_size=50, verbose=0)
    for a, b in zip(model.reference.q.arrays, fresh.reference.q.arrays,
                    strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(x[:20], verbose=0)["normality"],
                               fresh.predict(x[:20], verbose=0)["normality"], rtol=1e-4, atol=1e-4)


def test_the_half_rule_needs_the_paper_variant():
    with pytest.raises(ConfigError, match="threshold_rule"):
        MMOCGAN(num_features=3, threshold_rule="half")
    MMOCGAN(num_features=3, threshold_rule="half", reference="none")


def test_the_benchmark_method_fits_q_on_the_rows_not_on_their_tiled_copies():
    from mmocgan_tf.evaluation.baselines import make_detector
    x = two_blobs(n=60)  # 2 steps per pass: the method tiles the rows into 64-step epochs
    method = make_detector("mmocgan", train_steps=64, model_options=TINY)
    method.fit(x, seed=0)
    model = variant(seed=0)
    model.prepare(x)
    for a, b in zip(method.model_.reference.q.arrays, model.reference.q.arrays,
                    strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_the_local_mixture_is_each_neighbourhoods_mean_and_covariance():
    x = two_blobs(n=300, seed=4).astype(np.float64)
    loc, tril = mixtures.fit_local_mixture(x, components=20, neighbours=30, seed=5)
    assert loc.shape == (20, 3) and tril.shape == (20, 3, 3)
    centre = x[np.random.default_rng(5).choice(len(x), 20, replace=False)[0]]
    nearest = x[np.argsort(np.square(x - centre).sum(axis=1))[:30]]
    np.testing.assert_allclose(loc[0], nearest.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(tril[0] @ tril[0].T,
                               np.cov(nearest.T) + mixtures.LOCAL_RIDGE * np.eye(3), atol=1e-9)


def test_a_local_reference_fills_its_slots_with_equal_weights():
    logits, loc, tril = mixtures.fit_local_arrays(two_blobs(n=100), broad_weight=0.1,
                                                   broad_scale=2.0)
    slots = mixtures.LOCAL_COMPONENTS + 1
    assert logits.shape == (slots,) and tril.shape == (slots, 3, 3)
    weights = np.exp(logits.astype(np.float64))
    np.testing.assert_allclose(weights[:100], 0.9 / 100, rtol=1e-5)  # 100 rows: 100 centres
    assert weights[100:-1].max() < 1e-30 and weights[-1] == pytest.approx(0.1)


def test_many_components_are_scored_in_chunks_and_sampled_row_by_row(monkeypatch):
    arrays = mixtures.fit_local_arrays(two_blobs(n=400), broad_weight=0.0, broad_scale=2.0)
    x = two_blobs(n=50, seed=6)
    whole = mixtures.log_prob(*arrays, x).numpy()
    monkeypatch.setattr(mixtures, "MAX_CHUNK_FLOATS", 16 * len(arrays[0]) * 3)  # 16 rows a chunk
    whitening = mixtures.whitening_arrays(*arrays)
    np.testing.assert_allclose(mixtures.log_prob_in_chunks(whitening, x).numpy(), whole,
                               rtol=1e-5)
    a = mixtures.sample(*arrays, 4000, tf.constant([1, 2], tf.int32)).numpy()
    logits, loc, _ = arrays
    assert np.mean(a[:, 0] > 0) == pytest.approx(np.exp(logits[loc[:, 0] > 0]).sum(), abs=0.03)
    np.testing.assert_allclose(np.abs(a[:, 0]).mean(), 4.0, atol=0.2)


def test_the_local_variant_has_a_local_q_and_keeps_the_modes_for_l_kl():
    x = two_blobs()
    model = variant(reference="local", reference_broad_weight=0.0)
    model.prepare(x)
    assert np.exp(model.reference.q.arrays[0].numpy()[-1]) == 0.0  # no broad component
    assert len(model.reference.q.arrays[0].numpy()) == mixtures.LOCAL_COMPONENTS + 1
    assert len(model.reference.modes.arrays[0].numpy()) == 3 + 1  # the BIC mixture of num_modes
    log_modes = mixtures.log_prob(*model.reference.modes.arrays, model.standardizer(x)).numpy()
    assert float(model.reference.density_threshold.numpy()) == pytest.approx(
        np.quantile(log_modes, model.config.density_quantile), rel=1e-4)
