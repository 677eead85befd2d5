"""MMOCGAN: the Keras model's mechanics on tiny shapes."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import TINY_MODEL, expected_flagged

from mmocgan_tf import MMOCGAN
from mmocgan_tf.evaluation import reinit

# The paper variant (reference="none"): these tests pin its mechanics; test_reference.py
# covers the default noise-contrastive variant.
TINY = dict(TINY_MODEL, target_epochs=2, reference="none")


def blobs(n=300, d=4, seed=0):
    """Three well-separated Gaussian modes with different raw scales per feature."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(3, d))
    x = centres[rng.integers(0, 3, n)] + rng.normal(0, 0.5, size=(n, d))
    return (x * np.arange(1, d + 1) * 10 + 100).astype("float32")


def tiny_model(prior="cat", **overrides):
    keras.utils.set_random_seed(overrides.get("seed", 0))
    model = MMOCGAN(num_features=4, prior=prior, **{**TINY, **overrides})
    model.compile(steps_per_execution=4)
    return model


@pytest.fixture(scope="module", params=["cat", "mix"])
def fitted(request):
    """A tiny model of each prior, fitted once for the tests that only read it."""
    model = tiny_model(request.param)
    model.fit(blobs(), epochs=2, batch_size=50, verbose=0)
    return model


def test_fit_then_predict_gives_finite_outputs_of_the_documented_shapes(fitted):
    out = fitted.predict(blobs()[:7], verbose=0)
    assert out["score"].shape == (7,) and out["mode_probs"].shape == (7, 3)
    assert np.all(np.isfinite(out["score"])) and np.all(np.isfinite(out["normality"]))
    assert np.all((out["score"] >= 0) & (out["score"] <= 1))
    np.testing.assert_allclose(out["mode_probs"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["mode"], out["mode_probs"].argmax(axis=1))
    np.testing.assert_allclose(out["score"], 1 / (1 + np.exp(out["normality"])), rtol=1e-5)


def test_standardisation_is_learned_from_the_training_data(fitted):
    scaled = fitted.standardizer(blobs()).numpy()
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-3)


def test_target_network_is_trained_then_frozen():
    x = blobs()
    model = tiny_model()
    initial = [w.numpy().copy() for w in model.reference.target.weights]
    model.prepare(x, batch_size=50)
    trained = [w.numpy().copy() for w in model.reference.target.weights]
    assert any(not np.allclose(a, b) for a, b in zip(initial, trained, strict=True))
    assert not model.reference.target.trainable_variables
    model.fit(x, epochs=2, batch_size=50, verbose=0)
    for before, after in zip(trained, model.reference.target.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    eps_logit = float(model.reference.density_threshold.numpy())
    # eps_T is the 0.5% quantile of log T(x) = log sigmoid(T's logit) on the training rows.
    log_t = tf.math.log_sigmoid(model.reference.target(model.standardizer(x))["logit"]).numpy()
    assert np.sum(log_t < eps_logit) == expected_flagged(len(x), 0.005)


def test_mixture_prior_gets_gradients_for_mu_and_sigma():
    model = tiny_model("mix")
    codes = tf.constant([0, 1, 2, 1])
    seed = tf.constant([1, 2], tf.int32)
    with tf.GradientTape() as tape:
        x_hat = model.generator(model.prior.sample(codes, seed))
        loss = tf.reduce_sum(tf.square(x_hat)) + model.prior.regularization()
    grads = tape.gradient(loss, [model.prior.mu, model.prior.sigma])
    assert all(g is not None and np.any(tf.convert_to_tensor(g).numpy() != 0) for g in grads)


def test_training_lowers_the_discriminator_and_mode_losses():
    x = blobs(n=600)
    model = tiny_model()
    first = model.fit(x, epochs=1, batch_size=50, verbose=0).history
    later = model.fit(x, epochs=15, batch_size=50, verbose=0).history
    assert later["d_loss"][-1] < first["d_loss"][0]
    assert later["q_real"][-1] < first["q_real"][0]
    assert all(np.isfinite(v[-1]) for v in later.values())


def test_a_zero_weight_switches_its_term_off():
    x = blobs()
    model = tiny_model(weight_d_entropy=0.0, weight_q_fake=0.0, weight_q_real=0.0)
    logs = model.fit(x, epochs=1, batch_size=50, verbose=0).history
    assert logs["d_loss"][0] == pytest.approx(logs["d_real_fake"][0], rel=1e-5)


def test_labels_are_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="normal rows only"):
        model.fit(blobs(), np.zeros(300), epochs=1)


def test_quantile_rule_flags_the_configured_share_of_training_rows_and_half_uses_d(fitted):
    x = blobs()
    assert fitted.predict(x, verbose=0)["is_anomaly"].sum() == expected_flagged(len(x), 0.005)
    fitted.set_threshold(x, quantile=0.9)
    assert fitted.predict(x, verbose=0)["is_anomaly"].sum() == expected_flagged(len(x), 0.1)
    fitted.set_threshold(x, rule="half")
    out = fitted.predict(x, verbose=0)
    np.testing.assert_array_equal(out["is_anomaly"], out["score"] > 0.5)
    fitted.set_threshold(x)


