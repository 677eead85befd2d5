"""Tests for mmocgan_tf.data.synthetic: shapes, seeding, and that the data tells its story."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from mmocgan_tf.data.synthetic import make_production_line, make_sensor_faults
from mmocgan_tf.evaluation.metrics import hit_at_k


def test_shapes_dtypes_and_counts():
    x, y = make_production_line(n_normal=500, n_anomalies=20, num_modes=3, num_features=7, seed=0)
    assert x.shape == (520, 7) and x.dtype == np.float32
    assert y.shape == (520,) and y.dtype == np.int32
    assert int(y.sum()) == 20 and set(np.unique(y)) == {0, 1}
    assert np.isfinite(x).all()


def test_defaults():
    x, y = make_production_line()
    assert x.shape == (3060, 12) and int(y.sum()) == 60


def test_rows_are_shuffled():
    _, y = make_production_line(n_normal=300, n_anomalies=30, seed=0)
    assert 0 < np.flatnonzero(y)[0] and np.flatnonzero(y)[-1] < len(y) - 1
    assert not np.array_equal(y, np.sort(y))


def test_same_seed_same_arrays_other_seed_differs():
    a = make_production_line(n_normal=400, n_anomalies=10, seed=7)
    b = make_production_line(n_normal=400, n_anomalies=10, seed=7)
    c = make_production_line(n_normal=400, n_anomalies=10, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_anomalies_stay_inside_the_normal_range():
    x, y = make_production_line(seed=1)
    normal, anomaly = x[y == 0], x[y == 1]
    assert (anomaly >= normal.min(axis=0)).all() and (anomaly <= normal.max(axis=0)).all()


def test_no_anomalies_allowed():
    x, y = make_production_line(n_normal=100, n_anomalies=0, seed=0)
    assert x.shape == (100, 12) and y.sum() == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"num_features": 2}, {"num_modes": 0}, {"n_normal": 2, "num_modes": 3}, {"n_anomalies": -1}],
)
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        make_production_line(**kwargs)


@pytest.mark.parametrize("seed", [0, 1])
def test_local_density_beats_global_distance(seed):
    """Measured over seeds 0-4: BIC-GMM AUROC 0.92-0.96, 5-NN distance 0.52-0.69 (here n=1500).

    The loose bounds only catch a generator that stopped being multimodal with
    local anomalies, not small shifts.
    """
    x, y = make_production_line(n_normal=1500, seed=seed)
    normal = np.random.default_rng(0).permutation(np.flatnonzero(y == 0))
    train, held = normal[:1200], np.r_[normal[1200:], np.flatnonzero(y == 1)]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x_train, x_eval = (x[train] - mean) / std, (x[held] - mean) / std
    with threadpool_limits(1):  # BLAS threads oversubscribe small fits and slow them 10x
        fits = [
            GaussianMixture(k, covariance_type="full", random_state=0).fit(x_train)
            for k in range(1, 11)
        ]
    gmm = min(fits, key=lambda model: model.bic(x_train))
    gmm_auroc = roc_auc_score(y[held], -gmm.score_samples(x_eval))
    distances, _ = NearestNeighbors(n_neighbors=5).fit(x_train).kneighbors(x_eval)
    knn_auroc = roc_auc_score(y[held], distances.mean(axis=1))
    assert gmm_auroc > 0.85
    assert knn_auroc < 0.8
    assert gmm_auroc - knn_auroc > 0.15


# === make_sensor_faults ===


def _conditional_z(data):
    """|conditional z-score| [n, d] of every row in the Gaussian of its own type's normal rows."""
    z = np.zeros(data.x.shape)
    for kind in np.unique(data.kind):
        rows = data.kind == kind
        normal = data.x[rows & (data.y == 0)].astype(np.float64)
        precision = np.linalg.inv(np.cov(normal, rowvar=False))
        z[rows] = (data.x[rows] - normal.mean(axis=0)) @ precision / np.sqrt(
            np.diag(precision))
    return np.abs(z)


