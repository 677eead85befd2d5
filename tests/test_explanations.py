"""Tests for MMOCGAN.explain (model/explanations.py): per-feature attributions of the score.

Tiny networks fitted for one epoch on seeded sensor-fault data (data/synthetic.py), where
the truth is known: each anomaly's faulty features, which show only against the
correlations within the row's product type. benchmarks/explanations.py measures the same
at full size.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import TINY_MODEL

from mmocgan_tf import MMOCGAN
from mmocgan_tf.data.synthetic import make_sensor_faults
from mmocgan_tf.evaluation.metrics import hit_at_k
from mmocgan_tf.model import explanations

D = 14  # make_sensor_faults's default number of features


@pytest.fixture(scope="module")
def data():
    """900 normal rows of 3 types (TINY_MODEL's num_modes), 90 anomalies, seed 0."""
    return make_sensor_faults(n_normal=900, n_anomalies=90, num_types=3, seed=0)


def _fit(data, reference):
    keras.utils.set_random_seed(0)
    model = MMOCGAN(D, target_epochs=1, **dict(TINY_MODEL, reference=reference))
    model.compile(steps_per_execution=4)
    model.fit(data.x[data.y == 0], epochs=1, batch_size=50, verbose=0)
    return model


@pytest.fixture(scope="module")
def gmm_model(data):
    return _fit(data, "gmm")


@pytest.fixture(scope="module")
def local_model(data):
    return _fit(data, "local")


@pytest.fixture(scope="module")
def paper_model(data):
    return _fit(data, "none")


MODELS = {"gmm": "gmm_model", "local": "local_model", "none": "paper_model"}


@pytest.mark.parametrize("reference", ["gmm", "local"])
def test_shape_dtype_and_non_negative(request, data, reference):
    model = request.getfixturevalue(MODELS[reference])
    attributions = model.explain(data.x[:37])
    assert attributions.shape == (37, D) and attributions.dtype == np.float32
    assert np.isfinite(attributions).all() and (attributions >= 0).all()
    assert model.explain(data.x[:0]).shape == (0, D)


def test_names_the_faulty_features(gmm_model, data):
    """A loose floor below what seeded runs reach (docs/RESULTS.md#explanations)."""
    anomaly = data.y == 1
    assert hit_at_k(gmm_model.explain(data.x[anomaly]), data.faulty[anomaly]) > 0.75


def test_faults_are_not_marginal(gmm_model, data):
    """The global |z| finds the faulty features about as well as chance, so the hit@k
    above is not an extreme value's."""
    anomaly = data.y == 1
    normal = data.x[~anomaly]
    global_z = np.abs((data.x[anomaly] - normal.mean(axis=0)) / normal.std(axis=0))
    chance = np.mean(data.faulty[anomaly].sum(axis=1) / D)
    global_hit = hit_at_k(global_z, data.faulty[anomaly])
    assert abs(global_hit - chance) < 0.1
    assert hit_at_k(gmm_model.explain(data.x[anomaly]), data.faulty[anomaly]) > global_hit + 0.4


def _transplant(data):
    """(row_a, row_b, j): normal rows of types 0 and 1 and a feature j where row_a[j] lies
    within type 1's range of feature j but >= 20 noise widths from row_b[j]."""
    normal = data.y == 0
    rows_a = data.x[normal & (data.kind == 0)]
    rows_b = data.x[normal & (data.kind == 1)]
    row_b = rows_b[0]
    for j in range(D):
        low, high = np.quantile(rows_b[:, j], [0.05, 0.95])
        fits = ((rows_a[:, j] > low) & (rows_a[:, j] < high)
                & (np.abs(rows_a[:, j] - row_b[j]) > 20 * data.noise[j]))
        if fits.any():
            return rows_a[np.argmax(fits)], row_b, j
    raise AssertionError("no value of type 0 inside type 1's range")


def test_relative_to_the_rows_mode(gmm_model, data):
    """The same value of feature j: normal in its own type-0 row, a fault in a type-1 row
    (where it is inside type 1's range of j, but not what the other features predict).
    """
    row_a, row_b, j = _transplant(data)
    faulty_b = row_b.copy()
    faulty_b[j] = row_a[j]
    attributions = gmm_model.explain(np.stack([row_a, faulty_b, row_b]))
    assert attributions[0, j] < 4.5 and attributions[2, j] < 4.5  # |z| < 3
    assert attributions[1, j] > 50
    assert np.argmax(attributions[1]) == j


@pytest.mark.parametrize("reference", ["gmm", "none"])
def test_batch_invariance(request, data, reference):
    """A row's attributions are its own: whatever is explained with it, at any batch_size."""
    model = request.getfixturevalue(MODELS[reference])
    rows = data.x[:40]
    expected = model.explain(rows)

    def check(actual, wanted):  # float32 sums reassociate with the batch's shape
        np.testing.assert_allclose(actual, wanted, rtol=1e-4, atol=1e-5)

    check(model.explain(rows, batch_size=7), expected)
    check(model.explain(rows[::-1], batch_size=16)[::-1], expected)
    mixed = np.concatenate([data.x[500:530], rows[5:6], data.x[-3:]])
    check(model.explain(mixed, batch_size=9)[30], expected[5])
    check(model.explain(rows[5:6], batch_size=1)[0], expected[5])


def test_paper_variant_integrated_gradients_are_complete(paper_model, data):
    """Attributions sum to score(x) - score(training mean), up to the midpoint rule's error.

    D is piecewise linear (its kinks), so the error falls like 1 / steps; a wrong baseline
    or sign misses by about the differences themselves.
    """
    rows = np.concatenate([data.x[:60], data.x[data.y == 1][:20]])
    score = paper_model.predict(rows, verbose=0)["score"]
    mean = paper_model.standardizer.mean.numpy()[None]
    difference = score - paper_model.predict(mean, verbose=0)["score"][0]
    assert np.abs(difference).max() > 0.1  # something to attribute
    np.testing.assert_allclose(paper_model.explain(rows).sum(axis=1), difference, atol=0.02)
    scaled = paper_model.standardizer(rows)
    fine = explanations.integrated_gradients(
        lambda x: explanations.scaled_score(paper_model, x), scaled, tf.zeros_like(scaled),
        steps=1024)
    np.testing.assert_allclose(fine.numpy().sum(axis=1), difference, atol=5e-4)
    assert np.abs(paper_model.explain(mean)).max() < 1e-6  # nothing at the baseline


def test_refuses_an_unfitted_model(data):
    model = MMOCGAN(D, **TINY_MODEL)
    with pytest.raises(ValueError, match="not fitted"):
        model.explain(data.x[:5])
    model.compile()
    with pytest.raises(ValueError, match="not fitted"):
        model.explain(data.x[:5])


@pytest.mark.parametrize("shape", [(5, 13), (5, 15), (D,), (2, 3, D)])
def test_refuses_rows_of_the_wrong_width(gmm_model, shape):
    with pytest.raises(ValueError, match="expected rows of 14 features"):
        gmm_model.explain(np.zeros(shape, np.float32))


def test_refuses_a_batch_size_below_one(gmm_model, data):
    with pytest.raises(ValueError, match="batch_size"):
        gmm_model.explain(data.x[:5], batch_size=0)


@pytest.mark.parametrize("reference", ["gmm", "none"])
def test_saved_and_reloaded_model_gives_the_same_attributions(request, data, reference,
                                                                tmp_path):
    model = request.getfixturevalue(MODELS[reference])
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    rows = np.concatenate([data.x[:30], data.x[data.y == 1][:10]])
    np.testing.assert_allclose(loaded.explain(rows), model.explain(rows), rtol=1e-6, atol=1e-7)
