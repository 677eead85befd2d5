"""The pictures of one training run: how its held-out rows score against its threshold.

cli.train draws them into WORKDIR/figures whenever it held out labelled rows: the score
histogram shows where the decision threshold cuts the two classes, the ROC and
precision-recall curves show every threshold the model could have had, with the one it
has marked, and explanations.png shows the per-feature attributions of the held-out rows
that score highest. The labels are those of the held-out rows only; they never set
anything, nor choose the rows explained (only their titles name them).
"""

import os

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from mmocgan_tf.evaluation.plots.explanations import (
    EXPLANATIONS,
    TOP_ROWS,
    explanation_figure,
    top_explanations,
)
from mmocgan_tf.evaluation.plots.scores import figure2_score_histograms, pr_curves, roc_curves

SCORES = "scores.png"
ROC_FILE = "roc.png"
PR_FILE = "pr.png"


def heldout_figures(y, scores, threshold, out_dir, dataset, method="MMOC-GAN",
                    threshold_label="threshold"):
    """Writes scores.png, and roc.png and pr.png when both classes are held out.

    Args:
      y: [t] held-out labels, 1 = anomaly, 0 = normal.
      scores: [t] the model's scores of those rows (higher = more anomalous).
      threshold: the score above which the model flags a row.
      out_dir: the folder of the PNGs (created if needed).
      dataset: what the rows are, for the titles.
      method: the model's name in the legends.
      threshold_label: how the threshold was chosen, for the legend.

    Returns:
      The paths written.
    """
    y = np.asarray(y).astype(bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    flagged = scores > threshold
    label = f"{threshold_label} = {threshold:.4g}"
    rates = []
    if (~y).any():
        rates.append(f"flags {100 * flagged[~y].mean():.1f}% of normal")
    if y.any():
        rates.append(f"{100 * flagged[y].mean():.1f}% of anomalous rows")
    if rates:
        label += "\n" + ", ".join(rates)
    title = f"{method} on {dataset}: held-out scores"
    if y.any() and (~y).any() and np.isfinite(scores).all():
        title += (f"\nAUROC {roc_auc_score(y, scores):.3f}, "
                  f"AUPRC {average_precision_score(y, scores):.3f}")
    os.makedirs(out_dir, exist_ok=True)
    written = [figure2_score_histograms(scores[~y], scores[y], os.path.join(out_dir, SCORES),
                                        title, threshold=threshold, threshold_label=label)]
    rows = f"the held-out rows of {dataset}"
    for draw, name in ((roc_curves, ROC_FILE), (pr_curves, PR_FILE)):
        path = draw(y, {method: scores}, os.path.join(out_dir, name), title=rows,
                    thresholds={method: threshold})
        if path is not None:  # None: one class held out, no curve
            written.append(path)
    return written


def heldout_explanations(model, x, scores, out_dir, dataset, y=None, method="MMOC-GAN",
                         count=TOP_ROWS):
    """Writes explanations.png: the attributions of the `count` highest-scoring rows of x.

    Args:
      model: the fitted MMOCGAN.
      x: [t, d] held-out raw rows.
      scores: [t] the model's scores of those rows; they alone choose the rows.
      out_dir: the folder of the PNG (created if needed).
      dataset: what the rows are, for the title.
      y: optional [t] held-out labels, named in the panel titles only.
      method: the model's name in the title.
      count: how many rows at most.

    Returns:
      The path written, or None when x has no rows with a finite score.
    """
    top = top_explanations(model, x, scores, count)
    labels = None if y is None else np.asarray(y).ravel()[top["index"]]
    return explanation_figure(
        top["attributions"], top["feature_names"], top["modes"], top["scores"], top["index"],
        os.path.join(out_dir, EXPLANATIONS), unit=top["unit"], labels=labels,
        row_name="held-out row",
        title=f"{method} on {dataset}: what makes the highest-scoring held-out rows anomalous")