def test_sensor_faults_shapes_dtypes_and_counts():
    data = make_sensor_faults(n_normal=400, n_anomalies=30, num_types=3, num_features=9,
                              rank=2, seed=0)
    assert data.x.shape == (430, 9) and data.x.dtype == np.float32
    assert data.y.shape == (430,) and data.y.dtype == np.int32 and int(data.y.sum()) == 30
    assert data.faulty.shape == (430, 9) and data.faulty.dtype == bool
    assert data.kind.shape == (430,) and data.kind.dtype == np.int32
    assert set(np.unique(data.kind)) == {0, 1, 2}
    assert data.noise.shape == (9,) and (data.noise > 0).all()
    assert np.isfinite(data.x).all()


def test_sensor_faults_defaults():
    data = make_sensor_faults()
    assert data.x.shape == (3150, 14) and int(data.y.sum()) == 150
    assert len(np.unique(data.kind)) == 4


def test_sensor_faults_mark_one_to_three_features_of_anomalies_only():
    data = make_sensor_faults(seed=2)
    counts = data.faulty.sum(axis=1)
    assert (counts[data.y == 0] == 0).all()
    assert set(np.unique(counts[data.y == 1])) == {1, 2, 3}
    assert 0 < np.flatnonzero(data.y)[0] and not np.array_equal(data.y, np.sort(data.y))


def test_sensor_faults_same_seed_same_arrays_other_seed_differs():
    a, b = make_sensor_faults(seed=5), make_sensor_faults(seed=5)
    for field in ("x", "y", "faulty", "kind", "noise"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x, make_sensor_faults(seed=6).x)


def test_sensor_faults_stay_inside_each_features_normal_range():
    data = make_sensor_faults(n_anomalies=600, seed=1)
    normal, anomaly = data.x[data.y == 0], data.x[data.y == 1]
    assert (anomaly > normal.min(axis=0)).all() and (anomaly < normal.max(axis=0)).all()


def test_sensor_faults_are_off_the_types_manifold_and_only_there():
    """z is the conditional z-score in the row's own type's Gaussian. Fails if the mask marks
    the wrong features (median ~0.8) or the faults were not shifted.
    """
    data = make_sensor_faults(n_anomalies=600, seed=0)
    z = _conditional_z(data)
    anomaly = data.y == 1
    assert np.median(z[data.faulty]) > 3.0
    assert np.median(z[anomaly][~data.faulty[anomaly]]) < 1.2
    assert np.quantile(z[~anomaly], 0.99) < 3.0


@pytest.mark.parametrize("seed", [0, 1])
def test_sensor_faults_show_against_the_type_not_globally(seed):
    """The global |z| finds the faulty features as often as chance; the row's own type's
    conditional |z| does far better."""
    data = make_sensor_faults(n_anomalies=600, seed=seed)
    anomaly = data.y == 1
    normal = data.x[~anomaly]
    global_z = np.abs((data.x[anomaly] - normal.mean(axis=0)) / normal.std(axis=0))
    chance = np.mean(data.faulty[anomaly].sum(axis=1) / data.x.shape[1])
    assert abs(hit_at_k(global_z, data.faulty[anomaly]) - chance) < 0.05
    assert hit_at_k(_conditional_z(data)[anomaly], data.faulty[anomaly]) > 0.7


def test_sensor_faults_types_overlap_in_every_feature():
    """Each feature's value ranges of two of the types overlap: no one gauge names the type."""
    data = make_sensor_faults(seed=0)
    normal = data.y == 0
    for j in range(data.x.shape[1]):
        ranges = [(data.x[normal & (data.kind == t), j].min(),
                   data.x[normal & (data.kind == t), j].max()) for t in range(4)]
        assert any(lo_a < hi_b and lo_b < hi_a
                   for i, (lo_a, hi_a) in enumerate(ranges) for lo_b, hi_b in ranges[i + 1:])


@pytest.mark.parametrize(
    "kwargs",
    [{"num_features": 6, "rank": 3}, {"rank": 0}, {"num_types": 0},
     {"n_normal": 2, "num_types": 3}, {"n_anomalies": -1}],
)
def test_sensor_faults_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        make_sensor_faults(**kwargs)


def test_sensor_faults_without_anomalies():
    data = make_sensor_faults(n_normal=200, n_anomalies=0, seed=0)
    assert data.x.shape == (200, 14) and data.y.sum() == 0 and not data.faulty.any()