def test_keras_round_trip_keeps_weights_optimizers_threshold_and_preprocessing(fitted, tmp_path):
    x, model = blobs(), fitted
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for name in ("score", "normality", "is_anomaly", "mode_probs"):
        np.testing.assert_allclose(loaded.predict(x, verbose=0)[name],
                                   model.predict(x, verbose=0)[name], rtol=1e-6)
    for ours, theirs in ((model.d_optimizer, loaded.d_optimizer),
                         (model.g_optimizer, loaded.g_optimizer)):
        assert int(theirs.iterations.numpy()) == int(ours.iterations.numpy()) > 0
        for a, b in zip(ours.variables, theirs.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(loaded.normality_threshold.numpy()) == float(model.normality_threshold.numpy())
    np.testing.assert_array_equal(loaded.standardizer.mean.numpy(), model.standardizer.mean.numpy())
    # Training continues from the loaded state without re-running the target phase.
    target = [w.numpy().copy() for w in loaded.reference.target.weights]
    loaded.fit(x, epochs=1, batch_size=50, verbose=0)
    for before, after in zip(target, loaded.reference.target.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())


def test_reinitialize_gives_a_fresh_models_result_without_retracing():
    x = blobs(n=240, seed=1)
    reused = tiny_model(seed=0)
    reused.fit(blobs(n=300, seed=2), epochs=2, batch_size=50, verbose=0)
    train_function = reused.train_function
    reinit.reinitialize_mmocgan(reused, seed=3)
    reused.fit(x, epochs=2, batch_size=50, verbose=0)
    fresh = tiny_model(seed=3)
    fresh.fit(x, epochs=2, batch_size=50, verbose=0)
    assert reused.train_function is train_function
    np.testing.assert_allclose(reused.predict(x, verbose=0)["normality"],
                               fresh.predict(x, verbose=0)["normality"], atol=1e-5)
    assert float(reused.normality_threshold) == pytest.approx(
        float(fresh.normality_threshold), abs=1e-5)


@pytest.mark.parametrize("reference", ["gmm", "none"])
def test_evaluate_and_validation_data_report_the_terms_and_the_flagged_share(reference):
    """evaluate() reports every training term on the given rows and the share flagged at
    the current threshold; it changes no weight and not the training's noise stream."""
    x = blobs()
    model = tiny_model(reference=reference)
    history = model.fit(x[:200], epochs=2, batch_size=50, verbose=0, validation_data=x[200:])
    assert {"val_d_loss", "val_g_loss", "val_g_kl", "val_flagged"} <= set(history.history)
    before = [w.numpy().copy() for w in model.weights]
    generator_state = model.seed_generator.state.numpy().copy()
    logs = model.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    again = model.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert logs == again  # fixed seeds: evaluating twice gives the same figures
    flagged = np.mean(model.predict(x, verbose=0)["is_anomaly"])
    assert logs["flagged"] == pytest.approx(flagged)
    assert all(np.isfinite(v) for v in logs.values())
    for w, b in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(w.numpy(), b)
    np.testing.assert_array_equal(model.seed_generator.state.numpy(), generator_state)


def test_infer_threshold_flags_the_asked_share_of_held_out_normal_rows(fitted):
    held_out = blobs(n=1000, seed=5)
    trained = fitted.normality_threshold.numpy()
    fitted.infer_threshold(held_out, fpr=0.05)
    flagged = fitted.predict(held_out, verbose=0)["is_anomaly"].sum()
    fitted.normality_threshold.assign(trained)  # the fixture is shared
    assert flagged == expected_flagged(len(held_out), 0.05)
    with pytest.raises(ValueError, match="fpr"):
        fitted.infer_threshold(held_out, fpr=1.0)


def test_predict_refuses_an_unfitted_model_and_rows_of_the_wrong_width(fitted):
    with pytest.raises(ValueError, match="not fitted yet"):
        tiny_model().predict(blobs()[:5], verbose=0)
    with pytest.raises(ValueError, match=r"expected rows of 4 features .*shape \(5, 3\)"):
        fitted.predict(blobs()[:5, :3], verbose=0)
    with pytest.raises(ValueError, match="expected rows of 4 features"):
        tiny_model().fit(blobs()[:, :3], verbose=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        tiny_model().fit(blobs(), batch_size=0, verbose=0)
    empty = fitted.predict(np.zeros((0, 4), np.float32), verbose=0)
    assert empty["score"].shape == (0,) and empty["mode_probs"].shape == (0, 3)


def test_weights_that_leave_a_network_nothing_to_learn_are_refused():
    d_off = dict(weight_complement=0, weight_nce=0, weight_d_entropy=0, weight_q_fake=0,
                 weight_q_real=0)
    with pytest.raises(ValueError, match="D would have no loss term"):
        tiny_model(**d_off)
    g_off = dict(weight_fm=0, weight_pt=0, weight_kl=0, weight_mi=0)
    with pytest.raises(ValueError, match="G would have no loss term"):
        tiny_model(**g_off)
