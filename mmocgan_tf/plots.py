"""The paper-reproduction figures, drawn headless (matplotlib Agg) into PNG files.

Each figure function writes one PNG and returns its path; write_figures draws them all
from the figure_data.npz that `cli.evaluate --plots` writes for fold 0. That file holds
x_train [n, d] (normal rows only), x_test [t, d], y_test [t] (1 = anomaly), one
`score/METHOD` [t] per evaluated method (higher = more anomalous) and, when an
MMOC-GAN method ran, mode_train [n], mode_test [t], generated [g, d] and a 0-d string
mode_method naming the method the modes and samples came from.

Conventions: labels 1 = anomaly, 0 = normal; features are standardised with the mean and
standard deviation of the normal training rows before PCA and t-SNE, so no feature
dominates by its units. Figures are closed after saving; no global style is changed.
matplotlib is an optional dependency (the `plots` extra): import this module only on
plotting code paths.
"""

from __future__ import annotations

import logging
import math
import os
import zipfile

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

log = logging.getLogger(__name__)

FIGURE_DATA = "figure_data.npz"
FIGURE1 = "figure1_modes_pca.png"
FIGURE2 = "figure2_score_histograms.png"
FIGURE4 = "figure4_modes_tsne.png"
ROC = "roc_curves.png"
REQUIRED = ("x_train", "x_test", "y_test")
DPI = 150

ANOMALY_STYLE = dict(marker="x", color="black", s=22, linewidths=1.0)
GENERATED_STYLE = dict(marker="^", facecolors="none", edgecolors="tab:gray", s=16,
                       linewidths=0.8)


class FigureDataError(ValueError):
    """figure_data.npz is missing, unreadable or inconsistent; the message is one line."""


# ---------------------------------------------------------------------------- figures


def figure1_modes_pca(x_train, mode_train, x_anomaly, path, max_points=20000, seed=0,
                      method=None):
    """Figure 1: normal training rows in PCA space, coloured by learned mode, with anomalies.

    Shows whether the modes MMOC-GAN learns (argmax Q(c|x)) split the normal data into
    coherent groups, and where the anomalies fall relative to them. The PCA is fitted on
    the standardised normal training rows only, so the axes describe normal variation;
    anomalies are projected onto them. At most max_points normal rows are drawn (a seeded
    subsample; the PCA still sees every row). method names the model in the title.
    """
    x_train = _matrix(x_train, "x_train")
    modes = np.asarray(mode_train).astype(int).ravel()
    x_anomaly = _matrix(x_anomaly, "x_anomaly", columns=x_train.shape[1])
    if modes.size != x_train.shape[0]:
        raise ValueError(f"mode_train has {modes.size} entries for {x_train.shape[0]} rows")
    scaler = StandardScaler().fit(x_train)
    n_comp = min(2, x_train.shape[1], x_train.shape[0])
    pca = PCA(n_components=n_comp, random_state=seed).fit(scaler.transform(x_train))
    keep = _subsample(x_train.shape[0], max_points, np.random.default_rng(seed))
    normal_2d = _pad2(pca.transform(scaler.transform(x_train[keep])))
    anomaly_2d = _pad2(pca.transform(scaler.transform(x_anomaly))) if len(x_anomaly) else None

    fig, ax = plt.subplots(figsize=(7, 5.5))
    _scatter_modes(ax, normal_2d, modes[keep], counts=np.bincount(modes - modes.min()),
                   offset=modes.min())
    if anomaly_2d is not None:
        ax.scatter(anomaly_2d[:, 0], anomaly_2d[:, 1], label=f"anomaly (n={len(x_anomaly)})",
                   zorder=3, **ANOMALY_STYLE)
    ratio = list(pca.explained_variance_ratio_) + [0.0]
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}% of normal variance)")
    if n_comp > 1:
        ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}% of normal variance)")
    else:
        ax.set_yticks([])
    shown = "" if len(keep) == x_train.shape[0] else f" ({len(keep)} of {x_train.shape[0]} shown)"
    ax.set_title(f"Learned modes{_of(method)} on the normal training rows, PCA{shown}",
                 fontsize="medium")
    _legend_outside(ax)
    return _save(fig, path)


