"""Figures 1 and 4: the modes MMOC-GAN learned, in PCA and t-SNE space.

Features are standardised with the mean and standard deviation of the normal training
rows before PCA and t-SNE, so no feature dominates by its units. Labels 1 = anomaly,
0 = normal.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.preprocessing import StandardScaler

from mmocgan_tf.evaluation.plots.drawing import palette, save_figure

ANOMALY_STYLE = dict(marker="x", color="black", s=22, linewidths=1.0)
GENERATED_STYLE = dict(marker="^", facecolors="none", edgecolors="tab:gray", s=16,
                       linewidths=0.8)


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
    return save_figure(fig, path)


def figure4_modes_tsne(x_normal, modes, x_anomaly, x_generated, path, seed=0,
                       max_points=2000, method=None):
    """Figure 4: t-SNE of normal rows by learned mode, anomalies and generated samples.

    Shows the complementary samples the generator learned: they should sit around and
    between the normal modes (the low-density boundary), near where anomalies appear,
    rather than on top of the normal clusters. t-SNE is slow, so at most max_points points
    are embedded, stratified over the three groups (budget_shares); the draw is seeded, as
    is t-SNE. x_generated may be None or empty; method names the model in the title.
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
    picks = [_subsample(n, k, rng) for n, k in zip(sizes, budget_shares(sizes, max_points),
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
    return save_figure(fig, path)


def budget_shares(sizes, budget):
    """Splits a point budget over groups, so a small group is not drowned by a large one.

    Each group gets an equal share; a group smaller than its share keeps all its points
    and the rest goes to the others.

    Args:
      sizes: the number of points of each group.
      budget: how many points may be drawn in all.

    Returns:
      A list of how many points to draw from each group (each at most its size).
    """
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


def _of(method):
    return f" of {method}" if method else ""


def _matrix(x, name, columns=None):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and x.size == 0 and columns is not None:
        x = x.reshape(0, columns)
    if x.ndim != 2 or (columns is not None and x.shape[1] != columns):
        want = f"[rows, {columns}]" if columns is not None else "[rows, features]"
        raise ValueError(f"{name} must be {want}, got shape {x.shape}")
    return x


def _subsample(n, k, rng):
    """Sorted indices of min(n, k) rows drawn without replacement."""
    if n <= k:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def _pad2(points):
    """A one-component projection gets a zero second axis."""
    return points if points.shape[1] >= 2 else np.column_stack([points, np.zeros(len(points))])


def _scatter_modes(ax, points, modes, counts, offset):
    """Scatters points coloured by mode id; colours depend on the id only, not the subset."""
    colors = palette(len(counts))
    for mode in np.unique(modes):
        at = modes == mode
        ax.scatter(points[at, 0], points[at, 1], s=7, alpha=0.6, color=colors[mode - offset],
                   linewidths=0, rasterized=len(points) > 5000,
                   label=f"mode {mode} (n={counts[mode - offset]})")


def _legend_outside(ax):
    entries = len(ax.get_legend_handles_labels()[0])
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
              markerscale=1.5, ncol=1 if entries <= 16 else 2, frameon=False)
