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
ALL_FIGURES = {plots.FIGURE1, plots.FIGURE2, plots.FIGURE4, plots.ROC, plots.PR,
               plots.EXPLANATIONS}


def write_figure_data(folder, n=200, t=60, d=5, modes=True, one_class=False, seed=0,
                      explain=None):
    """Writes a tiny random figure_data.npz in the layout cli.evaluate --plots uses.

    explain (default: modes): with the top rows' explanations; without them, the file is
    one written before they were stored.
    """
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
    if modes if explain is None else explain:
        top = plots.top_rows(arrays["score/mmocgan_cat"])
        arrays.update(explain_attributions=rng.normal(size=(len(top), d)).astype("float32"),
                      explain_scores=arrays["score/mmocgan_cat"][top],
                      explain_modes=rng.integers(0, 3, len(top)), explain_test_rows=top,
                      explain_rows=1000 + top, explain_unit=np.array(plots.SCORE_UNITS),
                      feature_names=np.array([f"col{i}" for i in range(d)]))
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


def test_write_figures_writes_all_six_pngs(results_dir):
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
                                                      plots.PR, plots.EXPLANATIONS]


def test_an_older_figure_data_without_explanations_still_draws_the_rest(tmp_path):
    results = write_figure_data(tmp_path / "r", d=2, explain=False)
    notes = []
    with threadpool_limits(1):
        paths = plots.write_figures(results, str(tmp_path / "out"), notes=notes)
    assert_pngs(paths, ALL_FIGURES - {plots.EXPLANATIONS})
    assert notes == [f"{plots.EXPLANATIONS}: no attributions in {plots.FIGURE_DATA}"]


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("explain_unit"), "explain_attributions, .* without explain_unit"),
    (lambda a: a.update(explain_scores=a["explain_scores"][:-1]),
     r"explain_scores has shape \(5,\), expected \(6,\)"),
    (lambda a: a.update(explain_attributions=a["explain_attributions"][:, :-1]),
     r"explain_attributions has shape \(6, 4\), expected \(m, 5\)"),
    (lambda a: a.update(explain_test_rows=a["explain_test_rows"] + 60),
     "explain_test_rows must be positions in x_test"),
    (lambda a: a.update(feature_names=np.array(["a", "b"])),
     r"feature_names has shape \(2,\), expected \(5,\)"),
])
def test_inconsistent_explanations_in_figure_data_raise_one_line(tmp_path, change, message):
    path = os.path.join(write_figure_data(tmp_path), plots.FIGURE_DATA)
    with np.load(path) as npz:
        arrays = dict(npz)
    change(arrays)
    np.savez(path, **arrays)
    with pytest.raises(plots.FigureDataError, match=message) as info:
        plots.load_figure_data(str(tmp_path))
    assert "\n" not in str(info.value)


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


@pytest.fixture
def drawn(monkeypatch):
    """What explanation_figure drew: [(title, y tick labels top first, bar widths top
    first, x label)] per visible panel, and the figure's title, before it is closed."""
    from mmocgan_tf.evaluation.plots import explanations

    seen = {}

    def capture(fig, path):
        panels = []
        for ax in fig.axes:
            if ax.get_visible():
                ticks = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels()),
                                   strict=True), reverse=True)
                bars = sorted(((p.get_y(), p.get_width()) for p in ax.patches), reverse=True)
                panels.append((ax.get_title(), [t for _, t in ticks], [w for _, w in bars],
                               ax.get_xlabel()))
        seen.update(panels=panels, title=fig.texts[0].get_text() if fig.texts else "")
        return real(fig, path)

    real = explanations.save_figure
    monkeypatch.setattr(explanations, "save_figure", capture)
    return seen


def test_explanations_picture_has_a_panel_per_row_largest_bar_on_top(tmp_path, drawn):
    attributions = np.array([[0.5, 3.0, 0.1], [2.0, 0.0, 1.0]])
    path = plots.explanation_figure(attributions, ["temp", "pressure", "flow"], [2, 0],
                                    [13.31, 4.0], [4711, 12], tmp_path / "e.png",
                                    labels=[1, 0])
    assert_pngs([path], {"e.png"})
    (title0, names0, widths0, unit0), (title1, names1, _, _) = drawn["panels"]
    assert title0 == "row 4711 · mode 2 · score 13.3 · labelled anomaly"
    assert title1.startswith("row 12 · mode 0 · score 4 ")
    assert names0 == ["pressure", "temp", "flow"] and widths0 == [3.0, 0.5, 0.1]
    assert names1 == ["temp", "flow", "pressure"]
    assert unit0 == plots.NATS == "attribution (nats)"


