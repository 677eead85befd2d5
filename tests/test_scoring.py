"""Offline scoring through an exported SavedModel, and the export/score CLIs.

cli.export's new thresholds are checked where they act: in the exported graph's is_anomaly
on the run's own training rows, for the default variant (score -log p) and the paper's
(score 1 - D(x), whose threshold maps through a sigmoid). Its runs are subprocesses started
together, since each spends most of its time importing TensorFlow.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import TINY_ARGS, expected_flagged, finish, run_module, start_module

from mmocgan_tf.config import ModelConfig, TrainConfig
from mmocgan_tf.data import loading as data
from mmocgan_tf.deploy import export, scoring
from mmocgan_tf.training import fit as training


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
    result = run_module("cli.train", f"--data={csv}", "--feature_columns=a,b,c",
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


@pytest.fixture(scope="module")
def paper_workdir(run_and_export):
    """A paper-variant (reference="none") run on the same CSV, trained in this process."""
    folder = run_and_export[0].parent
    config = TrainConfig(
        data=str(folder / "train.csv"), feature_columns=("a", "b", "c"),
        workdir=str(folder / "paper"), epochs=2, batch_size=50, steps_per_execution=4,
        verbose=0, model=ModelConfig(reference="none", num_modes=3, z_dim=4,
                                     d_hidden=(16, 16), g_hidden=(16,), target_epochs=2))
    training.train(config)
    return folder / "paper"


def training_rows(workdir):
    with open(workdir / "config.json") as f:
        return data.load_split(TrainConfig.from_dict(json.load(f)))[1]


def exported_outputs(base, x):
    version = export.latest_version_dir(str(base))
    out = tf.saved_model.load(version).signatures["serving_default"](features=tf.constant(x))
    return {k: v.numpy() for k, v in out.items()}, export.read_metadata(version)


@pytest.fixture(scope="module")
def cli_exports(run_and_export, paper_workdir):
    """The cli.export runs, started together; the paper's --threshold is its median score.

    The paper's --threshold_quantile goes through export_workdir in this process instead
    (the function cli.export calls), which saves a fifth TensorFlow import.
    """
    workdir, base, _ = run_and_export
    folder = workdir.parent
    paper = keras.saving.load_model(paper_workdir / "model.keras")
    median = float(np.median(paper.predict(training_rows(paper_workdir), verbose=0)["score"]))
    runs = {"threshold": (workdir, base, "--threshold=0.75"),
            "clash": (workdir, base, "--version=1"),
            "quantile": (workdir, folder / "q", "--threshold_quantile=0.9"),
            "paper_threshold": (paper_workdir, folder / "pt", f"--threshold={median:.6f}")}
    procs = {name: start_module("cli.export", f"--workdir={w}", f"--export_dir={b}", flag)
             for name, (w, b, flag) in runs.items()}
    # The paper's quantile path in this process, meanwhile: what cli.export calls.
    export.export_workdir(str(paper_workdir), str(folder / "pq"), threshold_quantile=0.8)
    return {name: finish(proc) for name, proc in procs.items()}, float(f"{median:.6f}")


@pytest.mark.slow
def test_cli_export_writes_a_new_version_with_a_new_threshold(run_and_export, cli_exports):
    _, base, _ = run_and_export
    result = cli_exports[0]["threshold"]
    assert result.returncode == 0, result.stderr[-2000:]
    newest = export.latest_version_dir(str(base))
    assert newest.endswith(os.sep + "2")
    assert export.read_metadata(newest)["threshold_score"] == pytest.approx(0.75)
    result = cli_exports[0]["clash"]
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error:")


@pytest.mark.slow
@pytest.mark.parametrize("name,quantile", [("quantile", 0.9), ("paper_quantile", 0.8)])
def test_cli_export_threshold_quantile_flags_that_share_of_training_rows(
        run_and_export, paper_workdir, cli_exports, name, quantile):
    result = cli_exports[0].get(name)  # None: exported in-process
    assert result is None or result.returncode == 0, result.stderr[-2000:]
    workdir = paper_workdir if name.startswith("paper") else run_and_export[0]
    x = training_rows(workdir)
    base = workdir.parent / {"quantile": "q", "paper_quantile": "pq"}[name]
    out, meta = exported_outputs(base, x)
    assert meta["model_config"]["reference"] == ("none" if name.startswith("paper") else "gmm")
    flagged = expected_flagged(len(x), 1 - quantile)
    assert out["is_anomaly"].sum() == flagged
    ranked = np.sort(out["score"])
    assert ranked[-flagged - 1] <= meta["threshold_score"] <= ranked[-flagged]
    np.testing.assert_array_equal(out["is_anomaly"], out["score"] > meta["threshold_score"])
    assert meta["threshold_score"] == pytest.approx(np.quantile(out["score"], quantile),
                                                    rel=1e-3)
    assert result is None or f"threshold score {meta['threshold_score']:.6g}" in result.stdout


@pytest.mark.slow
def test_cli_export_threshold_is_a_score_for_the_paper_variant(paper_workdir, cli_exports):
    results, threshold = cli_exports
    result = results["paper_threshold"]
    assert result.returncode == 0, result.stderr[-2000:]
    x = np.concatenate([training_rows(paper_workdir),
                        np.random.default_rng(3).normal(size=(100, 3)).astype("float32") * 4])
    out, meta = exported_outputs(paper_workdir.parent / "pt", x)
    assert meta["threshold_score"] == pytest.approx(threshold)
    # score = sigmoid(-logit) > t  <=>  logit < log((1 - t) / t)
    assert meta["threshold_normality"] == pytest.approx(np.log((1 - threshold) / threshold))
    assert abs(out["is_anomaly"][:200].sum() - 100) <= 2  # t: the training rows' median
    near = np.abs(out["score"] - threshold) < 1e-6
    np.testing.assert_array_equal(out["is_anomaly"][~near], out["score"][~near] > threshold)


@pytest.mark.slow
def test_cli_score_end_to_end_and_bad_model_path(run_and_export, tmp_path):
    _, base, names = run_and_export
    csv = write_csv(tmp_path / "new.csv", np.zeros((4, 3)), names)
    result = run_module("cli.score", f"--model={base}", f"--data={csv}",
                        f"--output={tmp_path}/o.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 5
    result = run_module("cli.score", f"--model={tmp_path}/none", f"--data={csv}",
                        f"--output={tmp_path}/p.csv")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no such model folder" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "p.csv").exists()
