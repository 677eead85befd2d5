"""Explanations through the export: the explain signature, both clients, the two CLIs.

Every number is checked against the in-process MMOCGAN.explain of the session's tiny model
(conftest.py), whose export the stand-in server (mmocgan_tf/deploy/serving/standin/) serves
over gRPC and REST on 127.0.0.1. Batches are padded in-process and not over the wire, so
the comparisons allow for the last float digits (rtol = atol = 1e-4). The CLI runs are
subprocesses started together, since each spends most of its time importing TensorFlow.
"""

import csv
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import finish, start_module, tiny_rows

from mmocgan_tf.deploy import export, scoring, server_scoring
from mmocgan_tf.deploy.serving import RestClient, ServingError
from mmocgan_tf.deploy.serving.contract import top_features

pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")

from mmocgan_tf.deploy.serving import GrpcClient  # noqa: E402
from mmocgan_tf.deploy.serving.standin import StandInServer  # noqa: E402

NAMES = ["a", "b", "c"]
TOLERANCE = dict(rtol=1e-4, atol=1e-4)
EXPLAIN_HEADER = ["score", "is_anomaly", "mode", "attribution_a", "attribution_b",
                  "attribution_c", "top_features"]


def rows(n=25, seed=3):
    """Rows like the training rows, a few pushed far out in one feature each."""
    x = tiny_rows(n, seed)
    x[0, 0] += 8  # a: scale 1
    x[1, 1] += 80  # b: scale 10
    x[2, 2] += 800  # c: scale 100
    return x


def write_csv(path, x, order=(2, 0, 1)):
    """x as a CSV with an id column and the features in another order (c,a,b)."""
    with open(path, "w") as f:
        f.write("id," + ",".join(NAMES[j] for j in order) + "\n")
        for i, row in enumerate(x):
            f.write(f"{i}," + ",".join(repr(float(row[j])) for j in order) + "\n")
    return path


def read_table(path):
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    return table[0], table[1:]