def test_explanations_of_many_features_keep_each_rows_largest(tmp_path, drawn):
    rng = np.random.default_rng(0)
    d, limit = 25, 10
    names = [f"feature {j}" for j in range(d)]
    attributions = rng.exponential(size=(7, d))
    path = plots.explanation_figure(attributions, names, np.zeros(7), np.arange(7.0),
                                    np.arange(7), tmp_path / "many.png", max_features=limit)
    assert_pngs([path], {"many.png"})
    assert len(drawn["panels"]) == 7  # 4 x 2 panels, the eighth hidden
    for values, (_, shown, widths, _) in zip(attributions, drawn["panels"], strict=True):
        largest = np.argsort(-values)[:limit]
        assert shown == [names[j] for j in largest]  # nats stand alone: the rest left out
        np.testing.assert_allclose(widths, values[largest])
    assert f"each row's {limit} largest of {d} features, the other 15" in drawn["title"]

    # The paper variant's integrated gradients add up: the rest become one summed bar.
    signed = rng.normal(size=(2, d))
    path = plots.explanation_figure(signed, names, [1, 1], [0.9, 0.8], [3, 4],
                                    tmp_path / "paper.png", unit=plots.SCORE_UNITS,
                                    max_features=limit)
    assert_pngs([path], {"paper.png"})
    _, shown, widths, unit = drawn["panels"][0]
    largest = np.argsort(-np.abs(signed[0]))[:limit]
    assert shown == [names[j] for j in largest] + [f"other {d - limit} features"]
    np.testing.assert_allclose(widths[-1], np.delete(signed[0], largest).sum())
    assert unit == "attribution (score units)" and "1 - D(x)" in drawn["title"]


def test_explanations_picture_refuses_mismatched_arrays(tmp_path):
    ones = np.ones((2, 3))
    with pytest.raises(ValueError, match="2 feature names for 3 attribution columns"):
        plots.explanation_figure(ones, ["a", "b"], [0, 0], [1, 1], [0, 1], tmp_path / "x.png")
    with pytest.raises(ValueError, match="1 scores for 2 rows"):
        plots.explanation_figure(ones, list("abc"), [0, 0], [1], [0, 1], tmp_path / "x.png")
    assert plots.explanation_figure(np.ones((0, 3)), list("abc"), [], [], [],
                                    tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


class _FakeModel:
    """What top_explanations reads of a model: explain, call's mode, names, reference."""

    feature_names = ("a", "b", "c")

    def __init__(self, paper):
        self.reference = type("Reference", (), {"mode_mixture": None if paper else object()})
        self.explained = []

    def explain(self, x, batch_size=1024):
        self.explained.append(np.array(x))
        return x * 10

    def __call__(self, x):
        return {"mode": np.round(x[:, 0]).astype(np.int32)}


@pytest.mark.parametrize("paper, unit", [(False, plots.NATS), (True, plots.SCORE_UNITS)])
def test_the_rows_explained_are_the_highest_scores_labels_unused(tmp_path, paper, unit):
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    scores = np.array([5, 1, np.nan, 9, 0, 7, 2, 8, 3, 6], float)
    model = _FakeModel(paper)
    top = plots.top_explanations(model, x, scores, count=4)
    np.testing.assert_array_equal(top["index"], [3, 7, 5, 9])  # the NaN score is skipped
    np.testing.assert_array_equal(model.explained[0], x[[3, 7, 5, 9]])
    np.testing.assert_allclose(top["attributions"], 10 * x[[3, 7, 5, 9]])
    np.testing.assert_array_equal(top["modes"], [9, 21, 15, 27])
    np.testing.assert_array_equal(top["scores"], [9, 8, 7, 6])
    assert list(top["feature_names"]) == ["a", "b", "c"] and top["unit"] == unit
    y = np.zeros(10)  # not one anomaly held out: the same rows are explained
    path = plots.heldout_explanations(model, x, scores, str(tmp_path), "x.csv", y=y, count=4)
    assert_pngs([path], {plots.EXPLANATIONS})
    np.testing.assert_array_equal(model.explained[1], x[[3, 7, 5, 9]])


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
