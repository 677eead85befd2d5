"""Every figure one figure_data.npz supports, in one call (what cli.plot runs).

A figure the data cannot support (no learned modes, one test class) is left out with a
note rather than an error, so one evaluation without an MMOC-GAN method still gets its
score figures.
"""

import os

import numpy as np

from mmocgan_tf.evaluation.plots.explanations import EXPLANATIONS, explanation_figure
from mmocgan_tf.evaluation.plots.figure_data import FIGURE_DATA, load_figure_data
from mmocgan_tf.evaluation.plots.modes import figure1_modes_pca, figure4_modes_tsne
from mmocgan_tf.evaluation.plots.scores import (
    figure2_score_histogram_grid,
    pr_curves,
    roc_curves,
)

FIGURE1 = "figure1_modes_pca.png"
FIGURE2 = "figure2_score_histograms.png"
FIGURE4 = "figure4_modes_tsne.png"
ROC = "roc_curves.png"
PR = "pr_curves.png"


def write_figures(results_dir, out_dir=None, notes=None):
    """Draws every figure that results_dir/figure_data.npz supports.

    Writes figure1_modes_pca.png and figure4_modes_tsne.png (only when learned modes are
    present), figure2_score_histograms.png (one panel per method), roc_curves.png and
    pr_curves.png (not when the test labels hold one class) and explanations.png (the
    attributions of the MMOC-GAN method's highest-scoring test rows; not from files
    written before they were stored, nor with no rows explained).

    Args:
      results_dir: the folder holding figure_data.npz.
      out_dir: where the PNGs go (default results_dir/figures).
      notes: when a list, one line per figure left out is appended to it.

    Returns:
      The paths of the PNGs written.

    Raises:
      FigureDataError (a ValueError): figure_data.npz is missing, unreadable, lacks
        required arrays or holds inconsistent shapes.
    """
    data = load_figure_data(results_dir)
    out_dir = os.path.join(results_dir, "figures") if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    notes = [] if notes is None else notes
    y = data["y_test"].astype(bool)
    x_anomaly = data["x_test"][y]
    method = data.get("mode_method")
    written = []

    if "mode_train" in data:
        written.append(figure1_modes_pca(data["x_train"], data["mode_train"], x_anomaly,
                                         os.path.join(out_dir, FIGURE1), method=method))
    else:
        notes.append(f"{FIGURE1}: no learned modes in {FIGURE_DATA}")
    written.append(figure2_score_histogram_grid(data["scores"], y,
                                                os.path.join(out_dir, FIGURE2)))
    if "mode_train" in data:
        x_normal, modes = data["x_train"], data["mode_train"]
        if "mode_test" in data:  # the held-out normal rows carry learned modes too
            x_normal = np.concatenate([x_normal, data["x_test"][~y]])
            modes = np.concatenate([modes, data["mode_test"][~y]])
        n_points = len(x_normal) + len(x_anomaly) + len(data.get("generated", ()))
        if n_points >= 4:
            written.append(figure4_modes_tsne(x_normal, modes, x_anomaly,
                                              data.get("generated"),
                                              os.path.join(out_dir, FIGURE4), method=method))
        else:
            notes.append(f"{FIGURE4}: too few rows for t-SNE ({n_points})")
    else:
        notes.append(f"{FIGURE4}: no learned modes in {FIGURE_DATA}")
    if y.all() or not y.any():
        notes.append(f"{ROC}: the test labels hold one class only, ROC is undefined")
        notes.append(f"{PR}: the test labels hold one class only, precision-recall is "
                     "undefined")
    else:
        written.append(roc_curves(y, data["scores"], os.path.join(out_dir, ROC)))
        written.append(pr_curves(y, data["scores"], os.path.join(out_dir, PR)))
    if "explain_attributions" not in data:
        notes.append(f"{EXPLANATIONS}: no attributions in {FIGURE_DATA}")
    else:
        path = _explanations(data, y, os.path.join(out_dir, EXPLANATIONS))
        if path is None:
            notes.append(f"{EXPLANATIONS}: no test row with a finite score to explain")
        else:
            written.append(path)
    return written


def _explanations(data, y, path):
    """explanations.png from the explain_* arrays, or None when they hold no rows."""
    d = data["x_train"].shape[1]
    names = data.get("feature_names")
    names = [f"f{i}" for i in range(d)] if names is None else names
    method = data.get("mode_method") or "MMOC-GAN"
    return explanation_figure(
        data["explain_attributions"], names, data["explain_modes"], data["explain_scores"],
        data["explain_rows"], path, unit=data["explain_unit"],
        labels=y[data["explain_test_rows"]],
        title=f"{method}, fold 0: what makes the highest-scoring test rows anomalous")
