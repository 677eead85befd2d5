"""SavedModel export: named signatures equal to the live model, versions, metadata.

The default variant is exported once for most tests; the paper variant (reference="none",
score 1 - D(x)), the local variant (reference="local", whose 300-component q is scored
in chunks of rows) and the flow variant (reference="flow", TFP bijectors in the graph) are
exported too, since each puts a different graph into the SavedModel.
"""

import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import TINY_EXPORT_MODEL, tiny_rows

from mmocgan_tf import MMOCGAN
from mmocgan_tf.deploy import export
from mmocgan_tf.model.references import mixtures as reference


def assert_outputs_equal(out, live):
    assert set(out) == {"score", "is_anomaly", "mode", "mode_probs"}
    np.testing.assert_allclose(out["score"].numpy(), live["score"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out["is_anomaly"].numpy(), live["is_anomaly"])
    np.testing.assert_array_equal(out["mode"].numpy(), live["mode"])
    np.testing.assert_allclose(out["mode_probs"].numpy(), live["mode_probs"], rtol=1e-5,
                               atol=1e-7)  # far rows have probabilities near 1e-30


@pytest.mark.parametrize("batch", [1, 7, 300])
def test_reloaded_savedmodel_gives_the_live_models_outputs(tiny_model, tiny_export, batch):
    signature = tf.saved_model.load(tiny_export).signatures["serving_default"]
    x = tiny_rows(batch, seed=batch)
    assert_outputs_equal(signature(features=tf.constant(x)), tiny_model.predict(x, verbose=0))


def test_score_signature_returns_the_score_alone(tiny_export):
    out = tf.saved_model.load(tiny_export).signatures["score"](features=tf.constant(tiny_rows(4)))
    assert list(out) == ["score"]


def test_feature_names_signature_returns_the_names_in_input_order(tiny_export):
    """What a server's client maps table columns by; a dummy scalar, since Predict needs one."""
    out = tf.saved_model.load(tiny_export).signatures["feature_names"](unused=tf.constant(0.0))
    assert list(out) == ["feature_names"]
    assert out["feature_names"].numpy().tolist() == [b"a", b"b", b"c"]
    assert export.read_metadata(tiny_export)["signatures"]["feature_names"] == {
        "inputs": ["unused"], "outputs": ["feature_names"]}


def test_saved_model_cli_lists_named_signatures(tiny_export):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--dir", tiny_export, "--all"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    for name in ("signature_def['serving_default']", "signature_def['score']",
                 "signature_def['feature_names']", "signature_def['explain']",
                 "inputs['unused']", "inputs['features']", "outputs['is_anomaly']",
                 "outputs['mode_probs']", "outputs['attributions']"):
        assert name in result.stdout
    assert "args_0" not in result.stdout and "output_0" not in result.stdout


def assert_explain_agrees(path, model, x):
    """The export's explain signature gives the in-process MMOCGAN.explain and the mode."""
    out = tf.saved_model.load(path).signatures["explain"](features=tf.constant(x))
    assert set(out) == {"attributions", "mode"}
    assert out["attributions"].shape == x.shape
    # Up to float rounding: the in-process call pads every batch to one shape.
    np.testing.assert_allclose(out["attributions"].numpy(), model.explain(x), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(out["mode"].numpy(), model.predict(x, verbose=0)["mode"])
    assert export.read_metadata(path)["signatures"]["explain"] == {
        "inputs": ["features"], "outputs": ["attributions", "mode"]}


def test_explain_signature_gives_the_in_process_attributions(tiny_model, tiny_export):
    assert_explain_agrees(tiny_export, tiny_model, tiny_rows(300, seed=3))


def test_metadata_names_features_and_threshold(tiny_model, tiny_export):
    meta = export.read_metadata(tiny_export)
    assert meta["feature_names"] == ["a", "b", "c"]
    assert meta["num_modes"] == 2 and meta["package_version"]
    # The default variant's score is -normality, so its threshold is -normality_threshold.
    assert meta["threshold_score"] == pytest.approx(-float(tiny_model.normality_threshold.numpy()))
    assert len(meta["training_statistics"]["feature_mean"]) == 3


def test_versions_count_up_and_are_never_overwritten(tiny_model, tmp_path):
    base = str(tmp_path / "m")
    assert export.export_saved_model(tiny_model, base).endswith(os.sep + "1")
    assert export.export_saved_model(tiny_model, base).endswith(os.sep + "2")
    before = os.listdir(os.path.join(base, "1"))
    with pytest.raises(export.ExportError, match="never overwritten"):
        export.export_saved_model(tiny_model, base, version=1)
    assert os.listdir(os.path.join(base, "1")) == before
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary folders left behind
    assert export.latest_version_dir(base) == os.path.join(base, "2")


VARIANTS = {"none": dict(reference="none"),
            "local": dict(reference="local", reference_broad_weight=0.0),
            "flow": dict(reference="flow", reference_flow_share=0.5, reference_flow_steps=50)}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, tmp_path_factory):
    """(name, fitted model, reloaded serving_default, path): a variant other than the default."""
    keras.utils.set_random_seed(0)  # else the weights depend on the tests that ran before
    m = MMOCGAN(num_features=3, **{**TINY_EXPORT_MODEL, **VARIANTS[request.param]})
    m.compile(steps_per_execution=4)
    m.fit(tiny_rows(200), epochs=1, batch_size=50, verbose=0)
    path = export.export_saved_model(m, str(tmp_path_factory.mktemp(request.param) / "m"))
    return request.param, m, tf.saved_model.load(path).signatures["serving_default"], path