@pytest.fixture(scope="module")
def served(tiny_model, tiny_export, tmp_path_factory):
    """The stand-in serving base/tiny/1 (the shared export) and base/legacy/1 (no explain)."""
    base = tmp_path_factory.mktemp("explain_served")
    shutil.copytree(tiny_export, base / "tiny" / "1")
    legacy = keras.export.ExportArchive()
    legacy.track(tiny_model)
    legacy.add_endpoint("serving_default", lambda features: tiny_model(features),
                        input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
    legacy.write_out(str(base / "legacy" / "1"), verbose=False)
    os.makedirs(base / "legacy" / "1" / "assets", exist_ok=True)  # as older exports had it
    shutil.copy(os.path.join(tiny_export, "assets", export.METADATA_FILE),
                base / "legacy" / "1" / "assets")
    with StandInServer(base) as standin:
        yield standin, base


@pytest.fixture(scope="module")
def want(tiny_model):
    """The in-process answers for rows(): attributions [25, 3] and mode [25]."""
    x = rows()
    return x, tiny_model.explain(x), tiny_model.predict(x, verbose=0)["mode"]


def test_the_exported_signature_equals_the_in_process_explain(tiny_export, want):
    x, attributions, mode = want
    signature = tf.saved_model.load(tiny_export).signatures["explain"]
    out = signature(features=tf.constant(x))
    assert set(out) == {"attributions", "mode"}
    assert out["attributions"].dtype == tf.float32 and out["mode"].dtype == tf.int32
    np.testing.assert_allclose(out["attributions"].numpy(), attributions, **TOLERANCE)
    np.testing.assert_array_equal(out["mode"].numpy(), mode)
    # The far-out feature of each of the first three rows is its largest attribution.
    assert attributions[:3].argmax(axis=1).tolist() == [0, 1, 2]
    metadata = export.read_metadata(tiny_export)
    assert metadata["signatures"]["explain"] == {"inputs": ["features"],
                                                 "outputs": ["attributions", "mode"]}


def make_client(standin, kind, model="tiny", **options):
    if kind == "grpc":
        return GrpcClient(standin.grpc_target, model, **options)
    return RestClient(standin.rest_url, model, format=kind.split(":")[1], **options)


@pytest.mark.parametrize("kind", ["grpc", "rest:instances", "rest:inputs"])
@pytest.mark.parametrize("batch_size", [7, 1000])
def test_clients_explain_as_the_model_does(served, want, kind, batch_size):
    """Several requests (7 rows each) or one; the client's own signature does not matter."""
    x, attributions, mode = want
    client = make_client(served[0], kind, batch_size=batch_size, signature="score")
    got = client.explain(x)
    assert set(got) == {"attributions", "mode"}
    assert got["attributions"].dtype == np.float32 and got["mode"].dtype == np.int32
    assert got["attributions"].shape == (25, 3) and got["mode"].shape == (25,)
    np.testing.assert_allclose(got["attributions"], attributions, **TOLERANCE)
    np.testing.assert_array_equal(got["mode"], mode)
    one = client.explain(x[4])  # one row, as predict takes it
    np.testing.assert_allclose(one["attributions"], attributions[4:5], **TOLERANCE)


@pytest.mark.parametrize("kind", ["grpc", "rest:instances"])
def test_explain_errors_are_one_line(served, kind):
    standin = served[0]
    for call, parts in (
            (lambda: make_client(standin, kind, model="legacy").explain(rows(3)),
             ("'legacy'", "no 'explain' signature", "export it again")),
            (lambda: make_client(standin, kind).explain(np.zeros((2, 4), np.float32)),
             ("rejected", "shape [2, 4]")),
            (lambda: make_client(standin, kind, model="ghost").explain(rows(3)),
             ("model 'ghost' not found",))):
        with pytest.raises(ServingError) as info:
            call()
        assert "\n" not in str(info.value)
        for part in parts:
            assert part in str(info.value), str(info.value)


def test_top_features_are_the_largest_first_and_ties_keep_the_input_order():
    a = np.array([[0.1, 3.0, 2.0, 0.5], [1.0, 1.0, 0.0, 1.0]], np.float32)
    assert top_features(a, ["w", "x", "y", "z"]) == ["x;y;z", "w;x;z"]
    assert top_features(a[:, :2], ["w", "x"]) == ["x;w", "w;x"]  # fewer than three features


def check_explained_table(path, x, attributions, plain=None):
    """The explain columns of a written table; plain: the same scoring without explain."""
    header, body = read_table(path)
    assert header == EXPLAIN_HEADER
    assert len(body) == len(x)
    written = np.array([[float(v) for v in line[3:6]] for line in body])
    np.testing.assert_allclose(written, attributions, **TOLERANCE)
    for line, values in zip(body, written, strict=True):
        top = line[6].split(";")
        assert len(top) == 3 and sorted(top) == NAMES
        assert top[0] == NAMES[int(np.argmax(values))]
        assert [values[NAMES.index(name)] for name in top] == sorted(values, reverse=True)
    if plain is not None:  # the first three columns are written exactly as without explain
        with open(plain) as f:
            assert [",".join(line[:3]) for line in body] == f.read().splitlines()[1:]
    return body


@pytest.mark.parametrize("chunk_rows", [4, 1000])
def test_score_file_explain_adds_the_columns_and_keeps_the_plain_output(tiny_export, want,
                                                                       tmp_path, chunk_rows):
    x, attributions, mode = want
    data = write_csv(tmp_path / "rows.csv", x)
    chunks = []
    for name, explain in (("plain.csv", False), ("explained.csv", True)):
        assert scoring.score_file(tiny_export, str(data), str(tmp_path / name),
                                  chunk_rows=chunk_rows, explain=explain,
                                  on_chunk=chunks.append) == 25
    body = check_explained_table(tmp_path / "explained.csv", x, attributions,
                                 plain=tmp_path / "plain.csv")
    assert [int(line[2]) for line in body] == mode.tolist()
    per_run = list(range(chunk_rows, 25, chunk_rows)) + [25]
    assert chunks == per_run * 2  # the same progress with and without explain
    with open(tmp_path / "plain.csv") as f:
        assert f.readline() == "score,is_anomaly,mode\n"
    assert sorted(os.listdir(tmp_path)) == ["explained.csv", "plain.csv", "rows.csv"]


def test_score_file_explain_refuses_an_export_without_the_signature(served, tmp_path):
    data = write_csv(tmp_path / "rows.csv", rows(3))
    with pytest.raises(export.ExportError, match="no 'explain' signature.*export it again"):
        scoring.score_file(str(served[1] / "legacy"), str(data), str(tmp_path / "out.csv"),
                           explain=True)
    assert os.listdir(tmp_path) == ["rows.csv"]


@pytest.mark.parametrize("kind", ["grpc", "rest:inputs"])
def test_server_scoring_explain_writes_and_returns_the_attributions(served, want, tmp_path,
                                                                    kind):
    x, attributions, mode = want
    data = write_csv(tmp_path / "rows.csv", x)
    client = make_client(served[0], kind, batch_size=10)
    n, flagged, explained = server_scoring.score_file(client, data, tmp_path / "out.csv",
                                                      explain=True)
    assert n == 25 and flagged == int(explained["is_anomaly"].sum())
    assert explained["feature_names"] == NAMES
    np.testing.assert_allclose(explained["attributions"], attributions, **TOLERANCE)
    np.testing.assert_array_equal(explained["mode"], mode)
    check_explained_table(tmp_path / "out.csv", x, attributions)
    assert server_scoring.score_file(client, data, tmp_path / "plain.csv")[0] == 25
    with open(tmp_path / "plain.csv") as f:
        assert f.readline() == "score,is_anomaly,mode\n"
    with pytest.raises(ServingError, match="'legacy' on the server has no 'explain'"):
        server_scoring.score_file(make_client(served[0], kind, model="legacy"), data,
                                  tmp_path / "legacy.csv", explain=True)
    assert not os.path.exists(tmp_path / "legacy.csv")


# === cli.score --explain and cli.predict --explain, in subprocesses ===

@pytest.fixture(scope="module")
def cli_runs(served, tiny_export, tmp_path_factory):
    """cli.score --explain, and cli.predict --explain over gRPC and REST, started together."""
    standin, _ = served
    folder = tmp_path_factory.mktemp("explain_cli")
    data = write_csv(folder / "rows.csv", rows())

    def predict(name, server, *args):
        return start_module("cli.predict", f"--data={data}", f"--output={folder / name}.csv",
                            f"--server={server}", "--model_name=tiny", "--explain",
                            "--batch_size=8", *args)

    procs = {"score": start_module("cli.score", f"--model={os.path.dirname(tiny_export)}",
                                   f"--data={data}", f"--output={folder / 'score.csv'}",
                                   "--explain", "--chunk_rows=10"),
             "grpc": predict("grpc", standin.grpc_target),
             "rest": predict("rest", standin.rest_url[len("http://"):], "--rest")}
    done = {name: finish(proc, timeout=180) for name, proc in procs.items()}
    return folder, {name: (r.returncode, r.stdout, r.stderr) for name, r in done.items()}


@pytest.mark.slow  # cli_runs: three subprocesses importing TensorFlow
def test_cli_score_explain_writes_the_attribution_columns(cli_runs, want):
    folder, runs = cli_runs
    code, out, err = runs["score"]
    assert code == 0, err[-2000:]
    assert "scored 25 rows" in out
    x, attributions, mode = want
    body = check_explained_table(folder / "score.csv", x, attributions)
    assert [int(line[2]) for line in body] == mode.tolist()


@pytest.mark.slow
@pytest.mark.parametrize("run", ["grpc", "rest"])
def test_cli_predict_explain_writes_and_shows_the_top_features(cli_runs, want, run):
    folder, runs = cli_runs
    code, out, err = runs[run]
    assert code == 0, err[-2000:]
    x, attributions, _ = want
    body = check_explained_table(folder / f"{run}.csv", x, attributions)
    lines = out.splitlines()
    assert lines[0].startswith("scored 25 rows with model 'tiny'")
    assert lines[1].startswith("features of largest attribution of the 10 highest-scoring rows")
    shown = lines[2:]
    assert len(shown) == 10
    scores = np.array([float(line[0]) for line in body])
    for line, i in zip(shown, np.argsort(-scores, kind="stable")[:10], strict=True):
        head, features = line.strip().split("; ")
        assert head.startswith(f"row {i + 1}: score ")
        assert [part.split()[0] for part in features.split(", ")] == body[i][6].split(";")
        first = features.split(", ")[0].split()
        np.testing.assert_allclose(float(first[1]), attributions[i].max(), rtol=1e-3)
