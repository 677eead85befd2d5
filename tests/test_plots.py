"""mmocgan_tf.evaluation.plots and cli.plot: synthetic figure_data.npz in, PNG figures out."""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from tiny import ROOT, finish, start_module

pytest.importorskip("matplotlib", reason="the plots extra is not installed")

from mmocgan_tf.evaluation import plots  # noqa: E402
from mmocgan_tf.evaluation.plots.modes import budget_shares  # noqa: E402
from mmocgan_tf.evaluation.plots.scores import score_scale  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_FIGURES = {plots.FIGURE1, plots.FIGURE2, plots.FIGURE4, plots.ROC, plots.PR}


def write_figure_data(folder, n=200, t=60, d=5, modes=True, one_class=False, seed=0):
    """Writes a tiny random figure_data.npz in the layout cli.evaluate --plots uses."""
    rng = np.random.default_rng(seed)
    mode_train = rng.integers(0, 3, n)
    x_train = (rng.normal(size=(n, d)) + 3 * mode_train[:, None]).astype("float32")
    y_test = np.zeros(t, int) if one_class else (np.arange(t) % 4 == 0).astype(int)
    x_test = (rng.normal(size=(t, d)) + 6 * y_test[:, None]).astype("float32")
    arrays = {"x_train": x_train, "x_test": x_test, "y_test": y_test,
              "score/mmocgan_cat": rng.normal(size=t) + 2 * y_test,
              "score/pyod:KNN": np.exp(3 * rng.normal(size=t) + y_test)}  # extreme range
    if modes:
        arrays.update(mode_train=mode_train, mode_test=rng.integers(0, 3, t),
                      generated=rng.normal(0, 4, (40, d)).astype("float32"),
                      mode_method=np.array("mmocgan_cat"))
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, plots.FIGURE_DATA), **arrays)
    return str(folder)


def assert_pngs(paths, names):
    assert {os.path.basename(p) for p in paths} == names
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE, path
        assert os.path.getsize(path) > 5000, path


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return write_figure_data(tmp_path_factory.mktemp("plots") / "results")


def test_write_figures_writes_all_five_pngs(results_dir):
    notes = []
    with threadpool_limits(1):  # OpenMP t-SNE spin-waits badly on a few busy cores
        paths = plots.write_figures(results_dir, notes=notes)
    assert_pngs(paths, ALL_FIGURES)
    assert all(os.path.dirname(p) == os.path.join(results_dir, "figures") for p in paths)
    assert notes == []


def test_without_modes_figures_1_and_4_are_skipped(tmp_path):
    results = write_figure_data(tmp_path / "r", modes=False, one_class=True)
    notes = []
    paths = plots.write_figures(results, str(tmp_path / "out"), notes=notes)
    assert_pngs(paths, {plots.FIGURE2})  # one class: no ROC or PR either
    assert [note.split(":")[0] for note in notes] == [plots.FIGURE1, plots.FIGURE4, plots.ROC,
                                                      plots.PR]


def test_missing_or_incomplete_figure_data_raises_one_line(tmp_path):
    with pytest.raises(ValueError, match="no figure_data.npz in") as info:
        plots.write_figures(str(tmp_path))
    assert "\n" not in str(info.value)
    np.savez(tmp_path / plots.FIGURE_DATA, x_train=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="lacks required arrays: x_test, y_test, score"):
        plots.write_figures(str(tmp_path))
    assert not (tmp_path / "figures").exists()


def test_log_axis_only_when_the_score_range_is_extreme(tmp_path):
    rng = np.random.default_rng(0)
    assert score_scale(rng.normal(size=500)) == "linear"
    assert score_scale(rng.exponential(size=500)) == "linear"
    assert score_scale(np.exp(4 * rng.normal(size=500))) == "log"
    extreme = np.r_[rng.normal(size=500), -1e6]
    assert score_scale(extreme) == "symlog"
    assert score_scale(extreme, log_scale=False) == "linear"
    path = plots.figure2_score_histograms(extreme, [np.inf, 3.0, 4.0], tmp_path / "h.png", "x")
    assert_pngs([path], {"h.png"})


def test_held_out_pictures_of_a_training_run(tmp_path):
    rng = np.random.default_rng(0)
    y = (np.arange(120) % 6 == 0).astype(int)
    scores = rng.normal(size=120) + 3 * y
    paths = plots.heldout_figures(y, scores, 1.5, str(tmp_path / "figs"), "bundled:thyroid",
                                  threshold_label="threshold: 99.5th pct of training scores")
    assert_pngs(paths, {"scores.png", "roc.png", "pr.png"})
    one_class = plots.heldout_figures(np.zeros(30), scores[:30], 1.5, str(tmp_path / "one"),
                                      "x.csv")
    assert_pngs(one_class, {"scores.png"})  # no anomalies held out: no curves


def test_the_operating_point_is_where_the_threshold_flags_rows(tmp_path):
    from matplotlib import pyplot as plt

    from mmocgan_tf.evaluation.plots import scores as drawing

    y = np.array([0, 0, 0, 1, 1], bool)
    fig, ax = plt.subplots()
    drawing._mark_operating_point(ax, "roc", y, np.array([0.0, 1.0, 3.0, 2.0, 4.0]), 1.5,
                                  "black")
    drawing._mark_operating_point(ax, "pr", y, np.array([0.0, 1.0, 3.0, 2.0, 4.0]), 1.5,
                                  "black")
    (roc,), (pr,) = (line.get_xydata() for line in ax.lines)
    plt.close(fig)
    np.testing.assert_allclose(roc, [1 / 3, 1.0])  # FPR, TPR: 1 of 3 normal, both anomalies
    np.testing.assert_allclose(pr, [1.0, 2 / 3])  # recall, precision


def test_tsne_budget_is_shared_fairly_across_groups():
    assert budget_shares([1000, 10, 0], 100) == [90, 10, 0]
    assert budget_shares([1000, 1000, 1000], 2000) == [667, 667, 666]
    assert budget_shares([3, 2, 1], 2000) == [3, 2, 1]


@pytest.fixture(scope="module")
def cli_runs(results_dir, tmp_path_factory):
    """Both cli.plot runs, started together (each spends most of its time importing)."""
    folder = tmp_path_factory.mktemp("cli")
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    args = {"good": [f"--results={results_dir}", f"--output={folder / 'figs'}"],
            "bad_dir": [f"--results={folder / 'nope'}"]}
    procs = {name: start_module("cli.plot", *a, env=env) for name, a in args.items()}
    return {name: finish(proc) for name, proc in procs.items()}, folder


def test_cli_end_to_end(cli_runs):
    done, folder = cli_runs
    result = done["good"]
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout.split()
    assert_pngs(printed, ALL_FIGURES)
    assert all(os.path.dirname(p) == str(folder / "figs") for p in printed)


def test_cli_bad_dir_exits_2_with_one_error_line(cli_runs):
    result = cli_runs[0]["bad_dir"]
    assert result.returncode == 2
    # importing mmocgan_tf loads TensorFlow, whose C++ start-up lines come first
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no figure_data.npz"), result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
