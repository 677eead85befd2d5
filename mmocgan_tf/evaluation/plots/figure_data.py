"""figure_data.npz: the arrays the figures are drawn from, and their checks.

`cli.evaluate --plots` writes it for fold 0. It holds x_train [n, d] (normal rows only),
x_test [t, d], y_test [t] (1 = anomaly, 0 = normal), one `score/METHOD` [t] per evaluated
method (higher = more anomalous) and, when an MMOC-GAN method ran, mode_train [n],
mode_test [t], generated [g, d] and a 0-d string mode_method naming the method the modes
and samples came from. That method's explanations of its m highest-scoring test rows
(chosen by score alone) come with them: explain_attributions [m, d], explain_scores [m],
explain_modes [m], explain_test_rows [m] (positions in x_test), explain_rows [m] (the
rows' numbers in the data set), a 0-d string explain_unit (the attributions' axis label)
and feature_names [d]; files written before these existed load without them (no
explanations figure). `FigureData` collects them while the folds run; reading checks
every shape up front, so a bad file fails with one line before any figure is drawn.
"""

import os
import zipfile

import numpy as np

from mmocgan_tf.evaluation.plots.explanations import top_explanations
from mmocgan_tf.evaluation.protocol import standardized

FIGURE_DATA = "figure_data.npz"
REQUIRED = ("x_train", "x_test", "y_test")
EXPLAIN = ("explain_attributions", "explain_scores", "explain_modes", "explain_test_rows",
           "explain_rows", "explain_unit")  # all or none
OPTIONAL = ("mode_train", "mode_test", "generated", "mode_method", *EXPLAIN, "feature_names")


class FigureData:
    """Fold 0's test scores of every method, and the learned modes, complementary samples
    and top rows' explanations of the first MMOC-GAN method, as figure_data.npz holds them.

    Args:
      feature_names: the data set's column names (default f0, f1, ...); the detectors'
        models are built without them.
    """

    def __init__(self, feature_names=None):
        self.arrays = {}
        self.feature_names = None if feature_names is None else tuple(feature_names)

    def add(self, detector, scores, x, y, fold):
        """Records one method's run on the fold (scores None: the method failed)."""
        if "x_train" not in self.arrays:
            x_train, x_test = standardized(x, fold)
            self.arrays.update(x_train=x_train, x_test=x_test, y_test=y[fold.test])
        if scores is not None:
            self.arrays[f"score/{detector.name}"] = scores
        model = getattr(detector, "model_", None)
        if hasattr(model, "generate") and "mode_method" not in self.arrays:
            x_train, x_test = self.arrays["x_train"], self.arrays["x_test"]
            self.arrays.update(
                mode_train=model.predict(x_train, batch_size=4096, verbose=0)["mode"],
                mode_test=model.predict(x_test, batch_size=4096, verbose=0)["mode"],
                generated=model.generate(x_train, seed=0), mode_method=detector.name)
            if scores is not None:
                self._add_explanations(model, x_test, scores, fold)

    def _add_explanations(self, model, x_test, scores, fold):
        top = top_explanations(model, x_test, scores)
        d = x_test.shape[1]
        names = self.feature_names
        if names is None or len(names) != d:
            names = tuple(str(name) for name in top["feature_names"])
        self.arrays.update(
            explain_attributions=top["attributions"], explain_scores=top["scores"],
            explain_modes=top["modes"], explain_test_rows=top["index"],
            explain_rows=np.asarray(fold.test)[top["index"]].astype(np.int64),
            explain_unit=np.array(top["unit"]),
            feature_names=np.asarray([str(name) for name in names], dtype=str))

    def save(self, output):
        """Writes output/figure_data.npz; returns its path."""
        path = os.path.join(output, FIGURE_DATA)
        np.savez_compressed(path, **self.arrays)
        return path


class FigureDataError(ValueError):
    """figure_data.npz is missing, unreadable or inconsistent; the message is one line."""


