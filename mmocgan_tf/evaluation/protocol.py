"""The paper's k-fold protocol, for any detector of mmocgan_tf.evaluation.baselines.

The normal rows are split into k folds (seeded). Each fold's detector trains on the other
k - 1 normal folds and is tested on the held-out normal fold plus every anomaly; the
standardisation is fitted on the training part only. Anomaly labels are used only to
score the results. Scores are Detector.anomaly_score (higher = more anomalous). Every
detector is judged by the quantile rule (an anomaly scores above the 99.5th percentile of
the training rows' scores); GAN detectors also by D(x) < 0.5.
"""

import dataclasses
import time

import numpy as np
from sklearn.preprocessing import StandardScaler

from mmocgan_tf.evaluation.metrics import detection_metrics

RULE_METRICS = ("normal_accuracy", "anomaly_accuracy", "accuracy", "f1_normal", "f1_anomaly")
RANKING_METRICS = ("auroc", "auprc")
TIMES = ("fit_s", "score_s")
# Columns of one result row (one method, seed and fold); half_* only for GAN detectors.
COLUMNS = ("dataset", "method", "seed", "fold", *RANKING_METRICS, *RULE_METRICS,
           *(f"half_{m}" for m in RULE_METRICS), *TIMES, "n_train", "n_test_normal",
           "n_test_anomaly", "error")


class ProtocolError(ValueError):
    """The data cannot go through the protocol (e.g. fewer normal rows than folds)."""


@dataclasses.dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # row indices, normal rows only
    test: np.ndarray  # the held-out normal rows and every anomaly


def normal_folds(y, folds=5, seed=0):
    """The protocol's folds over the normal rows (y == 0); anomalies go to every test set."""
    if folds < 2:
        raise ProtocolError(f"folds must be >= 2, got {folds}")
    normal, anomalies = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    if normal.size < folds:
        raise ProtocolError(f"only {normal.size} normal rows, fewer than {folds} folds")
    parts = np.array_split(np.random.default_rng(seed).permutation(normal), folds)
    return [Fold(i, np.sort(np.concatenate(parts[:i] + parts[i + 1:])),
                 np.sort(np.concatenate([parts[i], anomalies])))
            for i in range(folds)]


def fit_seed(seed, fold):
    """The detector's seed for one fold of one run seed (distinct for every pair)."""
    return 1000 * int(seed) + int(fold)


def run_fold(detector, x, y, fold, seed=0, quantile=0.995):
    """Trains and tests one detector on one fold; returns (row, test scores).

    A detector whose scores are not finite gets a row with its error and no metrics,
    so one diverged fit does not end a long benchmark.
    """
    x_train, x_test = standardized(x, fold)
    y_test = y[fold.test]
    row = dict(method=detector.name, seed=int(seed), fold=fold.index,
               n_train=len(fold.train), n_test_normal=int(np.sum(y_test == 0)),
               n_test_anomaly=int(np.sum(y_test == 1)))
    start = time.perf_counter()
    detector.fit(x_train, seed=fit_seed(seed, fold.index))
    row["fit_s"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = np.asarray(detector.anomaly_score(x_test), np.float64)
    row["score_s"] = time.perf_counter() - start
    train_scores = np.asarray(detector.training_scores(x_train), np.float64)
    if not (np.isfinite(scores).all() and np.isfinite(train_scores).all()):
        row["error"] = "scores are not finite (the fit diverged)"
        return row, None
    threshold = np.quantile(train_scores, quantile)
    quantile_rule = detection_metrics(y_test, scores, scores > threshold)
    row.update({m: quantile_rule[m] for m in (*RANKING_METRICS, *RULE_METRICS)})
    if detector.is_gan:  # score = 1 - D(x), so D(x) < 0.5 is score > 0.5
        half_rule = detection_metrics(y_test, scores, scores > 0.5)
        row.update({f"half_{m}": half_rule[m] for m in RULE_METRICS})
    note = getattr(detector, "orientation_note", None)
    if note:
        row["error"] = note
    return row, scores


def summarize(rows):
    """Mean and std over folds (and seeds) of every metric, per dataset and method.

    Returns {(dataset, method): {column: (mean, std, count)}} with undefined metrics
    (None) left out of the means.
    """
    groups = {}
    for row in rows:
        groups.setdefault((row.get("dataset", ""), row["method"]), []).append(row)
    summary = {}
    for key, group in groups.items():
        stats = {}
        for column in (*RANKING_METRICS, *RULE_METRICS,
                       *(f"half_{m}" for m in RULE_METRICS), *TIMES):
            values = [r[column] for r in group if r.get(column) is not None]
            if values:
                stats[column] = (float(np.mean(values)), float(np.std(values)), len(values))
        summary[key] = stats
    return summary


def average_ranks(summary, datasets, methods, metric="auroc"):
    """Mean rank of each method over the datasets where every method has `metric`.

    Rank 1 is best (highest metric); ties share their average rank. Returns
    ({method: rank}, [datasets used]).
    """
    used, ranks = [], {m: [] for m in methods}
    for dataset in datasets:
        values = [summary.get((dataset, m), {}).get(metric) for m in methods]
        if any(v is None for v in values):
            continue
        used.append(dataset)
        means = np.array([v[0] for v in values])
        for method, rank in zip(methods, _tied_ranks(-means), strict=True):
            ranks[method].append(rank)
    return {m: float(np.mean(r)) if r else None for m, r in ranks.items()}, used


def _tied_ranks(values):
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def iter_runs(dataset, x, y, detectors, folds, seeds=(0,), done=()):
    """Runs every detector on every seed and fold not already in `done`.

    Yields (row, test scores or None, detector, fold). A detector runs all its folds in a
    row, so deep ones trace once. An exception in one fit becomes that row's error (one
    line), so a long benchmark goes on; done holds (dataset, method, seed, fold) keys.
    """
    for detector in detectors:
        for seed in seeds:
            for fold in folds:
                if (dataset, detector.name, int(seed), fold.index) in done:
                    continue
                try:
                    row, scores = run_fold(detector, x, y, fold, seed)
                except Exception as err:  # noqa: BLE001 - recorded, the run goes on
                    message = " ".join(f"{type(err).__name__}: {err}".split())[:300]
                    row, scores = dict(method=detector.name, seed=int(seed),
                                       fold=fold.index, error=message), None
                yield {"dataset": dataset, **row}, scores, detector, fold


def standardized(x, fold):
    """The fold's training and test rows as the detectors see them."""
    scaler = StandardScaler().fit(x[fold.train])
    return (scaler.transform(x[fold.train]).astype(np.float32),
            scaler.transform(x[fold.test]).astype(np.float32))