def figure2_score_histograms(score_normal, score_anomaly, path, title, bins=None,
                             log_scale=None):
    """Figure 2: overlaid histograms of the test scores of normal and anomalous rows.

    The overlap of the two distributions is what a threshold has to cut through: little
    overlap means any reasonable threshold separates them. Both use the same bins and are
    density-normalised so classes of very different sizes compare. log_scale: None picks
    a log (or symmetric-log) score axis when a few extreme scores would squash the rest
    into one bin; True or False forces it. bins: None picks 2 sqrt(rows), 10 to 50.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    _histogram_panel(ax, score_normal, score_anomaly, title, bins, log_scale)
    return _save(fig, path)


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
    return _save(fig, path)


def figure4_modes_tsne(x_normal, modes, x_anomaly, x_generated, path, seed=0,
                       max_points=2000, method=None):
    """Figure 4: t-SNE of normal rows by learned mode, anomalies and generated samples.

    Shows the complementary samples the generator learned: they should sit around and
    between the normal modes (the low-density boundary), near where anomalies appear,
    rather than on top of the normal clusters. t-SNE is slow, so at most max_points points
    are embedded, stratified over the three groups: each group gets an equal share of the
    budget, a group smaller than its share keeps all its points and the rest goes to the
    others; the draw is seeded, as is t-SNE. x_generated may be None or empty; method
    names the model in the title.
    """
    x_normal = _matrix(x_normal, "x_normal")
    d = x_normal.shape[1]
    modes = np.asarray(modes).astype(int).ravel()
    if modes.size != x_normal.shape[0]:
        raise ValueError(f"modes has {modes.size} entries for {x_normal.shape[0]} rows")
    x_anomaly = _matrix(x_anomaly, "x_anomaly", columns=d)
    x_generated = _matrix(np.empty((0, d)) if x_generated is None else x_generated,
                          "x_generated", columns=d)
    rng = np.random.default_rng(seed)
    sizes = [len(x_normal), len(x_anomaly), len(x_generated)]
    picks = [_subsample(n, k, rng) for n, k in zip(sizes, _shares(sizes, max_points),
                                                    strict=True)]
    total = sum(len(p) for p in picks)
    if total < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {total}")
    scaler = StandardScaler().fit(x_normal)
    stacked = scaler.transform(np.concatenate(
        [x_normal[picks[0]], x_anomaly[picks[1]], x_generated[picks[2]]]))
    if not np.isfinite(stacked).all():
        raise ValueError("t-SNE input holds NaN or inf")
    tsne = TSNE(n_components=2, perplexity=min(30.0, max(1.0, (total - 1) / 3)),
                init="pca" if d >= 2 else "random", learning_rate="auto", random_state=seed)
    emb = tsne.fit_transform(stacked)
    cut = np.cumsum([len(p) for p in picks])

    fig, ax = plt.subplots(figsize=(7, 5.5))
    _scatter_modes(ax, emb[:cut[0]], modes[picks[0]],
                   counts=np.bincount(modes - modes.min()), offset=modes.min())
    if len(picks[2]):
        ax.scatter(emb[cut[1]:, 0], emb[cut[1]:, 1], zorder=2,
                   label=f"generated (n={sizes[2]})", **GENERATED_STYLE)
    if len(picks[1]):
        ax.scatter(emb[cut[0]:cut[1], 0], emb[cut[0]:cut[1], 1], zorder=3,
                   label=f"anomaly (n={sizes[1]})", **ANOMALY_STYLE)
    ax.set_xticks([])
    ax.set_yticks([])
    shown = ", ".join(f"{len(p)}/{n}" for p, n in zip(picks, sizes, strict=True))
    ax.set_title(f"t-SNE: normal rows by learned mode{_of(method)}, anomalies, generated\n"
                 f"(normal, anomaly, generated shown: {shown})", fontsize="medium")
    _legend_outside(ax)
    return _save(fig, path)


def roc_curves(y_test, scores_by_method, path):
    """ROC curves of every method on the test rows, AUROC in the legend (best first).

    The threshold-free comparison of the detectors. Returns None and writes nothing when
    y_test holds one class only, where ROC is undefined (the reason is logged). A method
    whose scores hold NaN is left out of the plot and named in a note.
    """
    y = _labels(y_test)
    if y.all() or not y.any():
        log.warning("roc_curves: skipped, y_test holds only %s rows",
                    "anomalous" if y.all() else "normal")
        return None
    curves, skipped = [], []
    for name, score in scores_by_method.items():
        score = _rankable(score)
        if score is None:
            skipped.append(name)
            continue
        fpr, tpr, _ = roc_curve(y, score)
        curves.append((roc_auc_score(y, score), name, fpr, tpr))
    curves.sort(key=lambda c: -c[0])
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    colors = _palette(len(curves))
    for (auc, name, fpr, tpr), color in zip(curves, colors, strict=True):
        ax.plot(fpr, tpr, color=color, lw=1.4, label=f"{name} (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="lightgray", ls="--", lw=1, label="chance (0.500)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (normal rows flagged)")
    ax.set_ylabel("true positive rate (anomalies flagged)")
    title = f"ROC on the test rows ({int((~y).sum())} normal, {int(y.sum())} anomalous)"
    if skipped:
        title += "\nleft out, NaN scores: " + ", ".join(skipped)
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="lower right" if len(curves) <= 8 else "center left",
              bbox_to_anchor=None if len(curves) <= 8 else (1.02, 0.5), fontsize="small")
    return _save(fig, path)


def write_figures(results_dir, out_dir=None, notes=None):
    """Draws every figure that results_dir/figure_data.npz supports; returns the PNG paths.

    Writes figure1_modes_pca.png and figure4_modes_tsne.png (only when learned modes are
    present), figure2_score_histograms.png (one panel per method) and roc_curves.png (not
    when the test labels hold one class) into out_dir (default results_dir/figures).
    When notes is a list, one line per figure left out is appended to it.

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
    else:
        written.append(roc_curves(y, data["scores"], os.path.join(out_dir, ROC)))
    return written


