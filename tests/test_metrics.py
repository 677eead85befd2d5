"""Tests for mmocgan_tf.evaluation.metrics: golden values on tiny hand-made inputs."""

import json

import numpy as np
import pytest

from mmocgan_tf.evaluation.metrics import detection_metrics

KEYS = {
    "auroc", "auprc", "normal_accuracy", "anomaly_accuracy", "accuracy",
    "f1_normal", "f1_anomaly", "n_normal", "n_anomaly",
}


def test_perfect_detector():
    y = [0, 0, 0, 1, 1]
    m = detection_metrics(y, [0.1, 0.2, 0.3, 0.8, 0.9], [False, False, False, True, True])
    assert set(m) == KEYS
    assert all(type(v) is float for v in m.values())
    assert m == {
        "auroc": 1.0, "auprc": 1.0, "normal_accuracy": 1.0, "anomaly_accuracy": 1.0,
        "accuracy": 1.0, "f1_normal": 1.0, "f1_anomaly": 1.0, "n_normal": 3.0, "n_anomaly": 2.0,
    }


def test_inverted_detector():
    y = np.array([0, 0, 1, 1])
    m = detection_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False]))
    assert m["auroc"] == 0.0
    assert m["auprc"] == pytest.approx((1 / 3 + 2 / 4) / 2)  # anomalies ranked 3rd and 4th
    assert m["normal_accuracy"] == 0.0 and m["anomaly_accuracy"] == 0.0 and m["accuracy"] == 0.0
    assert m["f1_normal"] == 0.0 and m["f1_anomaly"] == 0.0


def test_mixed_hand_computed():
    # normals: scores 0.1 0.4 0.35 0.8, flagged F F T F; anomalies: 0.3 0.9, flagged F T
    y = [0, 0, 0, 0, 1, 1]
    score = [0.1, 0.4, 0.35, 0.8, 0.3, 0.9]
    flags = [False, False, True, False, False, True]
    m = detection_metrics(y, score, flags)
    assert m["auroc"] == pytest.approx(5 / 8)  # pairs (anomaly > normal): 1 + 4 of 8
    assert m["auprc"] == pytest.approx((1 + 2 / 5) / 2)  # ranks 1 and 5
    assert m["normal_accuracy"] == pytest.approx(3 / 4)
    assert m["anomaly_accuracy"] == pytest.approx(1 / 2)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # normal positive: tp=3 (predicted normal and normal), fp=1, fn=1 -> 2*3 / (2*3 + 2)
    assert m["f1_normal"] == pytest.approx(6 / 8)
    # anomaly positive: tp=1, fp=1, fn=1 -> 2 / 4
    assert m["f1_anomaly"] == pytest.approx(0.5)
    assert (m["n_normal"], m["n_anomaly"]) == (4.0, 2.0)


def test_only_normal_rows_gives_none_not_nan():
    m = detection_metrics([0, 0, 0], [0.1, 0.5, 0.2], [False, True, False])
    assert m["auroc"] is None and m["auprc"] is None
    assert m["anomaly_accuracy"] is None and m["f1_anomaly"] is None
    assert m["normal_accuracy"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(2 / 3)
    assert m["f1_normal"] == pytest.approx(0.8)  # tp=2, fn=1, fp=0
    assert m["n_anomaly"] == 0.0
    json.dumps(m, allow_nan=False)  # serialisable without NaN


def test_only_anomalies():
    m = detection_metrics([1, 1], [0.3, 0.7], [True, False])
    assert m["auroc"] is None and m["auprc"] is None
    assert m["normal_accuracy"] is None and m["f1_normal"] is None
    assert m["anomaly_accuracy"] == 0.5 and m["f1_anomaly"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "y, score, flags",
    [
        ([0, 1], [0.1], [False, True]),
        ([], [], []),
        ([0, 2], [0.1, 0.2], [False, True]),
        ([0, 1], [0.1, float("nan")], [False, True]),
        ([0, 1], [0.1, 0.2], [0, 3]),
    ],
)
def test_bad_inputs_raise(y, score, flags):
    with pytest.raises(ValueError):
        detection_metrics(y, score, flags)
