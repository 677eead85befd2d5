"""pyod:NAME detectors: PyOD's scores, its training scores, one-line errors, GAAL orientation."""

import importlib.util

import numpy as np
import pytest
from tiny import blobs, far_rows

from mmocgan_tf.evaluation.baselines import make_detector, pyod_adapter
from mmocgan_tf.evaluation.baselines.pyod_adapter import PyODDetector

pytest.importorskip("pyod")  # the adapter imports PyOD only when a detector is made

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.parametrize("name", ["KNN", "IForest", "ECOD"])
def test_far_rows_score_above_training_rows(name):
    x = blobs(200)
    detector = PyODDetector(name).fit(x, seed=3)
    train, far = detector.training_scores(x), detector.anomaly_score(far_rows(20))
    assert detector.name == f"pyod:{name}" and not detector.is_gan
    assert train.shape == (200,) and far.shape == (20,)
    assert np.isfinite(train).all() and np.isfinite(far).all()
    assert far.min() > np.median(train)
    assert detector.orientation_note is None  # only the GAAL detectors are probed


def test_knn_training_scores_leave_each_row_out():
    x = blobs(200)
    detector = PyODDetector("KNN").fit(x)
    loo = detector.training_scores(x)
    np.testing.assert_array_equal(loo, detector.detector_.decision_scores_)
    # decision_function would count each training row as its own neighbour: lower scores.
    assert np.all(detector.anomaly_score(x) <= loo + 1e-12)
    assert np.mean(detector.anomaly_score(x) < loo) > 0.9
    other = blobs(50, seed=9)  # rows other than the training rows: decision_function
    np.testing.assert_array_equal(detector.training_scores(other), detector.anomaly_score(other))


def test_random_state_is_the_fit_seed():
    x = blobs(200)
    a = PyODDetector("IForest").fit(x, seed=1).anomaly_score(x[:20])
    b = PyODDetector("IForest").fit(x, seed=1).anomaly_score(x[:20])
    c = PyODDetector("IForest").fit(x, seed=2).anomaly_score(x[:20])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_registry_and_one_line_errors():
    assert make_detector("pyod:KNN").name == "pyod:KNN"
    with pytest.raises(ValueError, match=r"unknown PyOD detector 'NoSuchDetector'; known: .*KNN"
                       ) as info:
        PyODDetector("NoSuchDetector")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"pyod:KNN has no option\(s\) \['bogus'\]"):
        PyODDetector("KNN", contamination=0.1, bogus=1)


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed")
@pytest.mark.parametrize("name", ["LUNAR", "SO_GAAL"])
def test_torch_detectors_say_they_need_torch(name, capsys):
    with pytest.raises(ValueError) as info:
        PyODDetector(name)
    assert str(info.value) == f"pyod:{name} needs torch; pip install torch"
    assert capsys.readouterr().out == ""  # LUNAR's own print is swallowed


def test_missing_pyod_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyod" else real(name, *a))
    with pytest.raises(ValueError, match=r"^pyod:KNN needs PyOD; pip install 'mmocgan-tf\[bench"):
        PyODDetector("KNN")


class FakeGAAL:
    """A PyOD-like detector scoring D(x) = P(normal): higher for rows near the data."""

    def __init__(self, contamination=0.1):
        self.contamination = contamination

    def fit(self, x):
        self.center_ = x.mean(axis=0)
        self.decision_scores_ = self.decision_function(x)
        return self

    def decision_function(self, x):
        return np.exp(-0.1 * np.linalg.norm(x - self.center_, axis=1))


def test_probe_rank_separates_both_orientations():
    x = blobs(200)
    center = x.mean(axis=0)
    distance = lambda rows: np.linalg.norm(rows - center, axis=1)
    assert pyod_adapter.probe_rank(distance, x, distance(x)) == 1.0
    assert pyod_adapter.probe_rank(lambda r: -distance(r), x, -distance(x)) == 0.0
    assert pyod_adapter.orientation_note("pyod:X", 1.0) is None


def test_gaal_reversed_scores_are_reported_not_flipped(monkeypatch):
    fake = type("SO_GAAL", (FakeGAAL,), {})  # PyOD's class name decides the default check
    monkeypatch.setattr(pyod_adapter, "resolve", lambda name: fake)
    x = blobs(200)
    detector = PyODDetector("SO_GAAL").fit(x)
    assert detector.orientation_rank_ < 0.25
    assert detector.orientation_note.startswith("pyod:SO_GAAL scores look reversed")
    assert "\n" not in detector.orientation_note
    far = far_rows(20)
    np.testing.assert_array_equal(detector.anomaly_score(far),
                                  detector.detector_.decision_function(far))
    assert detector.anomaly_score(far).max() < np.median(detector.training_scores(x))
