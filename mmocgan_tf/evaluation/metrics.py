"""Detection metrics; labels are used here only, never in training.

Conventions: y_true uses 1 = anomaly, 0 = normal; a higher score means more
anomalous. AUROC and AUPRC (average precision) rank by score with the anomaly
as the positive class. f1_normal takes the normal class as positive, which is
the F1 the paper reports; f1_anomaly is the usual anomaly-positive F1.

A metric that cannot be defined on the given rows (for example AUROC when only
one class is present, or the accuracy of a class with no rows) is None rather
than NaN, so results serialise to JSON as-is and nothing raises mid-report.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score


def detection_metrics(y_true, score, is_anomaly) -> dict[str, float | None]:
    """Scores a detector's output against labels.

    Args:
        y_true: int array [n], 1 = anomaly, 0 = normal.
        score: float array [n], higher = more anomalous.
        is_anomaly: bool array [n], the detector's thresholded decisions.

    Returns:
        Plain Python floats (or None where undefined): auroc, auprc,
        normal_accuracy (share of normal rows predicted normal),
        anomaly_accuracy (share of anomalies predicted anomaly), accuracy,
        f1_normal, f1_anomaly, n_normal, n_anomaly.

    Raises:
        ValueError: On empty or mismatched inputs, labels other than 0/1, or
            non-finite scores.
    """
    y = np.asarray(y_true).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    pred = np.asarray(is_anomaly).ravel()
    if not (y.size == s.size == pred.size) or y.size == 0:
        raise ValueError(
            f"y_true, score and is_anomaly need the same non-zero length, "
            f"got {y.size}, {s.size} and {pred.size}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must be 0 (normal) or 1 (anomaly), found {np.unique(y)[:5]}")
    if not np.isfinite(s).all():
        raise ValueError("score holds NaN or inf")
    if not np.isin(pred, (0, 1)).all():
        raise ValueError("is_anomaly must be boolean")
    y = y.astype(bool)
    pred = pred.astype(bool)
    normal, anomaly = ~y, y
    both = normal.any() and anomaly.any()

    def share(mask: np.ndarray, wanted: bool) -> float | None:
        return float(np.mean(pred[mask] == wanted)) if mask.any() else None

    def f1(positive: np.ndarray, predicted: np.ndarray) -> float | None:
        return float(f1_score(positive, predicted, zero_division=0.0)) if positive.any() else None

    return {
        "auroc": float(roc_auc_score(y, s)) if both else None,
        "auprc": float(average_precision_score(y, s)) if both else None,
        "normal_accuracy": share(normal, False),
        "anomaly_accuracy": share(anomaly, True),
        "accuracy": float(np.mean(pred == y)),
        "f1_normal": f1(normal, ~pred),
        "f1_anomaly": f1(anomaly, pred),
        "n_normal": float(normal.sum()),
        "n_anomaly": float(anomaly.sum()),
    }


def hit_at_k(attributions, faulty):
    """How often explanations name the faulty features: the mean over rows of the share of
    a row's k top-attributed features that are faulty, k its number of faulty features.

    Args:
      attributions: [n, d], higher = more to blame.
      faulty: bool [n, d], the truth; rows with no faulty feature are skipped.
    """
    shares = [truth[np.argsort(-row, kind="stable")[:truth.sum()]].mean()
              for row, truth in zip(np.asarray(attributions), np.asarray(faulty, bool),
                                    strict=True) if truth.any()]
    return float(np.mean(shares))
