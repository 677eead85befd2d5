"""Serving clients, models.config and cli.predict against a TF Serving stand-in on loopback.

The session's tiny export (conftest.py, the real export_saved_model) is served by the
stand-in (mmocgan_tf/deploy/serving/standin/) over gRPC and REST on 127.0.0.1. Deadlines and
retries are tested against faults the stand-in injects on purpose (a late answer, the first
requests refused), counting the attempts it saw. The cli.predict runs are subprocesses
started together, since each pays for importing TensorFlow.
"""

import json
import os
import shutil
import socket
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402
from tiny import finish, start_module  # noqa: E402

from mmocgan_tf.deploy.serving import (
    GrpcClient,
    RestClient,
    ServingError,
    tensor_proto,
    write_models_config,
)
from mmocgan_tf.deploy.serving.standin import StandInServer  # noqa: E402

OUTPUTS = {"score": "float32", "is_anomaly": "bool", "mode": "int32", "mode_probs": "float32"}


def rows(n, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def free_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def exported(tiny_model, tiny_export, tmp_path_factory):
    """base/tiny/1, the shared export, and base/tiny/2, a copy, to test version choice;
    base/legacy/1, the same model as exports before the feature_names signature were."""
    base = tmp_path_factory.mktemp("served")
    first = str(base / "tiny" / "1")
    shutil.copytree(tiny_export, first)
    shutil.copytree(tiny_export, base / "tiny" / "2")
    legacy = keras.export.ExportArchive()
    legacy.track(tiny_model)
    legacy.add_endpoint("serving_default", lambda features: tiny_model(features),
                        input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
    legacy.write_out(str(base / "legacy" / "1"), verbose=False)
    return base, first


@pytest.fixture(scope="module")
def server(exported):
    with StandInServer(exported[0]) as standin:
        yield standin


@pytest.fixture(scope="module")
def local(exported):
    """The SavedModel's signatures called in-process: the reference answers."""
    return tf.saved_model.load(exported[1]).signatures


def local_predict(local, x, signature="serving_default", batch_size=1000):
    """Same row blocks as the client, so the numbers are bit-identical."""
    parts = [{k: v.numpy() for k, v in local[signature](features=tf.constant(
        x[i:i + batch_size])).items()} for i in range(0, len(x), batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def assert_same(got, want):
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("n", [1, 7, 2345])
def test_grpc_predict_equals_local_savedmodel(server, local, n):
    x = rows(n)
    with GrpcClient(server.grpc_target, "tiny", batch_size=1000) as client:
        got = client.predict(x)
    assert_same(got, local_predict(local, x))
    assert got["mode_probs"].shape == (n, 2)


def test_score_signature_returns_only_score(server, local):
    x = rows(5)
    with GrpcClient(server.grpc_target, "tiny", signature="score") as client:
        got = client.predict(x)
    assert_same(got, local_predict(local, x, "score"))


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_metadata_lists_features_and_outputs(server, kind):
    client = (GrpcClient(server.grpc_target, "tiny") if kind == "grpc"
              else RestClient(server.rest_url, "tiny"))
    meta = client.metadata()
    assert meta["inputs"] == {"features": {"dtype": "float32", "shape": (None, 3)}}
    assert {k: v["dtype"] for k, v in meta["outputs"].items()} == OUTPUTS
    assert meta["outputs"]["mode_probs"]["shape"] == (None, 2)
    assert meta["signatures"] == ["explain", "feature_names", "score", "serving_default"]
    assert meta["version"] == 2  # the latest


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_feature_names_come_from_the_export(server, kind):
    """A string tensor: string_val over gRPC, JSON strings over REST, str from both."""
    assert make_client(server, kind).feature_names() == ["a", "b", "c"]
    legacy = (GrpcClient(server.grpc_target, "legacy") if kind == "grpc"
              else RestClient(server.rest_url, "legacy"))
    assert legacy.feature_names() is None  # no such signature: the caller falls back


def test_feature_names_signature_as_tf_serving_is_called(server):
    """Columnar REST with the scalar it ignores, as curl would send it."""
    body = b'{"signature_name": "feature_names", "inputs": {"unused": 0}}'
    request = urllib.request.Request(f"{server.rest_url}/v1/models/tiny:predict", data=body)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"outputs": ["a", "b", "c"]}
    with GrpcClient(server.grpc_target, "tiny") as client:
        out = client.predict_arrays({"unused": np.float32(0)}, signature="feature_names")
    assert out["feature_names"].tolist() == [b"a", b"b", b"c"]


@pytest.mark.parametrize("fmt", ["instances", "inputs"])
@pytest.mark.parametrize("signature", ["serving_default", "score"])
def test_rest_formats_give_the_grpc_numbers(server, fmt, signature):
    x = rows(25)
    with GrpcClient(server.grpc_target, "tiny", signature=signature, batch_size=10) as client:
        want = client.predict(x)
    rest = RestClient(server.rest_url, "tiny", signature=signature, format=fmt, batch_size=10)
    assert_same(rest.predict(x), want)


def test_rest_instances_may_be_objects(server):
    body = b'{"instances": [{"features": [0.1, 0.2, 0.3]}, {"features": [1, 2, 3]}]}'
    request = urllib.request.Request(f"{server.rest_url}/v1/models/tiny:predict", data=body)
    with urllib.request.urlopen(request, timeout=10) as response:
        predictions = json.loads(response.read())["predictions"]
    assert len(predictions) == 2 and set(predictions[0]) == set(OUTPUTS)


def test_explicit_version_is_served(server):
    with GrpcClient(server.grpc_target, "tiny", version=1) as client:
        assert client.metadata()["version"] == 1
        assert client.predict(rows(3))["score"].shape == (3,)


def _raises_one_line(call, *parts):
    with pytest.raises(ServingError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message
    return info.value


def test_wrong_feature_count_is_invalid_argument(server):
    with GrpcClient(server.grpc_target, "tiny") as client:
        _raises_one_line(lambda: client.predict(np.zeros((2, 4))), "INVALID_ARGUMENT",
                         "shape [2, 4]")
    rest = RestClient(server.rest_url, "tiny")
    _raises_one_line(lambda: rest.predict(np.zeros((2, 4))), "HTTP 400", "shape [2, 4]")


def test_wrong_dtype_and_input_name_are_invalid_argument(server):
    with GrpcClient(server.grpc_target, "tiny") as client:
        _raises_one_line(lambda: client.predict_arrays({"features": np.zeros((2, 3))}),
                         "INVALID_ARGUMENT", "DT_DOUBLE")
        _raises_one_line(lambda: client.predict(np.array([["a", "b", "c"]])),
                         "INVALID_ARGUMENT", "DT_STRING")
        _raises_one_line(lambda: client.predict_arrays({"x": rows(2)}),
                         "INVALID_ARGUMENT", "alias not found")
    rest = RestClient(server.rest_url, "tiny")
    _raises_one_line(lambda: rest.predict(np.array([["a", "b", "c"]])), "HTTP 400", "float32")


def test_unknown_signature_is_failed_precondition(server):
    with GrpcClient(server.grpc_target, "tiny", signature="nope") as client:
        _raises_one_line(lambda: client.predict(rows(2)), "FAILED_PRECONDITION", '"nope"')
        _raises_one_line(client.metadata, "no signature 'nope'", "serving_default")


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_unknown_model_or_version_is_named(server, kind):
    make = ((lambda **kw: GrpcClient(server.grpc_target, **kw)) if kind == "grpc"
            else (lambda **kw: RestClient(server.rest_url, **kw)))
    _raises_one_line(lambda: make(model_name="ghost").predict(rows(2)),
                     "model 'ghost' not found", "Latest(ghost)")
    _raises_one_line(lambda: make(model_name="tiny", version=7).predict(rows(2)),
                     "model 'tiny' version 7 not found", "Specific(tiny, 7)")


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_server_down_fails_after_retries_quickly(kind):
    port = free_port()
    client = (GrpcClient(f"127.0.0.1:{port}", "tiny", retries=3, backoff_s=0.01)
              if kind == "grpc" else
              RestClient(f"http://127.0.0.1:{port}", "tiny", retries=3, backoff_s=0.01))
    start = time.monotonic()
    error = _raises_one_line(lambda: client.predict(rows(2)), f"127.0.0.1:{port}",
                             "unavailable after 3 tries")
    assert error.code == "UNAVAILABLE"
    assert time.monotonic() - start < 5


def make_client(server, kind, **options):
    return (GrpcClient(server.grpc_target, "tiny", **options) if kind == "grpc"
            else RestClient(server.rest_url, "tiny", **options))


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_slow_server_is_deadline_exceeded_after_timeout_s(server, kind):
    client = make_client(server, kind, timeout_s=0.3, retries=3, backoff_s=0.01)
    client.metadata()  # REST fetches it before predicting; only predict is delayed
    with server.inject(delay_s=3.0) as faults:
        start = time.monotonic()
        error = _raises_one_line(lambda: client.predict(rows(2)), "did not answer within 0.3 s")
        elapsed = time.monotonic() - start
    assert error.code == "DEADLINE_EXCEEDED"
    assert 0.25 < elapsed < 2.5, elapsed  # the deadline, not the server's 3 s
    assert faults.seen == 1  # a deadline is not retried


@pytest.mark.parametrize("kind,drop", [("grpc", False), ("rest", False), ("rest", True)])
def test_unavailable_is_retried_until_the_server_answers(server, local, kind, drop):
    """UNAVAILABLE / HTTP 503 / a dropped connection for the first two predict requests."""
    x = rows(9)
    client = make_client(server, kind, retries=3, backoff_s=0.01)
    with server.inject(fail_first=2, drop=drop) as faults:
        got = client.predict(x)
    assert faults.seen == 3
    assert_same(got, local_predict(local, x))
    with server.inject(fail_first=5, drop=drop) as faults:
        error = _raises_one_line(lambda: client.predict(x), "unavailable after 3 tries")
    assert faults.seen == 3  # exactly `retries` attempts, then the one-line error
    assert error.code == ("UNAVAILABLE" if kind == "grpc" or drop else "HTTP 503")


def test_tensor_proto_decodes_both_encodings():
    for array in (rows(4), np.array([True, False]), np.arange(6, dtype=np.int32).reshape(2, 3),
                  np.array([1.5, -2.0], np.float64), np.array([3, 4], np.int64)):
        proto = tensor_proto.to_tensor_proto(array)
        np.testing.assert_array_equal(tf.make_ndarray(proto), array)  # TF reads ours
        np.testing.assert_array_equal(tensor_proto.from_tensor_proto(proto), array)
        typed = tf.make_tensor_proto(array.tolist(), dtype=array.dtype, shape=array.shape)
        np.testing.assert_array_equal(tensor_proto.from_tensor_proto(typed), array)
    names = tensor_proto.to_tensor_proto(np.array(["a", "é"]))  # string_val, UTF-8
    assert tf.make_ndarray(names).tolist() == [b"a", "é".encode()]
    assert tensor_proto.from_tensor_proto(names).tolist() == [b"a", "é".encode()]
    short = tf.make_tensor_proto(0.5, dtype=tf.float32, shape=[3])  # one value, repeated
    np.testing.assert_array_equal(tensor_proto.from_tensor_proto(short), [0.5] * 3)


def test_models_config_parses_as_model_server_config(tmp_path):
    path = write_models_config(tmp_path / "models.config",
                               {"tiny": "/models/tiny", 'odd "name"': "/models/odd"})
    config = text_format.Parse(open(path).read(), model_server_config_pb2.ModelServerConfig())
    entries = config.model_config_list.config
    assert [(c.name, c.base_path, c.model_platform) for c in entries] == [
        ("tiny", "/models/tiny", "tensorflow"), ('odd "name"', "/models/odd", "tensorflow")]
    assert entries[0].model_version_policy.latest.num_versions == 1
    for policy, check in (("all", lambda p: p.HasField("all")),
                          (2, lambda p: p.latest.num_versions == 2),
                          ([1, 3], lambda p: list(p.specific.versions) == [1, 3])):
        write_models_config(path, {"tiny": "/models/tiny"}, version_policy=policy)
        parsed = text_format.Parse(open(path).read(), model_server_config_pb2.ModelServerConfig())
        assert check(parsed.model_config_list.config[0].model_version_policy)
    assert os.listdir(tmp_path) == ["models.config"]  # no temporary file left
    with pytest.raises(ValueError):
        write_models_config(path, {"tiny": "/m"}, version_policy="newest")


# === cli.predict, in subprocesses ===

def start_cli(folder, name, data, *args):
    """Starts `python -m cli.predict` on folder/DATA, writing folder/NAME.csv."""
    return start_module("cli.predict", f"--data={folder / data}",
                        f"--output={folder / name}.csv", *args)


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    """in.csv (id,a,b,c) and shuffled.csv (c,id,b,a): the same 30 rows."""
    folder = tmp_path_factory.mktemp("cli")
    x = rows(30)
    with open(folder / "in.csv", "w") as f:
        f.write("id,a,b,c\n")
        f.writelines(f"{i},{r[0]},{r[1]},{r[2]}\n" for i, r in enumerate(x))
    with open(folder / "shuffled.csv", "w") as f:
        f.write("c,id,b,a\n")
        f.writelines(f"{r[2]},{i},{r[1]},{r[0]}\n" for i, r in enumerate(x))
    return folder, x


@pytest.fixture(scope="module")
def cli_runs(server, cli_folder):
    """The runs, started together: each spends most of its time importing TensorFlow.

    "grpc" (batches of 8) and "rest" (batches of 7) send shuffled.csv with no local model
    and no column flags: the server's feature_names map its columns. "override" names the
    columns of in.csv for the legacy export, "legacy" leaves them to that export, which
    cannot name them, and "down" calls a port nobody listens on, over REST.
    """
    folder = cli_folder[0]
    rest = server.rest_url[len("http://"):]
    procs = {"grpc": start_cli(folder, "grpc", "shuffled.csv", "--model_name=tiny",
                               f"--server={server.grpc_target}", "--batch_size=8"),
             "rest": start_cli(folder, "rest", "shuffled.csv", "--model_name=tiny",
                               f"--server={rest}", "--rest", "--batch_size=7"),
             "override": start_cli(folder, "override", "in.csv", "--model_name=legacy",
                                   f"--server={server.grpc_target}", "--feature_columns=a,b,c"),
             "legacy": start_cli(folder, "legacy", "shuffled.csv", "--model_name=legacy",
                                 f"--server={rest}", "--rest"),
             "down": start_cli(folder, "down", "in.csv", "--model_name=tiny", "--rest",
                               f"--server=127.0.0.1:{free_port()}", "--feature_columns=a,b,c")}
    done = {name: finish(proc, timeout=120) for name, proc in procs.items()}
    return {name: (r.returncode, r.stdout, r.stderr) for name, r in done.items()}


@pytest.mark.slow  # cli_runs: five subprocesses importing TensorFlow
@pytest.mark.parametrize("run,batch_size", [("grpc", 8), ("rest", 7), ("override", 1000)])
def test_cli_predict_writes_one_row_per_input(cli_runs, local, cli_folder, run, batch_size):
    folder, x = cli_folder
    code, out, err = cli_runs[run]
    assert code == 0, err[-2000:]
    lines = (folder / f"{run}.csv").read_text().splitlines()
    assert lines[0] == "score,is_anomaly,mode"
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert table.shape == (len(x), 3)
    want = local_predict(local, x, batch_size=batch_size)
    np.testing.assert_allclose(table[:, 0], want["score"], rtol=1e-6)
    np.testing.assert_array_equal(table[:, 1], want["is_anomaly"].astype(int))
    np.testing.assert_array_equal(table[:, 2], want["mode"])
    assert "scored 30 rows" in out
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]


def one_error_line(err):
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    assert "Traceback" not in err
    return errors[0]


@pytest.mark.slow
def test_cli_predict_legacy_export_says_why_the_columns_do_not_fit(cli_runs, cli_folder):
    code, _, err = cli_runs["legacy"]
    assert code == 2
    line = one_error_line(err)
    for part in ("4 feature columns", "no feature_names signature", "expects 3",
                 "feature_columns"):
        assert part in line, line
    assert not os.path.exists(cli_folder[0] / "legacy.csv")


@pytest.mark.slow
def test_cli_predict_server_down_exits_2_without_output(cli_runs, cli_folder):
    code, _, err = cli_runs["down"]
    assert code == 2
    assert "unavailable after 3 tries" in one_error_line(err)
    assert not os.path.exists(cli_folder[0] / "down.csv")


def test_server_scoring_reports_its_blocks_and_writes_every_row(server, cli_folder, tmp_path,
                                                                 monkeypatch, local):
    """Scoring in blocks (here 8 rows) reports rows done after each and writes the same
    rows a single request would."""
    from mmocgan_tf.deploy import server_scoring

    folder, x = cli_folder
    monkeypatch.setattr(server_scoring, "BLOCK_ROWS", 8)
    reports = []
    n, _ = server_scoring.score_file(make_client(server, "rest"), folder / "shuffled.csv",
                                     tmp_path / "out.csv",
                                     on_rows=lambda done, total: reports.append((done, total)))
    assert n == 30 and reports == [(8, 30), (16, 30), (24, 30), (30, 30)]
    written = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(written[:, 0], local_predict(local, x)["score"], rtol=1e-6)