def test_variant_savedmodel_gives_the_live_models_outputs(variant):
    name, model, signature, path = variant
    # The training rows (the quantile threshold flags 1 of them), new ones and far ones.
    x = np.concatenate([tiny_rows(200), tiny_rows(300, seed=5), tiny_rows(20, seed=6) * 30])
    live = model.predict(x, verbose=0)
    out = signature(features=tf.constant(x))
    assert_outputs_equal(out, live)
    meta = export.read_metadata(path)
    assert meta["model_config"]["reference"] == name
    if name == "none":  # the paper's score 1 - D(x) and its threshold, sigmoid(-logit)
        assert np.all((live["score"] >= 0) & (live["score"] <= 1))
        np.testing.assert_allclose(live["score"], 1 / (1 + np.exp(live["normality"])), rtol=1e-5)
        logit = float(model.normality_threshold.numpy())
        assert meta["threshold_score"] == pytest.approx(1 / (1 + np.exp(logit)))
    else:
        assert meta["threshold_score"] == pytest.approx(-float(model.normality_threshold.numpy()))
    assert live["is_anomaly"].any() and not live["is_anomaly"].all()
    score = out["score"].numpy()
    near = np.abs(score - meta["threshold_score"]) < 1e-5
    np.testing.assert_array_equal(out["is_anomaly"].numpy()[~near],
                                  score[~near] > meta["threshold_score"])


def test_variant_explain_signature_gives_the_in_process_attributions(variant):
    name, model, _, path = variant
    assert_explain_agrees(path, model, np.concatenate([tiny_rows(50, seed=8),
                                                       tiny_rows(5, seed=9) * 30]))


@pytest.mark.parametrize("variant", ["local"], indirect=True)
def test_local_variant_scores_more_rows_than_one_chunk(variant):
    """Above one chunk of rows the export scores q in chunks (log_prob_in_chunks's map_fn):
    every row must get its own density, as in the live model's one-chunk batches."""
    _, model, signature, _ = variant
    components = reference.LOCAL_COMPONENTS + 1
    chunk = reference.MAX_CHUNK_FLOATS // (components * model.num_features)
    x = tiny_rows(chunk + 1001, seed=7)  # two chunks, the second one padded
    live = model.predict(x, batch_size=4096, verbose=0)  # each batch in one chunk
    assert_outputs_equal(signature(features=tf.constant(x)), live)


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(tiny_model, tmp_path):
    """kill -9 skips the clean-up; the next export into the base removes what it left."""
    base = tmp_path / "m"
    base.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # its pid names no process now
    host = socket.gethostname()
    stale = [f".tmp-1-{host}-{gone.pid}-k2j3h4g5", ".tmp-2-k2j3h4g5"]  # the old name, no pid
    kept = [f".tmp-1-{host}-{os.getpid()}-k2j3h4g5",  # an export at work
            f".tmp-1-elsewhere-{gone.pid}-k2j3h4g5",  # another machine's
            ".tmp-notes", "notes"]
    for name in stale + kept:
        (base / name).mkdir()
        (base / name / "saved_model.pb").write_bytes(b"half")
    assert not any(name.isdigit() for name in stale + kept)  # TF Serving's versions: digits
    assert export.next_version(str(base)) == 1
    previous = os.umask(0o022)
    try:
        path = export.export_saved_model(tiny_model, str(base))
    finally:
        os.umask(previous)
    assert path == str(base / "1")
    assert sorted(os.listdir(base)) == sorted(["1", *kept])
    assert os.stat(path).st_mode & 0o777 == 0o755  # not mkdtemp's 0700: a server reads it


def test_an_export_base_that_is_a_file_is_refused_before_anything_is_written(tiny_model,
                                                                             tmp_path):
    (tmp_path / "m").write_text("keep\n")
    with pytest.raises(export.ExportError, match="is a file, not a folder"):
        export.export_saved_model(tiny_model, str(tmp_path / "m"))
    assert (tmp_path / "m").read_text() == "keep\n" and os.listdir(tmp_path) == ["m"]


def test_a_value_far_beyond_the_training_rows_scores_finite_and_highest(tiny_model,
                                                                       tiny_export):
    """1e30 standardises to ~1e30 standard deviations; clipped, it scores finite, not inf."""
    x = np.concatenate([tiny_rows(50), np.float32([[1e30, 5, 5], [-1e30, 5, 5],
                                                   [5, 3e38, -3e38]])])
    live = tiny_model.predict(x, verbose=0)
    out = tf.saved_model.load(tiny_export).signatures["serving_default"](features=tf.constant(x))
    for scores in (live["score"], out["score"].numpy()):
        assert np.isfinite(scores).all()
        assert scores[50:].min() > scores[:50].max()
    assert live["is_anomaly"][50:].all() and out["is_anomaly"].numpy()[50:].all()
    assert np.isfinite(live["mode_probs"]).all()
