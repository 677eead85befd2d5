"""What makes the most anomalous rows anomalous: one bar panel of attributions per row.

The rows are chosen by their score alone (never by a label): the `count` highest scores.
Each panel shows one row's per-feature attributions (MMOCGAN.explain), the largest at the
top, and names the row, its learned mode and its score in its title. With more features
than a panel holds, a row's largest ones are drawn; the rest are summed into one grey bar,
"other N features", where attributions add up (the paper variant's integrated gradients),
and left out with a note where each stands alone (the mixtures' nats). The drawing takes
plain arrays; top_explanations computes them from a fitted model, for cli.train and
cli.evaluate --plots alike.
"""

import math

import numpy as np
from matplotlib import pyplot as plt

from mmocgan_tf.evaluation.plots.drawing import palette, save_figure

EXPLANATIONS = "explanations.png"
TOP_ROWS = 6  # rows drawn
MAX_FEATURES = 10  # bars of their own per panel; the rest go into "other N features"
NATS = "attribution (nats)"
SCORE_UNITS = "attribution (score units)"
# What a bar is, for the figure's subtitle, by unit (model/explanations.py).
UNIT_NOTES = {
    NATS: "a bar: the nats the score would lose if that feature alone took the value the "
          "row's mode expects given its other features",
    SCORE_UNITS: "integrated gradients of the score 1 - D(x) from the training mean: a "
                 "row's bars sum to its score minus the mean's",
}
ADDITIVE = (SCORE_UNITS,)  # units whose attributions add up: the rest can be one summed bar
_NAME_CHARS = 28  # longer feature names are cut, with an ellipsis


def attribution_unit(model):
    """The x-axis label of a model's attributions: nats with a mixture of the modes, else
    score units (the paper variant, reference="none", whose mode_mixture is None)."""
    return SCORE_UNITS if model.reference.mode_mixture is None else NATS


def top_rows(scores, count=TOP_ROWS):
    """Positions of the `count` highest finite scores, highest first (ties: lower position).

    Args:
      scores: [t] anomaly scores (higher = more anomalous).
      count: how many rows at most.

    Returns:
      An int64 array of at most `count` positions into scores.
    """
    scores = np.asarray(scores, np.float64).ravel()
    finite = np.flatnonzero(np.isfinite(scores))
    order = finite[np.argsort(-scores[finite], kind="stable")]
    return order[:max(0, int(count))].astype(np.int64)


def top_explanations(model, x, scores, count=TOP_ROWS):
    """The attributions of the rows of x that score highest, for explanation_figure.

    Args:
      model: a fitted MMOCGAN.
      x: [t, d] rows as the model takes them.
      scores: [t] the model's scores of those rows; only they choose the rows.
      count: how many rows at most.

    Returns:
      {"index": [m] positions into x, highest score first, "attributions": [m, d],
       "scores": [m], "modes": [m] (the rows' learned modes, as model(x)["mode"]),
       "feature_names": [d] str, "unit": the x-axis label}.
    """
    index = top_rows(scores, count)
    rows = np.asarray(x, np.float32)[index]
    d = rows.shape[1]
    if len(index):
        attributions = model.explain(rows, batch_size=len(index))
        modes = np.asarray(model(rows)["mode"]).astype(np.int64)
    else:
        attributions, modes = np.zeros((0, d), np.float32), np.zeros(0, np.int64)
    return {"index": index, "attributions": np.asarray(attributions, np.float32),
            "scores": np.asarray(scores, np.float64).ravel()[index], "modes": modes,
            "feature_names": np.asarray(list(model.feature_names), dtype=str),
            "unit": attribution_unit(model)}


