"""Figure 2, ROC and precision-recall curves: how test scores separate the two classes.

Scores are higher = more anomalous (Detector.anomaly_score); labels 1 = anomaly,
0 = normal. Methods score on different scales, so each panel picks its own bins and
score axis.
"""

import logging
import math

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from mmocgan_tf.evaluation.plots.drawing import palette, save_figure

log = logging.getLogger(__name__)


def figure2_score_histograms(score_normal, score_anomaly, path, title, bins=None,
                             log_scale=None, threshold=None, threshold_label="threshold"):
    """Figure 2: overlaid histograms of the test scores of normal and anomalous rows.

    The overlap of the two distributions is what a threshold has to cut through: little
    overlap means any reasonable threshold separates them. Both use the same bins and are
    density-normalised so classes of very different sizes compare. log_scale: None picks
    a log (or symmetric-log) score axis when a few extreme scores would squash the rest
    into one bin (score_scale); True or False forces it. bins: None picks 2 sqrt(rows),
    10 to 50. threshold: a decision threshold on the score, drawn as a vertical line.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    _histogram_panel(ax, score_normal, score_anomaly, title, bins, log_scale,
                     threshold, threshold_label)
    return save_figure(fig, path)


def figure2_score_histogram_grid(scores_by_method, y_test, path, bins=None, log_scale=None):
    """Figure 2 for many methods: one panel of normal vs anomaly test scores per method.

    Each panel is figure2_score_histograms for one method (its own bins and score axis,
    since methods score on different scales); the grid lets the separations be compared.
    """
    y = _labels(y_test)
    names = list(scores_by_method)
    if not names:
        raise ValueError("no methods to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        score = np.asarray(scores_by_method[name], dtype=np.float64).ravel()
        _histogram_panel(ax, score[~y], score[y], name, bins, log_scale)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    fig.suptitle("Test score distributions: normal vs anomalous rows")
    fig.tight_layout()
    return save_figure(fig, path)


def roc_curves(y_test, scores_by_method, path, title=None, thresholds=None):
    """ROC curves of every method on the test rows, AUROC in the legend (best first).

    The threshold-free comparison of the detectors. Returns None and writes nothing when
    y_test holds one class only, where ROC is undefined (the reason is logged). A method
    whose scores hold NaN is left out of the plot and named in a note. title: what the
    rows are (default "the test rows"); thresholds: {method: score threshold}, each
    marked on its curve where the detector operates.
    """
    return _curves("roc", y_test, scores_by_method, path, title, thresholds)


def pr_curves(y_test, scores_by_method, path, title=None, thresholds=None):
    """Precision-recall curves of every method, AUPRC (average precision) in the legend.

    With few anomalies, ROC looks good even when most flagged rows are false alarms;
    precision shows that share directly. The dashed line is a detector that flags at
    random (precision = the share of anomalies). Arguments and skips as roc_curves.
    """
    return _curves("pr", y_test, scores_by_method, path, title, thresholds)


def _curves(kind, y_test, scores_by_method, path, title, thresholds):
    """Draws ROC (kind "roc") or precision-recall ("pr") curves, best area first."""
    y = _labels(y_test)
    name = "roc_curves" if kind == "roc" else "pr_curves"
    if y.all() or not y.any():
        log.warning("%s: skipped, y_test holds only %s rows", name,
                    "anomalous" if y.all() else "normal")
        return None
    thresholds = thresholds or {}
    curves, skipped = [], []
    for method, score in scores_by_method.items():
        score = _rankable(score)
        if score is None:
            skipped.append(method)
            continue
        if kind == "roc":
            fpr, tpr, _ = roc_curve(y, score)
            curves.append((roc_auc_score(y, score), method, fpr, tpr, score))
        else:
            precision, recall, _ = precision_recall_curve(y, score)
            curves.append((average_precision_score(y, score), method, recall, precision,
                           score))
    curves.sort(key=lambda c: -c[0])
    area = "AUROC" if kind == "roc" else "AUPRC"
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for (value, method, xs, ys, score), color in zip(curves, palette(len(curves)),
                                                      strict=True):
        ax.plot(xs, ys, color=color, lw=1.4,
                drawstyle="default" if kind == "roc" else "steps-post",
                label=f"{method} ({area} {value:.3f})")
        if method in thresholds:
            _mark_operating_point(ax, kind, y, score, thresholds[method], color)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="lightgray", ls="--", lw=1, label="chance (0.500)")
        ax.set_xlabel("false positive rate (normal rows flagged)")
        ax.set_ylabel("true positive rate (anomalies flagged)")
    else:
        share = float(y.mean())
        ax.axhline(share, color="lightgray", ls="--", lw=1, label=f"chance ({share:.3f})")
        ax.set_xlabel("recall (share of anomalies flagged)")
        ax.set_ylabel("precision (share of flagged rows that are anomalies)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    shown = "ROC" if kind == "roc" else "Precision-recall"
    text = (f"{shown} on {title or 'the test rows'} "
            f"({int((~y).sum())} normal, {int(y.sum())} anomalous)")
    if skipped:
        text += "\nleft out, NaN scores: " + ", ".join(skipped)
    ax.set_title(text, fontsize="medium")
    inside = len(curves) <= 8
    corner = "lower right" if kind == "roc" else "best"
    ax.legend(loc=corner if inside else "center left",
              bbox_to_anchor=None if inside else (1.02, 0.5), fontsize="small")
    return save_figure(fig, path)


def _mark_operating_point(ax, kind, y, score, threshold, color):
    """The point of the curve where rows scoring above threshold are flagged."""
    flagged = score > threshold
    if kind == "roc":
        x, v = flagged[~y].mean(), flagged[y].mean()
        label = f"threshold (FPR {x:.3f}, TPR {v:.3f})"
    elif flagged.any():
        x, v = flagged[y].mean(), y[flagged].mean()
        label = f"threshold (recall {x:.3f}, precision {v:.3f})"
    else:
        return  # nothing flagged: no precision to mark
    ax.plot([x], [v], marker="o", ms=7, color=color, mec="black", ls="none", zorder=4,
            label=label)


def score_scale(values, log_scale=None):
    """The score axis a histogram of these scores needs.

    Auto (log_scale None): a non-linear axis when the full range is over 20 times the
    interquartile range, i.e. a few extreme scores would squeeze the bulk of the rows into
    a few linear bins (normal or exponential samples stay well below that). 'log' when
    every score is positive, else 'symlog'.

    Args:
      values: float array of scores (non-finite ones are ignored).
      log_scale: None (decide from the scores), True (non-linear) or False (linear).

    Returns:
      'linear', 'log' or 'symlog'.
    """
    values = values[np.isfinite(values)]
    if log_scale is False or values.size < 2:
        return "linear"
    lo, hi = values.min(), values.max()
    if log_scale is None:
        q25, q75 = np.percentile(values, [25, 75])
        if hi == lo or (hi - lo) <= 20 * (q75 - q25):
            return "linear"
    return "log" if lo > 0 else "symlog"


def _labels(y_test):
    y = np.asarray(y_test).ravel()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_test must be 0 (normal) or 1 (anomaly)")
    return y.astype(bool)


def _rankable(score):
    """Scores as finite float64 in the same order (inf clipped past the range); None if NaN."""
    score = np.asarray(score, dtype=np.float64).ravel()
    if np.isnan(score).any():
        return None
    finite = score[np.isfinite(score)]
    if finite.size == score.size:
        return score
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    margin = max(1.0, hi - lo)
    return np.where(score == np.inf, hi + margin, np.where(score == -np.inf, lo - margin, score))


def _histogram_panel(ax, score_normal, score_anomaly, title, bins, log_scale, threshold=None,
                     threshold_label="threshold"):
    """Draws the two density histograms on ax, on shared bins equal-width on the shown axis."""
    groups = [("normal", np.asarray(score_normal, np.float64).ravel(), "tab:blue"),
              ("anomaly", np.asarray(score_anomaly, np.float64).ravel(), "tab:red")]
    finite = [(label, s[np.isfinite(s)], color, s.size - np.isfinite(s).sum())
              for label, s, color in groups]
    pooled = np.concatenate([s for _, s, _, _ in finite])
    ax.set_title(title, fontsize="medium")
    if pooled.size == 0:
        ax.text(0.5, 0.5, "no finite scores", ha="center", va="center", transform=ax.transAxes)
        return
    scale = score_scale(pooled, log_scale)
    lo, hi = pooled.min(), pooled.max()
    if scale == "log":
        to_axis, from_axis = np.log10, lambda u: 10.0 ** u
        ylabel = "density per decade"
    elif scale == "symlog":
        linthresh = max(np.percentile(np.abs(pooled), 5), np.abs(pooled).max() * 1e-6, 1e-300)
        to_axis = lambda x: np.arcsinh(x / linthresh)
        from_axis = lambda u: np.sinh(u) * linthresh
        ylabel = "density (symlog axis)"
    else:
        to_axis = from_axis = lambda x: x
        ylabel = "density"
    u_lo, u_hi = to_axis(lo), to_axis(hi)
    if u_hi == u_lo:
        u_lo, u_hi = u_lo - 0.5, u_hi + 0.5
    if bins is None:
        bins = int(np.clip(2 * np.sqrt(pooled.size), 10, 50))
    u_edges = np.linspace(u_lo, u_hi, bins + 1)
    edges = from_axis(u_edges)
    edges[0], edges[-1] = min(edges[0], lo), max(edges[-1], hi)  # float round-off
    width = u_edges[1] - u_edges[0]
    for label, s, color, dropped in finite:
        if s.size == 0:
            continue
        counts, _ = np.histogram(s, bins=edges)
        note = f", {dropped} non-finite left out" if dropped else ""
        ax.stairs(counts / (s.size * width), edges, fill=True, alpha=0.45, color=color,
                  label=f"{label} (n={s.size}{note})")
    if scale == "log":
        ax.set_xscale("log")
    elif scale == "symlog":
        ax.set_xscale("symlog", linthresh=linthresh)
    if threshold is not None and np.isfinite(threshold) and (scale != "log" or threshold > 0):
        ax.axvline(threshold, color="black", ls="--", lw=1.2, label=threshold_label)
    ax.set_xlabel("score (higher = more anomalous)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="x-small")