def load_figure_data(results_dir):
    """Reads and checks results_dir/figure_data.npz; returns a dict (scores under 'scores').

    Raises FigureDataError with a one-line message when the file is missing, unreadable,
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
    for key in ("mode_train", "mode_test", "generated", "mode_method"):
        if key in arrays:
            data[key] = arrays[key]
    _check_shapes(data, path)
    if "mode_method" in data:
        data["mode_method"] = str(data["mode_method"].reshape(-1)[0]) if \
            data["mode_method"].size else None
    return data


# ---------------------------------------------------------------------------- helpers


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


def _of(method):
    return f" of {method}" if method else ""


def _one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


def _matrix(x, name, columns=None):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and x.size == 0 and columns is not None:
        x = x.reshape(0, columns)
    if x.ndim != 2 or (columns is not None and x.shape[1] != columns):
        want = f"[rows, {columns}]" if columns is not None else "[rows, features]"
        raise ValueError(f"{name} must be {want}, got shape {x.shape}")
    return x


def _labels(y_test):
    y = np.asarray(y_test).ravel()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_test must be 0 (normal) or 1 (anomaly)")
    return y.astype(bool)


def _subsample(n, k, rng):
    """Sorted indices of min(n, k) rows drawn without replacement."""
    if n <= k:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def _shares(sizes, budget):
    """Splits budget over groups: equal shares, a small group's leftover goes to the rest."""
    shares = [0] * len(sizes)
    open_groups = [i for i, n in enumerate(sizes) if n > 0]
    while open_groups and budget > 0:
        each = max(1, budget // len(open_groups))
        still_open = []
        for i in open_groups:
            take = min(each, sizes[i] - shares[i], budget)
            shares[i] += take
            budget -= take
            if shares[i] < sizes[i]:
                still_open.append(i)
        open_groups = still_open
    return shares


def _pad2(points):
    """A one-component projection gets a zero second axis."""
    return points if points.shape[1] >= 2 else np.column_stack([points, np.zeros(len(points))])


def _palette(n):
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n <= 20:
        return [cmap(i) for i in range(n)]
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def _scatter_modes(ax, points, modes, counts, offset):
    """Scatters points coloured by mode id; colours depend on the id only, not the subset."""
    colors = _palette(len(counts))
    for mode in np.unique(modes):
        at = modes == mode
        ax.scatter(points[at, 0], points[at, 1], s=7, alpha=0.6, color=colors[mode - offset],
                   linewidths=0, rasterized=len(points) > 5000,
                   label=f"mode {mode} (n={counts[mode - offset]})")


def _legend_outside(ax):
    entries = len(ax.get_legend_handles_labels()[0])
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
              markerscale=1.5, ncol=1 if entries <= 16 else 2, frameon=False)


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


def _score_scale(values, log_scale=None):
    """'linear', 'log' or 'symlog' for these scores.

    Auto (log_scale None): a non-linear axis when the full range is over 20 times the
    interquartile range, i.e. a few extreme scores would squeeze the bulk of the rows into
    a few linear bins (a normal sample gives about 5, an exponential one about 8). 'log'
    when every score is positive, else 'symlog'.
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


def _histogram_panel(ax, score_normal, score_anomaly, title, bins, log_scale):
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
    scale = _score_scale(pooled, log_scale)
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
    ax.set_xlabel("score (higher = more anomalous)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="x-small")


def _save(fig, path):
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return str(path)