def load_figure_data(results_dir):
    """Reads and checks results_dir/figure_data.npz.

    Args:
      results_dir: the folder holding figure_data.npz.

    Returns:
      A dict of the arrays, the scores as {method: [t]} under "scores", and mode_method
      (when present) as a str or None.

    Raises:
      FigureDataError: with a one-line message when the file is missing, unreadable,
        lacks x_train, x_test, y_test or any score/METHOD, or when the shapes disagree.
    """
    path = os.path.join(results_dir, FIGURE_DATA)
    if not os.path.isfile(path):
        raise FigureDataError(f"no {FIGURE_DATA} in {results_dir} "
                              "(cli.evaluate --plots writes it)")
    if not zipfile.is_zipfile(path):
        raise FigureDataError(f"{path} is not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as err:  # zip, format and pickle errors all mean "unreadable"
        raise FigureDataError(f"cannot read {path}: {_one_line(err)}") from err
    scores = {key[len("score/"):]: arrays.pop(key) for key in list(arrays)
              if key.startswith("score/")}
    missing = [key for key in REQUIRED if key not in arrays] + ([] if scores else ["score/*"])
    if missing:
        raise FigureDataError(f"{path} lacks required arrays: {', '.join(missing)}")
    data = {key: arrays[key] for key in REQUIRED}
    data["scores"] = scores
    for key in OPTIONAL:
        if key in arrays:
            data[key] = arrays[key]
    _check_shapes(data, path)
    for key in ("mode_method", "explain_unit"):
        if key in data:
            data[key] = str(data[key].reshape(-1)[0]) if data[key].size else None
    return data


def _check_shapes(data, path):
    def bad(message):
        raise FigureDataError(f"{path}: {message}")

    x_train, x_test, y = data["x_train"], data["x_test"], data["y_test"]
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        bad(f"x_train {x_train.shape} and x_test {x_test.shape} must be 2-D with the same "
            "number of columns")
    if len(x_train) == 0 or len(x_test) == 0:
        bad("x_train and x_test need rows")
    t = len(x_test)
    if y.shape != (t,):
        bad(f"y_test has shape {y.shape}, expected ({t},)")
    if not np.isin(y, (0, 1)).all():
        bad("y_test must be 0 (normal) or 1 (anomaly)")
    for name, score in data["scores"].items():
        if score.shape != (t,):
            bad(f"score/{name} has shape {score.shape}, expected ({t},)")
    expected = {"mode_train": (len(x_train),), "mode_test": (t,)}
    for key, shape in expected.items():
        if key in data and data[key].shape != shape:
            bad(f"{key} has shape {data[key].shape}, expected {shape}")
    if "generated" in data and (data["generated"].ndim != 2
                                or data["generated"].shape[1] != x_train.shape[1]):
        bad(f"generated has shape {data['generated'].shape}, expected (g, {x_train.shape[1]})")
    if "mode_test" in data and "mode_train" not in data:
        bad("mode_test without mode_train")
    d = x_train.shape[1]
    if "feature_names" in data and data["feature_names"].shape != (d,):
        bad(f"feature_names has shape {data['feature_names'].shape}, expected ({d},)")
    present = [key for key in EXPLAIN if key in data]
    if not present:
        return
    if len(present) != len(EXPLAIN):
        bad(f"{', '.join(present)} without {', '.join(k for k in EXPLAIN if k not in data)}")
    attributions = data["explain_attributions"]
    if attributions.ndim != 2 or attributions.shape[1] != d:
        bad(f"explain_attributions has shape {attributions.shape}, expected (m, {d})")
    m = len(attributions)
    for key in EXPLAIN[1:-1]:
        if data[key].shape != (m,):
            bad(f"{key} has shape {data[key].shape}, expected ({m},)")
    rows = data["explain_test_rows"]
    if m and (not np.issubdtype(rows.dtype, np.integer) or rows.min() < 0 or rows.max() >= t):
        bad(f"explain_test_rows must be positions in x_test (0 to {t - 1})")
    if data["explain_unit"].size != 1:
        bad(f"explain_unit has shape {data['explain_unit'].shape}, expected ()")


def _one_line(err):
    return " ".join(str(err).split()) or type(err).__name__
