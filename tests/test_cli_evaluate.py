"""cli.evaluate and cli.benchmark end to end on tiny data sets (subprocesses)."""

import csv
import json
import os

import numpy as np
import pytest
from tiny import finish, labelled_blobs, start_module

pytestmark = pytest.mark.slow  # every test here reads the runs of one slow fixture

TINY = ["--epochs=1", "--target_epochs=1", "--num_modes=2", "--z_dim=4", "--d_hidden=8,8",
        "--g_hidden=8"]


def outcome(proc):
    """(exit code, stdout, stderr lines) of a started process."""
    result = finish(proc, timeout=600)
    return result.returncode, result.stdout, result.stderr.strip().splitlines()


def write_npz(path, n_normal=200, n_anomaly=10, seed=0):
    x, y = labelled_blobs(n_normal, n_anomaly, seed=seed)
    np.savez(path, X=x, y=y)
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every independent cli.evaluate run of this file, started together.

    Each process spends most of its time importing TensorFlow, so they share the cores
    instead of queueing. Returns {case: (folder, (exit code, stdout, stderr lines))}.
    """
    folder = tmp_path_factory.mktemp("evaluate")
    cases = {
        "evaluated": (write_npz(folder / "blobs.npz"),
                      ["--folds=3", "--methods=gmm,ocnn_neighbor,mmocgan_cat", "--plots", *TINY]),
        "unknown": (write_npz(folder / "unknown.npz", n_normal=50), ["--methods=gmm,nope"]),
        "small": (write_npz(folder / "small.npz", n_normal=2), ["--methods=gmm"]),
        "no_anomalies": (write_npz(folder / "none.npz", n_anomaly=0),
                         ["--methods=ocnn_neighbor", "--folds=2", "--verbose=0"]),
    }
    procs = {case: start_module("cli.evaluate", f"--data={data}", f"--output={folder / case}",
                                *args)
             for case, (data, args) in cases.items()}
    data_dir = folder / "data"
    data_dir.mkdir()
    write_npz(data_dir / "1_first.npz", seed=1)
    write_npz(data_dir / "2_second.npz", seed=2)
    procs["benchmark"] = start_module("cli.benchmark", *benchmark_args(folder))
    return {case: (folder / case, outcome(proc)) for case, proc in procs.items()}


def benchmark_args(folder, folds=2):
    return [f"--data_dir={folder / 'data'}", "--methods=gmm,ocnn_neighbor", f"--folds={folds}",
            f"--output={folder / 'benchmark'}"]


@pytest.fixture(scope="module")
def evaluated(runs):
    folder, (code, out, err) = runs["evaluated"]
    assert code == 0, err[-5:]
    return folder, out


def test_evaluate_writes_results_csv_json_table_and_figures(evaluated):
    folder, out = evaluated
    with open(folder / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["fold"]) for r in rows][:4] == [
        ("gmm", "0"), ("gmm", "1"), ("gmm", "2"), ("ocnn_neighbor", "0")]
    assert {"method", "fold", "auroc", "auprc", "f1_normal", "fit_s"} <= set(rows[0])
    gmm = [r for r in rows if r["method"] == "gmm"]
    assert all(float(r["auroc"]) > 0.95 for r in gmm)
    assert all(r["half_normal_accuracy"] for r in rows if r["method"] == "mmocgan_cat")
    results = json.loads((folder / "results.json").read_text())
    assert results["summary"]["gmm"]["auroc"][2] == 3
    table = (folder / "table.md").read_text()
    assert "| mmocgan_cat | D < 0.5 |" in table and "| gmm | 99.5th pct |" in table
    for name in ("figure1_modes_pca", "figure2_score_histograms", "figure4_modes_tsne",
                 "roc_curves", "pr_curves", "explanations"):
        assert (folder / "figures" / f"{name}.png").stat().st_size > 1000
    folds = [line for line in out.splitlines() if line.startswith("[")]
    assert len(folds) == 9 and folds[0].startswith("[1/9, ~") and " left] gmm seed 0 fold 0: " \
        in folds[0]
    assert folds[-1].startswith("[9/9] mmocgan_cat seed 0 fold 2: ")


def test_evaluate_plots_store_the_top_rows_explanations(evaluated):
    folder, _ = evaluated
    with np.load(folder / "figure_data.npz") as npz:
        data = dict(npz)
    scores, rows = data["score/mmocgan_cat"], data["explain_test_rows"]
    assert len(rows) == 6 and data["explain_attributions"].shape == (6, 4)
    # The six highest test scores, highest first: chosen by score alone.
    np.testing.assert_allclose(data["explain_scores"], np.sort(scores)[::-1][:6])
    np.testing.assert_allclose(scores[rows], data["explain_scores"])
    assert np.isfinite(data["explain_attributions"]).all()
    assert str(data["explain_unit"]) == "attribution (score units)"  # the paper variant
    assert list(data["feature_names"]) == ["f0", "f1", "f2", "f3"]
    # explain_rows number the rows of the data set: they are the test rows named.
    with np.load(folder.parent / "blobs.npz") as npz:
        x, y = npz["X"], npz["y"]
    np.testing.assert_array_equal(y[data["explain_rows"]], data["y_test"][rows])
    x_rows = x[data["explain_rows"]]
    x_test = data["x_test"][rows]  # standardised with the fold's training rows
    np.testing.assert_allclose((x_rows - x_rows.mean(0)) / x_rows.std(0),
                               (x_test - x_test.mean(0)) / x_test.std(0), atol=1e-4)
    np.testing.assert_array_equal(data["explain_modes"], data["mode_test"][rows])


@pytest.mark.parametrize("case, message", [
    ("unknown", "error: unknown method 'nope'; known: ocnn_neighbor"),
    ("small", "error: only 2 normal rows, fewer than 5 folds"),
])
def test_evaluate_bad_input_is_one_line_and_exit_2(runs, case, message):
    folder, (code, _, err) = runs[case]
    assert code == 2 and err[-1].startswith(message)
    assert not os.path.exists(folder)


def test_evaluate_without_anomalies_says_so_and_still_reports_normal_accuracy(runs):
    folder, (code, out, err) = runs["no_anomalies"]
    assert code == 0 and any(line.startswith("note: ") and "no anomalies" in line
                             for line in err)
    assert "fold" not in out  # --verbose=0: no line per fold
    with open(folder / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["auroc"] == "" and float(rows[0]["normal_accuracy"]) > 0.9


def test_benchmark_tables_every_dataset_and_resumes(runs):
    folder, (code, out, err) = runs["benchmark"]
    assert code == 0, err[-5:]
    lines = (folder / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * 2
    folds = [line for line in out.splitlines() if line.startswith(("first: [", "second: ["))]
    assert len(folds) == 8 and folds[0].startswith("first: [1/8, ~")
    assert folds[-1].startswith("second: [8/8] ocnn_neighbor seed 0 fold 1: ")
    table = (folder / "results.md").read_text()
    assert "| first |" in table and "| second |" in table and "| avg rank |" in table
    base = folder.parent
    again = start_module("cli.benchmark", *benchmark_args(base))
    other = start_module("cli.benchmark", *benchmark_args(base, folds=3))
    code, out, _ = outcome(again)  # everything done: nothing reruns
    assert code == 0 and "fold" not in out.split("# Benchmark")[0]
    assert len((folder / "rows.jsonl").read_text().splitlines()) == 8
    code, _, err = outcome(other)
    assert code == 2 and "other settings (folds)" in err[-1]
