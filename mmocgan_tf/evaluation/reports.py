"""Result files of cli.evaluate and cli.benchmark: CSV, JSON and markdown tables.

Files are written to a temporary name and renamed, so an interrupted run never leaves a
half-written table over a good one.
"""

import csv
import json

import numpy as np

from mmocgan_tf.evaluation.protocol import COLUMNS, RANKING_METRICS, RULE_METRICS, average_ranks
from mmocgan_tf.files import atomic_write


def write_text(path, text):
    with atomic_write(path) as handle:
        handle.write(text)


def write_json(path, value):
    write_text(path, json.dumps(value, indent=2, sort_keys=True, default=_plain) + "\n")


def write_csv(path, rows):
    """One line per result row, in COLUMNS order (empty cells for undefined values)."""
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def progress_line(row):
    """One line per finished fold for the terminal."""
    where = f"{row['method']} seed {row['seed']} fold {row['fold']}"
    if row.get("auroc") is None and row.get("error"):
        return f"{where}: failed: {row['error']}"
    auroc = "n/a" if row.get("auroc") is None else f"{row['auroc']:.3f}"
    return f"{where}: auroc {auroc}, fit {row.get('fit_s', 0):.1f} s"


def format_stat(stat, digits=3):
    return "—" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def table1(summary, dataset, methods, gan_methods=()):
    """Markdown shaped like the paper's Table 1: one row per method and decision rule."""
    header = ("| method | rule | normal acc. | anomaly acc. | accuracy | F1 (normal) "
              "| F1 (anomaly) | AUROC | AUPRC | fit s |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for method in methods:
        stats = summary.get((dataset, method), {})
        rules = [("99.5th pct", "")] + ([("D < 0.5", "half_")] if method in gan_methods else [])
        for rule, prefix in rules:
            cells = [format_stat(stats.get(prefix + m)) for m in RULE_METRICS]
            cells += [format_stat(stats.get(m)) for m in (*RANKING_METRICS, "fit_s")]
            lines.append(f"| {method} | {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def metric_table(summary, datasets, methods, metric="auroc", with_std=False):
    """Datasets x methods of one metric (mean over folds and seeds), best in bold, and the
    average rank over the datasets where every method has a value."""
    header = f"| dataset | {' | '.join(methods)} |"
    lines = [header, "|" + "---|" * (len(methods) + 1)]
    for dataset in datasets:
        stats = [summary.get((dataset, m), {}).get(metric) for m in methods]
        best = max((s[0] for s in stats if s is not None), default=None)
        cells = []
        for stat in stats:
            if stat is None:
                cells.append("—")
                continue
            text = format_stat(stat) if with_std else f"{stat[0]:.3f}"
            cells.append(f"**{text}**" if round(stat[0], 3) == round(best, 3) else text)
        lines.append(f"| {dataset} | {' | '.join(cells)} |")
    ranks, used = average_ranks(summary, datasets, methods, metric)
    means = [_mean_over(summary, used, m, metric) for m in methods]
    lines.append("| mean | " + " | ".join("—" if v is None else f"{v:.3f}" for v in means) + " |")
    lines.append("| avg rank | " + " | ".join("—" if ranks[m] is None else f"{ranks[m]:.2f}"
                                              for m in methods) + " |")
    note = (f"\nmean and avg rank over the {len(used)} of {len(datasets)} data sets where "
            f"every method has a {metric} value.\n")
    return "\n".join(lines) + "\n" + note


def _mean_over(summary, datasets, method, metric):
    values = [summary[(d, method)][metric][0] for d in datasets]
    return float(np.mean(values)) if values else None


def seed_table(rows, datasets, methods, metric="auroc"):
    """Per data set and method: each seed's mean over folds, and their spread (max - min)."""
    lines = ["| dataset | method | per seed | spread |", "|---|---|---|---|"]
    for dataset in datasets:
        for method in methods:
            per_seed = {}
            for r in rows:
                if r["dataset"] == dataset and r["method"] == method and r.get(metric) is not None:
                    per_seed.setdefault(r["seed"], []).append(r[metric])
            if len(per_seed) < 2:
                continue
            means = [float(np.mean(per_seed[seed])) for seed in sorted(per_seed)]
            lines.append(f"| {dataset} | {method} | {' / '.join(f'{v:.3f}' for v in means)} "
                         f"| {max(means) - min(means):.3f} |")
    return "\n".join(lines) + "\n"


def fit_time_table(summary, datasets, methods):
    """Mean seconds per fit of each method, over all its folds on all data sets."""
    lines = ["| method | mean fit s | mean score s | fits |", "|---|---|---|---|"]
    for method in methods:
        fits = [summary[(d, method)]["fit_s"] for d in datasets
                if "fit_s" in summary.get((d, method), {})]
        scores = [summary[(d, method)]["score_s"] for d in datasets
                  if "score_s" in summary.get((d, method), {})]
        count = sum(f[2] for f in fits)
        if not count:
            continue
        fit_mean = sum(f[0] * f[2] for f in fits) / count
        score_mean = sum(s[0] * s[2] for s in scores) / max(1, sum(s[2] for s in scores))
        lines.append(f"| {method} | {fit_mean:.2f} | {score_mean:.2f} | {count} |")
    return "\n".join(lines) + "\n"