def explanation_figure(attributions, feature_names, modes, scores, rows, path, unit=NATS,
                       title=None, labels=None, row_name="row", max_features=MAX_FEATURES):
    """Draws one horizontal bar panel of attributions per row into a PNG.

    Args:
      attributions: [m, d] per-feature attributions (higher = more anomalous).
      feature_names: [d] column names.
      modes: [m] each row's learned mode.
      scores: [m] each row's anomaly score.
      rows: [m] each row's number, for the panel titles.
      path: the PNG's path.
      unit: the x-axis label, NATS or SCORE_UNITS (attribution_unit).
      title: the figure's first title line (default: a generic one).
      labels: optional [m] labels (1 = anomaly), shown in the titles only.
      row_name: what the row numbers count, e.g. "row" or "held-out row".
      max_features: bars of their own per panel; the rest are summed into one bar where
        the unit's attributions add up (ADDITIVE), else left out.

    Returns:
      path as a str, or None when there are no rows.

    Raises:
      ValueError: the arrays' shapes disagree.
    """
    attributions = np.asarray(attributions, np.float64)
    if attributions.ndim != 2:
        raise ValueError(f"attributions must be [m, d], got shape {attributions.shape}")
    m, d = attributions.shape
    names = [str(name) for name in np.asarray(feature_names).ravel()]
    if len(names) != d:
        raise ValueError(f"{len(names)} feature names for {d} attribution columns")
    modes, scores, rows = (np.asarray(a).ravel() for a in (modes, scores, rows))
    labels = None if labels is None else np.asarray(labels).ravel()
    for what, values in (("modes", modes), ("scores", scores), ("rows", rows),
                         ("labels", labels)):
        if values is not None and len(values) != m:
            raise ValueError(f"{len(values)} {what} for {m} rows of attributions")
    if m == 0:
        return None
    max_features = max(1, int(max_features))
    shown = min(d, max_features)
    additive = unit in ADDITIVE
    bars = shown + (additive and d > shown)
    columns = 1 if m == 1 else 2
    lines = math.ceil(m / columns)
    panel_height = 0.8 + 0.27 * bars
    fig, axes = plt.subplots(lines, columns, figsize=(6.4 * columns, panel_height * lines + 1.0),
                             squeeze=False)
    colours = palette(10)
    up, down, rest = colours[3], colours[0], colours[7]  # red, blue, grey
    for i, ax in enumerate(axes.ravel()):
        if i >= m:
            ax.set_visible(False)
            continue
        values = attributions[i]
        order = np.argsort(-np.abs(np.nan_to_num(values)), kind="stable")
        picked = order[:shown]
        heights = list(values[picked])
        bar_names = [_short(names[j]) for j in picked]
        bar_colours = [up if v >= 0 else down for v in heights]
        if additive and d > shown:
            heights.append(float(np.nansum(values[order[shown:]])))
            bar_names.append(f"other {d - shown} features")
            bar_colours.append(rest)
        positions = np.arange(len(heights))[::-1]  # the largest at the top
        ax.barh(positions, heights, color=bar_colours, height=0.7)
        ax.set_yticks(positions, bar_names, fontsize=8)
        ax.axvline(0.0, color="black", linewidth=0.6)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(unit, fontsize=8)
        ax.margins(x=0.12)
        for y, value in zip(positions, heights, strict=True):
            if np.isfinite(value):
                ax.annotate(_number(value), (value, y), xytext=(3 if value >= 0 else -3, 0),
                            textcoords="offset points", va="center",
                            ha="left" if value >= 0 else "right", fontsize=7)
        heading = f"{row_name} {_integer(rows[i])} · mode {_integer(modes[i])} · " \
                  f"score {_number(scores[i])}"
        if labels is not None:
            heading += f" · labelled {'anomaly' if labels[i] else 'normal'}"
        ax.set_title(heading, fontsize=9)
    note = UNIT_NOTES.get(unit)
    subtitle = [f"the {m} highest-scoring rows, chosen by score alone"]
    if d > shown:
        rest = "the rest summed in grey" if additive else \
            f"the other {d - shown}, smaller, left out"
        subtitle.append(f"each row's {shown} largest of {d} features, {rest}")
    heading = title or "What makes the highest-scoring rows anomalous"
    text = heading + "\n" + "; ".join(subtitle) + (f"\n{note}" if note else "")
    fig.suptitle(text, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _short(name):
    return name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS - 1] + "…"


def _integer(value):
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def _number(value):
    value = float(value)
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
