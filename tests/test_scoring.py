"""Offline scoring through an exported SavedModel, and the export/score CLIs.

cli.export's new thresholds are checked where they act: in the exported graph's is_anomaly
on the run's own training rows, for the default variant (score -log p, unbounded) and the
paper's (score 1 - D(x) in (0, 1), whose threshold maps through a sigmoid). Its runs are
subprocesses started together, since each spends most of its time importing TensorFlow.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import TINY_ARGS, expected_flagged, finish, run_module, start_module, tiny_rows

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


def median_score(workdir):
    """The median score of a run's training rows, as written on a command line."""
    model = keras.saving.load_model(workdir / "model.keras")
    return float(f"{np.median(model.predict(training_rows(workdir), verbose=0)['score']):.6f}")


@pytest.fixture(scope="module")
def cli_exports(run_and_export, paper_workdir):
    """The cli.export runs, started together, and the thresholds taken from the scores.

    "threshold" is the old example value 0.9 on the default model, whose score is a
    negative log-density; "median" and "paper_threshold" are each run's median training
    score. The --threshold_quantile runs go through export_workdir in this process instead
    (the function cli.export calls), which saves two TensorFlow imports.
    """
    workdir, base, _ = run_and_export
    folder = workdir.parent
    medians = {"median": median_score(workdir), "paper_threshold": median_score(paper_workdir)}
    runs = {"threshold": (workdir, base, "--threshold=0.9"),
            "clash": (workdir, base, "--version=1"),
            "median": (workdir, folder / "m", f"--threshold={medians['median']}"),
            "contamination": (workdir, folder / "c", "--contamination=0.1"),
            "paper_threshold": (paper_workdir, folder / "pt",
                                f"--threshold={medians['paper_threshold']}")}
    procs = {name: start_module("cli.export", f"--workdir={w}", f"--export_dir={b}", flag)
             for name, (w, b, flag) in runs.items()}
    # The quantile paths in this process, meanwhile: what cli.export calls.
    export.export_workdir(str(workdir), str(folder / "q"), threshold_quantile=0.9)
    export.export_workdir(str(paper_workdir), str(folder / "pq"), threshold_quantile=0.8)
    return {name: finish(proc) for name, proc in procs.items()}, medians


@pytest.mark.slow
def test_cli_export_writes_a_new_version_with_a_new_threshold(run_and_export, cli_exports):
    """0.9 is a real score threshold now, flagging nearly every row: exported, with a warning."""
    workdir, base, _ = run_and_export
    result = cli_exports[0]["threshold"]
    assert result.returncode == 0, result.stderr[-2000:]
    newest = export.latest_version_dir(str(base))
    assert newest.endswith(os.sep + "2")
    x = training_rows(workdir)
    out, meta = exported_outputs(base, x)
    assert meta["threshold_score"] == pytest.approx(0.9)
    np.testing.assert_array_equal(out["is_anomaly"], out["score"] > np.float32(0.9))
    assert meta["training_flagged_share"] == pytest.approx(out["is_anomaly"].mean())
    assert meta["training_flagged_share"] > 0.9
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "of the training rows" in warnings[0], result.stderr[-2000:]
    result = cli_exports[0]["clash"]
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error:")


@pytest.mark.slow
def test_cli_export_threshold_in_the_default_models_units_flags_rows_above_it(
        run_and_export, cli_exports):
    workdir = run_and_export[0]
    results, medians = cli_exports
    result = results["median"]
    assert result.returncode == 0, result.stderr[-2000:]
    x = training_rows(workdir)
    out, meta = exported_outputs(workdir.parent / "m", x)
    threshold = medians["median"]
    assert threshold > 1  # -log p(x): not a probability
    assert meta["threshold_score"] == pytest.approx(threshold)
    # score = -normality exactly, so the decision is exactly score > t (in float32)
    np.testing.assert_array_equal(out["is_anomaly"], out["score"] > np.float32(threshold))
    assert abs(out["is_anomaly"].sum() - len(x) / 2) <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name,quantile", [("quantile", 0.9), ("contamination", 0.9),
                                           ("paper_quantile", 0.8)])
def test_cli_export_quantile_or_contamination_flags_that_share_of_training_rows(
        run_and_export, paper_workdir, cli_exports, name, quantile):
    result = cli_exports[0].get(name)  # None: exported in-process
    assert result is None or result.returncode == 0, result.stderr[-2000:]
    workdir = paper_workdir if name.startswith("paper") else run_and_export[0]
    x = training_rows(workdir)
    base = workdir.parent / {"quantile": "q", "contamination": "c", "paper_quantile": "pq"}[name]
    out, meta = exported_outputs(base, x)
    assert meta["model_config"]["reference"] == ("none" if name.startswith("paper") else "gmm")
    flagged = expected_flagged(len(x), 1 - quantile)
    assert out["is_anomaly"].sum() == flagged
    assert meta["training_flagged_share"] == pytest.approx(flagged / len(x))
    ranked = np.sort(out["score"])
    assert ranked[-flagged - 1] <= meta["threshold_score"] <= ranked[-flagged]
    np.testing.assert_array_equal(out["is_anomaly"], out["score"] > meta["threshold_score"])
    assert meta["threshold_score"] == pytest.approx(np.quantile(out["score"], quantile),
                                                    rel=1e-3)
    if result is not None:
        assert f"threshold score {meta['threshold_score']:.6g}" in result.stdout
        assert "warning" not in result.stderr


@pytest.mark.slow
def test_cli_export_threshold_is_a_score_for_the_paper_variant(paper_workdir, cli_exports):
    results, medians = cli_exports
    result, threshold = results["paper_threshold"], medians["paper_threshold"]
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


@pytest.mark.parametrize("options,message", [
    (dict(threshold=1.5), r"bad threshold: .*1\.5 is not in \(0, 1\)"),
    (dict(threshold=5.0, contamination=0.1), "not threshold and contamination"),
    (dict(threshold_quantile=0.9, contamination=0.1), "not threshold_quantile and contam"),
    (dict(contamination=0.6), r"contamination=0\.6 must be in \(0, 0\.5\]"),
    (dict(threshold=float("nan")), "finite"),
])
def test_export_workdir_refuses_bad_thresholds_in_one_line(paper_workdir, tmp_path, options,
                                                           message):
    """The paper variant's score is 1 - D(x), so its reference refuses 1.5."""
    with pytest.raises(export.ExportError, match=message) as info:
        export.export_workdir(str(paper_workdir), str(tmp_path / "sm"), **options)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "sm").exists()


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


@pytest.mark.parametrize("umask, mode", [(0o002, 0o664), (0o077, 0o600)])
def test_scored_rows_get_the_umasks_permissions_and_far_rows_finite_scores(tiny_export,
                                                                          tmp_path, umask,
                                                                          mode):
    """As a plain open() would make it (not a temporary's 0600); 1e30 scores finite."""
    x = np.concatenate([tiny_rows(5), [[1e30, 5, 5]]])
    csv = write_csv(tmp_path / "rows.csv", x, ["a", "b", "c"])
    previous = os.umask(umask)
    try:
        assert scoring.score_file(os.path.dirname(tiny_export), csv,
                                  str(tmp_path / "out.csv")) == 6
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "out.csv").st_mode & 0o777 == mode
    scores = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    assert np.isfinite(scores).all() and scores[5, 0] == scores[:, 0].max() and scores[5, 1] == 1
