"""The k-fold protocol, the method registry, the classical and MMOCGAN-based methods."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from tiny import TINY_MODEL, labelled_blobs

from mmocgan_tf.evaluation import baselines, reports, suite
from mmocgan_tf.evaluation import protocol as evaluation
from mmocgan_tf.evaluation.baselines.base import Detector

# Tiny deep models: a fit takes a second or two on 2 cores.
GAN_OPTIONS = dict(TINY_MODEL, num_modes=2, target_epochs=2)


def test_folds_split_the_normal_rows_and_put_every_anomaly_in_every_test_set():
    x, y = labelled_blobs()
    folds = evaluation.normal_folds(y, folds=5, seed=0)
    held = np.concatenate([f.test[y[f.test] == 0] for f in folds])
    assert sorted(held) == sorted(np.flatnonzero(y == 0))
    for fold in folds:
        assert (y[fold.train] == 0).all()
        assert set(np.flatnonzero(y == 1)) <= set(fold.test)
        assert not set(fold.train) & set(fold.test)
    again = evaluation.normal_folds(y, folds=5, seed=0)
    assert all((a.train == b.train).all() for a, b in zip(folds, again, strict=True))


def test_fewer_normal_rows_than_folds_is_one_clear_error():
    with pytest.raises(evaluation.ProtocolError, match="only 3 normal rows, fewer than 5"):
        evaluation.normal_folds(np.array([0, 0, 0, 1]), folds=5)


def test_unknown_method_lists_the_known_ones_and_overrides_are_parsed():
    with pytest.raises(baselines.UnknownMethodError, match="known: ocnn_neighbor, ocsvm"):
        baselines.make_detector("nope")
    with pytest.raises(baselines.UnknownMethodError, match="mmocgan\\* methods only"):
        baselines.make_detector("gmm/k=2")
    assert baselines.split_spec("mmocgan_cat/num_modes=5/weight_fm=0.5") == (
        "mmocgan_cat", {"num_modes": 5, "weight_fm": 0.5})
    detector = baselines.make_detector("mmocgan_cat/num_modes=5", epochs=1)
    assert detector.model_options["num_modes"] == 5 and detector.name == "mmocgan_cat/num_modes=5"


@pytest.mark.parametrize("name", ["ocnn_neighbor", "ocsvm", "gmm"])
def test_classical_methods_rank_far_anomalies_first(name):
    x, y = labelled_blobs()
    fold = evaluation.normal_folds(y, 5)[0]
    row, scores = evaluation.run_fold(baselines.make_detector(name), x, y, fold)
    assert row["auroc"] > 0.95
    assert row["normal_accuracy"] is not None and "half_normal_accuracy" not in row
    assert scores.shape == (len(fold.test),)


def test_neighbor_threshold_leaves_each_training_row_out_of_its_own_neighbours():
    x, _ = labelled_blobs(n_anomaly=0)
    detector = baselines.make_detector("ocnn_neighbor").fit(x)
    assert (detector.anomaly_score(x) < detector.training_scores(x)).all()


@pytest.mark.parametrize("name", ["rgan", "ocan", "mmocgan_cat", "mmocgan_mix"])
def test_gan_methods_report_both_rules_and_refit_without_retracing(name):
    x, y = labelled_blobs()
    folds = evaluation.normal_folds(y, 5)
    detector = baselines.make_detector(name, epochs=2, model_options=dict(GAN_OPTIONS))
    row, scores = evaluation.run_fold(detector, x, y, folds[0])
    assert detector.is_gan and row["half_normal_accuracy"] is not None
    # The row's AUROC is that of the returned anomaly scores (higher = more anomalous)
    # against the fold's labels; the paper's variants may rank these far anomalies either way.
    assert row["auroc"] == pytest.approx(roc_auc_score(y[folds[0].test], scores), abs=1e-9)
    train_function = detector.model_.train_function
    evaluation.run_fold(detector, x, y, folds[1])
    assert detector.model_.train_function is train_function


def test_train_steps_sets_epochs_from_the_number_of_rows():
    detector = baselines.make_detector("mmocgan_cat", epochs=7, train_steps=40)
    assert detector.epochs_for(400) == 10 and detector.epochs_for(8000) == 1
    assert baselines.make_detector("mmocgan_cat", epochs=7).epochs_for(400) == 7


class Diverging(Detector):
    name = "diverging"

    def fit(self, x, seed=0):
        return self

    def anomaly_score(self, x):
        return np.full(len(x), np.nan)


class Failing(Diverging):
    name = "failing"

    def fit(self, x, seed=0):
        raise FloatingPointError("loss became NaN")


def test_a_diverged_or_failing_fit_becomes_an_error_row_and_the_run_goes_on():
    x, y = labelled_blobs()
    folds = evaluation.normal_folds(y, 2)
    runs = list(evaluation.iter_runs("blobs", x, y, [Diverging(), Failing()], folds))
    assert len(runs) == 4
    assert runs[0][0]["error"].startswith("scores are not finite")
    assert runs[2][0]["error"] == "FloatingPointError: loss became NaN"
    done = {("blobs", "diverging", 0, 0)}
    assert len(list(evaluation.iter_runs("blobs", x, y, [Diverging()], folds, done=done))) == 1


def test_summaries_ranks_and_tables():
    rows = [dict(dataset=d, method=m, seed=0, fold=f, auroc=a + 0.01 * f, fit_s=1.0)
            for d, scores in (("a", {"p": 0.9, "q": 0.8, "r": 0.9}),
                              ("b", {"p": 0.5, "q": 0.7, "r": 0.6}))
            for m, a in scores.items() for f in range(2)]
    summary = evaluation.summarize(rows)
    assert summary[("a", "p")]["auroc"] == pytest.approx((0.905, 0.005, 2))
    ranks, used = evaluation.average_ranks(summary, ["a", "b"], ["p", "q", "r"])
    assert used == ["a", "b"]
    assert ranks == pytest.approx({"p": (1.5 + 3) / 2, "q": (3 + 1) / 2, "r": (1.5 + 2) / 2})
    table = reports.metric_table(summary, ["a", "b"], ["p", "q", "r"])
    assert "| avg rank | 2.25 | 2.00 | 1.75 |" in table and "**0.905**" in table
    assert "| p | 99.5th pct |" in reports.table1(summary, "a", ["p"])


def test_every_ablation_variant_builds_with_its_override():
    for specs in baselines.ABLATIONS.values():
        for spec in specs:
            detector = baselines.make_detector(spec, epochs=1)
            _, overrides = baselines.split_spec(spec)
            assert all(detector.model_options[k] == v for k, v in overrides.items())
    assert baselines.make_detector("mmocgan_mix").model_options["prior"] == "mix"
    # The paper's variants stay the paper's whatever options the command line passes.
    paper = baselines.make_detector("mmocgan_cat", model_options={"reference": "gmm"})
    assert paper.model_options["reference"] == "none" and paper.is_gan
    default = baselines.make_detector("mmocgan", model_options={"num_modes": 4})
    assert default.model_options["num_modes"] == 4 and not default.is_gan
    assert baselines.make_detector("ocan").model_options["reference"] == "none"


def test_seed_table_gives_each_seeds_fold_mean_and_their_spread():
    rows = [dict(dataset="d", method="m", seed=s, fold=f, auroc=a)
            for s, values in ((0, (0.8, 0.9)), (1, (0.6, 0.7))) for f, a in enumerate(values)]
    rows.append(dict(dataset="d", method="one_seed", seed=0, fold=0, auroc=0.5))
    table = reports.seed_table(rows, ["d"], ["m", "one_seed"])
    assert "| d | m | 0.850 / 0.650 | 0.200 |" in table and "one_seed" not in table


def test_run_log_drops_a_cut_short_last_line_and_names_a_broken_one(tmp_path):
    """A kill during an append leaves half a line: it is dropped (its fold runs again) and
    the next append starts on a line of its own; a broken earlier line names file and line."""
    settings = {"folds": 2}
    log = suite.RunLog(tmp_path, settings)
    row = {"dataset": "d", "method": "m", "seed": 0, "fold": 0, "auroc": 0.9}
    log.append(row)
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write('{"dataset": "d", "method": "m", "se')  # cut short
    resumed = suite.RunLog(tmp_path, settings)
    assert resumed.rows == [row] and resumed.done() == {("d", "m", 0, 0)}
    resumed.append({**row, "fold": 1})
    assert len(suite.RunLog(tmp_path, settings).rows) == 2
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write("not json\n")
    with pytest.raises(ValueError, match=r"rows.jsonl: line 3 is not JSON"):
        suite.RunLog(tmp_path, settings)
    with pytest.raises(ValueError, match="other settings"):
        suite.RunLog(tmp_path, {"folds": 3})
