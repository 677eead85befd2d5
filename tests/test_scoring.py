"""Offline scoring through an exported SavedModel, and the export/score CLIs."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tiny import ROOT, TINY_ARGS

from mmocgan_tf import data, export, scoring


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def write_csv(path, x, names):
    with open(path, "w") as f:
        f.write("id," + ",".join(names) + "\n")
        for i, row in enumerate(x):
            f.write(f"{i}," + ",".join(f"{v:.6f}" for v in row) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def run_and_export(tmp_path_factory):
    """cli.train --export_dir on a small CSV: (workdir, export base, feature names)."""
    folder = tmp_path_factory.mktemp("run")
    names = ["a", "b", "c"]
    x = np.random.default_rng(0).normal(size=(200, 3))
    csv = write_csv(folder / "train.csv", x, names)
    result = run("cli.train", f"--data={csv}", "--feature_columns=a,b,c",
                 f"--workdir={folder / 'work'}", f"--export_dir={folder / 'sm'}", *TINY_ARGS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exported SavedModel" in result.stdout
    return folder / "work", folder / "sm", names


def test_score_file_matches_the_savedmodel_whatever_the_chunk_size(run_and_export, tmp_path):
    _, base, names = run_and_export
    x = np.random.default_rng(1).normal(size=(50, 3)) * 2
    csv = write_csv(tmp_path / "new.csv", x[:, ::-1], names[::-1])  # other column order
    outputs = []
    for chunk in (7, 1000):
        out = tmp_path / f"scores{chunk}.csv"
        assert scoring.score_file(str(base), csv, str(out), chunk_rows=chunk) == 50
        outputs.append(np.loadtxt(out, delimiter=",", skiprows=1))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-7)
    signature = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    expected = signature(features=tf.constant(np.round(x, 6).astype("float32")))
    np.testing.assert_allclose(outputs[0][:, 0], expected["score"].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(outputs[0][:, 1], expected["is_anomaly"].numpy())
    np.testing.assert_array_equal(outputs[0][:, 2], expected["mode"].numpy())
    with open(tmp_path / "scores7.csv") as f:
        assert f.readline().strip() == "score,is_anomaly,mode"


def test_missing_columns_and_bad_cells_fail_without_leaving_output(run_and_export, tmp_path):
    _, base, _ = run_and_export
    wrong = write_csv(tmp_path / "wrong.csv", np.zeros((3, 2)), ["a", "x"])
    with pytest.raises(data.DataError, match="missing feature columns 'b', 'c'; extra.*'x'"):
        scoring.score_file(str(base), wrong, str(tmp_path / "out.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n4,oops,6\n")
    with pytest.raises(data.DataError, match="'b', row 2.*oops"):
        scoring.score_file(str(base), str(bad), str(tmp_path / "out.csv"), chunk_rows=1)
    assert sorted(os.listdir(tmp_path)) == ["bad.csv", "wrong.csv"]


def test_cli_export_writes_a_new_version_with_a_new_threshold(run_and_export):
    workdir, base, _ = run_and_export
    result = run("cli.export", f"--workdir={workdir}", f"--export_dir={base}",
                 "--threshold=0.75")
    assert result.returncode == 0, result.stderr[-2000:]
    newest = export.latest_version_dir(str(base))
    assert newest.endswith(os.sep + "2")
    assert export.read_metadata(newest)["threshold_score"] == pytest.approx(0.75)
    result = run("cli.export", f"--workdir={workdir}", f"--export_dir={base}", "--version=1")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error:")


def test_cli_score_end_to_end_and_bad_model_path(run_and_export, tmp_path):
    _, base, names = run_and_export
    csv = write_csv(tmp_path / "new.csv", np.zeros((4, 3)), names)
    result = run("cli.score", f"--model={base}", f"--data={csv}", f"--output={tmp_path}/o.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 5
    result = run("cli.score", f"--model={tmp_path}/none", f"--data={csv}",
                 f"--output={tmp_path}/p.csv")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no such model folder" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "p.csv").exists()
