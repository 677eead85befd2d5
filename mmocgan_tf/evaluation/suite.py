"""The protocol over many data sets: naming them, a run log that resumes, the tables.

`mmocgan-benchmark` is a thin command over this module. Each finished fold is one JSON
line in OUTPUT/rows.jsonl, appended as soon as it is known, beside settings.json; a rerun
of the same settings skips the folds already there, so an interrupted run resumes where it
stopped and a finished one only redraws the tables.
"""

import glob
import json
import os

from mmocgan_tf.data import DataError
from mmocgan_tf.evaluation import baselines, reports
from mmocgan_tf.evaluation.protocol import summarize

ROWS, SETTINGS = "rows.jsonl", "settings.json"


def dataset_specs(data_dir, names):
    """{name: data spec}; names are npz stems (without the numeric prefix) or data specs.

    Args:
      data_dir: a folder of .npz sets such as 38_thyroid.npz, or None.
      names: the sets to run (empty: every .npz in data_dir); a name may also be any
        load_data spec (bundled:NAME, synthetic:NAME, a path).

    Raises:
      DataError: a name is neither in data_dir nor a spec, or there is nothing to run.
    """
    found = {}
    for path in sorted(glob.glob(os.path.join(data_dir or "", "*.npz"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        prefix, _, rest = stem.partition("_")
        found[rest if prefix.isdigit() and rest else stem] = path
    if not names:
        if not found:
            raise DataError(f"no .npz data sets in --data_dir={data_dir!r} and no --datasets")
        return found
    specs = {}
    for name in names:
        if name in found:
            specs[name] = found[name]
        elif ":" in name or os.path.splitext(name)[1]:
            specs[name] = name
        else:
            known = ", ".join(found) or "none"
            raise DataError(f"unknown data set {name!r} (in --data_dir: {known})")
    return specs


def method_list(methods, ablations):
    """The methods, then each ablation's variants not listed yet; ValueError if none."""
    listed = list(methods)
    for ablation in ablations:
        if ablation not in baselines.ABLATIONS:
            raise ValueError(f"unknown ablation {ablation!r}; known: "
                             f"{', '.join(baselines.ABLATIONS)}")
        listed += [m for m in baselines.ABLATIONS[ablation] if m not in listed]
    if not listed:
        raise ValueError("no methods to run")
    return listed


class RunLog:
    """OUTPUT/rows.jsonl and OUTPUT/settings.json of one benchmark run.

    Opening a folder of another run's settings is refused (its rows would be mixed with
    rows of other settings). A last line cut short by a kill during its append is dropped
    from the file, so the fold it held runs again and the log stays readable.
    """

    def __init__(self, output, settings):
        """Opens (or starts) the run in output.

        Raises:
          ValueError: output holds a run with other settings, or a line of rows.jsonl
            other than the last is not JSON (the message names the file and line).
        """
        os.makedirs(output, exist_ok=True)
        self.path = os.path.join(output, ROWS)
        settings = json.loads(json.dumps(settings))  # as it reads back from the file
        settings_path = os.path.join(output, SETTINGS)
        if os.path.exists(settings_path):
            with open(settings_path, encoding="utf-8") as handle:
                earlier = json.load(handle)
            if earlier != settings:
                changed = sorted(k for k in settings if earlier.get(k) != settings[k])
                raise ValueError(f"{output} holds a run with other settings "
                                 f"({', '.join(changed)}); use another --output")
        else:
            reports.write_json(settings_path, settings)
        self.rows = self._read()

    def _read(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as handle:
            data = handle.read()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # tail: text after the last newline
        rows = []
        for number, line in enumerate(complete, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as err:
                    raise ValueError(f"{self.path}: line {number} is not JSON ({err}); "
                                     "remove it to rerun that fold") from None
        if tail.strip():  # an append that a kill cut short: drop it, its fold runs again
            with open(self.path, "r+b") as handle:
                handle.truncate(len(data) - len(tail))
        return rows

    def done(self):
        """The (dataset, method, seed, fold) keys already run."""
        return {(r["dataset"], r["method"], r["seed"], r["fold"]) for r in self.rows}

    def append(self, row):
        """Records one finished fold, on disk before it is counted."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        self.rows.append(row)


def write_tables(output, rows, datasets, methods, wall, command):
    """results.csv, summary.json and results.md of the rows of these sets and methods.

    Returns:
      The markdown text of results.md.
    """
    rows = [r for r in rows if r["dataset"] in datasets and r["method"] in methods]
    summary = summarize(rows)
    reports.write_csv(os.path.join(output, "results.csv"), rows)
    reports.write_json(os.path.join(output, "summary.json"), {
        f"{d}|{m}": stats for (d, m), stats in summary.items()})
    failed = sorted({f"{r['dataset']}/{r['method']}: {r['error']}" for r in rows
                     if r.get("error")})
    several_seeds = len({r["seed"] for r in rows}) > 1
    text = "\n".join([
        "# Benchmark", "", f"Command: `{command}`",
        f"Wall time of this invocation: {wall:.0f} s", "",
        "## AUROC (mean over folds and seeds)", "",
        reports.metric_table(summary, datasets, methods, "auroc"),
        "## AUPRC (mean over folds and seeds)", "",
        reports.metric_table(summary, datasets, methods, "auprc"),
        "## Seconds per fit", "", reports.fit_time_table(summary, datasets, methods),
        *(["## AUROC mean +- std over folds and seeds", "",
           reports.metric_table(summary, datasets, methods, "auroc", with_std=True),
           "## AUROC per seed (mean over folds)", "",
           reports.seed_table(rows, datasets, methods)] if several_seeds else []),
        *(["## Notes and failures", "", *[f"- {f}" for f in failed], ""] if failed else []),
    ])
    reports.write_text(os.path.join(output, "results.md"), text)
    return text
