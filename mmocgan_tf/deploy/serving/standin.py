"""A protocol-faithful stand-in for tensorflow_model_server, for tests and benchmarks.

The real server is a C++ binary that is not pip-installable; this stand-in speaks the same
protocols on loopback so the clients and the CLI can be tested end to end: gRPC
PredictionService (Predict, GetModelMetadata) with TF Serving's request validation, status
codes and messages, and the REST JSON API (:predict in row and columnar formats, /metadata,
model status, {"error": ...} bodies with TF Serving's HTTP statuses). Models are read from
TF Serving's layout BASE/NAME/VERSION/ and run with tf.saved_model.load. Unlike the real
server, every version on disk is servable (its "all" policy; the default serves the newest
only), nothing is batched, and dtype and shape are checked before the graph runs, with
clearer messages than TensorFlow's. It listens on 127.0.0.1 only; stop() is bounded.

Faults (StandInServer.inject) exist because a client's deadline and retry paths can only be
tested against a server that misbehaves on purpose: predict requests (gRPC Predict, REST
:predict; metadata is never faulted) can be answered late, or the first N of them with
UNAVAILABLE / HTTP 503, or (REST) by dropping the connection without an answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import urllib.parse
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

Code = grpc.StatusCode
_dt = types_pb2.DataType.Name
_set = lambda names: "{" + ",".join(sorted(names)) + "}"
_HTTP_STATUS = {Code.INVALID_ARGUMENT: 400, Code.FAILED_PRECONDITION: 400,
                Code.OUT_OF_RANGE: 400, Code.NOT_FOUND: 404, Code.UNAVAILABLE: 503}
_TYPED_FIELDS = {tf.float32: "float_val", tf.float64: "double_val", tf.int32: "int_val",
                 tf.int16: "int_val", tf.int8: "int_val", tf.uint8: "int_val",
                 tf.int64: "int64_val", tf.bool: "bool_val", tf.string: "string_val"}
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class Failure(Exception):
    """A request error with the gRPC status TF Serving would answer."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Faults:
    """What the next predict requests suffer; `seen` counts the predict requests received.

    delay_s: every predict request is answered only after this many seconds.
    fail_first: the next this-many predict requests fail: gRPC UNAVAILABLE, REST 503, or
      with drop=True (REST only) a connection closed without any answer.
    """

    def __init__(self, delay_s: float = 0.0, fail_first: int = 0, drop: bool = False):
        self.delay_s, self.fail_first, self.drop = float(delay_s), int(fail_first), drop
        self.seen = 0
        self._lock = threading.Lock()

    def on_predict(self) -> bool:
        """Counts one predict request, sleeps delay_s; True if this one is to fail."""
        with self._lock:
            self.seen += 1
            fail = self.seen <= self.fail_first
        if self.delay_s:
            time.sleep(self.delay_s)
        return fail


class Servable:
    """One loaded model version: its callable signatures and their SignatureDefs."""

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version = name, version
        self._loaded = tf.saved_model.load(path)  # kept alive: the functions need it
        self.functions = dict(self._loaded.signatures)
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        self.signature_defs = get_model_metadata_pb2.SignatureDefMap(
            signature_def=proto.meta_graphs[0].signature_def)

    def resolve(self, signature_name: str):
        key = signature_name or "serving_default"
        if key not in self.functions:
            raise Failure(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return key, self.signature_defs.signature_def[key], self.functions[key]

    def validate(self, key, signature, inputs: dict[str, tuple[int, tuple]]):
        """TF Serving's alias checks, then dtype and shape against the SignatureDef."""
        expected = sorted(signature.inputs)
        extra, missing = sorted(set(inputs) - set(expected)), sorted(set(expected) - set(inputs))
        if len(inputs) != len(expected):
            raise Failure(Code.INVALID_ARGUMENT, (
                f"input size does not match signature: {len(inputs)}!={len(expected)} "
                f"len({_set(inputs)}) != len({_set(expected)}). Sent extra: {_set(extra)}. "
                f"Missing but required: {_set(missing)}."))
        if extra:
            raise Failure(Code.INVALID_ARGUMENT, (
                f"input tensor alias not found in signature: {extra[0]}. Inputs expected to "
                f"be in the set {_set(expected)}."))
        for alias, (dtype, shape) in inputs.items():
            info = signature.inputs[alias]
            if dtype != info.dtype:
                raise Failure(Code.INVALID_ARGUMENT, (
                    f"input '{alias}' of signature '{key}' has dtype {_dt(dtype)}, "
                    f"expected {_dt(info.dtype)}"))
            dims = [d.size for d in info.tensor_shape.dim]
            if not info.tensor_shape.unknown_rank and (
                    len(dims) != len(shape)
                    or any(d >= 0 and d != s for d, s in zip(dims, shape, strict=True))):
                raise Failure(Code.INVALID_ARGUMENT, (
                    f"input '{alias}' of signature '{key}' has shape {list(shape)}, expected "
                    f"{[None if d < 0 else d for d in dims]} (None: any size)"))

    def call(self, function, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = function(**{alias: tf.constant(a) for alias, a in arrays.items()})
        except tf.errors.InvalidArgumentError as err:
            raise Failure(Code.INVALID_ARGUMENT, err.message.splitlines()[0]) from None
        return {name: value.numpy() for name, value in outputs.items()}


class ModelRepository:
    """Servables under base_path/NAME/VERSION, loaded on first use and kept."""

    def __init__(self, base_path: str):
        self.base_path = os.fspath(base_path)
        self._servables: dict[tuple[str, int], Servable] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(n for n in os.listdir(self.base_path) if self.versions(n))

    def versions(self, name: str) -> list[int]:
        folder = os.path.join(self.base_path, name)
        if name.startswith(".") or "/" in name or not os.path.isdir(folder):
            return []
        return sorted(int(v) for v in os.listdir(folder) if v.isdigit()
                      and os.path.isfile(os.path.join(folder, v, "saved_model.pb")))

    def get(self, name: str, version: int | None = None) -> Servable:
        available = self.versions(name)
        if version is None:
            if not available:
                raise Failure(Code.NOT_FOUND, f"Servable not found for request: Latest({name})")
            version = available[-1]
        elif version not in available:
            raise Failure(Code.NOT_FOUND,
                          f"Servable not found for request: Specific({name}, {version})")
        with self._lock:
            key = (name, version)
            if key not in self._servables:
                path = os.path.join(self.base_path, name, str(version))
                self._servables[key] = Servable(name, version, path)
            return self._servables[key]

    def from_spec(self, spec) -> Servable:
        return self.get(spec.name, spec.version.value if spec.HasField("version") else None)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository, server: StandInServer):
        self.repository, self._server = repository, server

    def Predict(self, request, context):  # gRPC's method names
        faults = self._server.faults
        if faults.on_predict():
            context.abort(Code.UNAVAILABLE, f"stand-in: injected fault {faults.seen} of "
                          f"{faults.fail_first}")
        return _guarded(context, lambda: self._predict(request))

    def GetModelMetadata(self, request, context):
        return _guarded(context, lambda: self._metadata(request))

    def _predict(self, request):
        servable = self.repository.from_spec(request.model_spec)
        key, signature, function = servable.resolve(request.model_spec.signature_name)
        servable.validate(key, signature, {
            alias: (t.dtype, tuple(d.size for d in t.tensor_shape.dim))
            for alias, t in request.inputs.items()})
        arrays = {}
        for alias, proto in request.inputs.items():
            try:
                arrays[alias] = tf.make_ndarray(proto)
            except Exception:  # any malformed tensor is the client's fault
                raise Failure(Code.INVALID_ARGUMENT, f"tensor parsing error: {alias}") from None
        outputs = servable.call(function, arrays)
        wanted = list(request.output_filter) or list(outputs)
        unknown = [name for name in wanted if name not in outputs]
        if unknown:
            raise Failure(Code.INVALID_ARGUMENT, (
                f"output tensor alias not found in signature: {unknown[0]} Outputs expected "
                f"to be in the set {_set(outputs)}."))
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, servable, key)
        for name in wanted:
            response.outputs[name].CopyFrom(_as_proto_field(outputs[name]))
        return response

    def _metadata(self, request):
        if not request.metadata_field:
            raise Failure(Code.INVALID_ARGUMENT,
                          "GetModelMetadataRequest must specify at least one metadata_field")
        for field in set(request.metadata_field) - {"signature_def"}:
            raise Failure(Code.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
        servable = self.repository.from_spec(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, servable, "")
        response.metadata["signature_def"].Pack(servable.signature_defs)
        return response


def _guarded(context, work):
    """Runs work; a Failure (or any bug, as INTERNAL) becomes a gRPC error, never a crash."""
    try:
        return work()
    except Failure as failure:
        error = failure
    except Exception as err:
        error = Failure(Code.INTERNAL, f"{type(err).__name__}: {err}")
    context.abort(error.code, error.message)


def _fill_spec(spec, servable: Servable, signature_name: str):
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = signature_name


def _as_proto_field(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Typed repeated fields, as TF Serving's default (AsProtoField) response encoding."""
    dtype = tf.as_dtype(array.dtype)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum,
                                   tensor_shape=tf.TensorShape(array.shape).as_proto())
    getattr(proto, _TYPED_FIELDS[dtype]).extend(array.ravel().tolist())
    return proto




# === REST ===

_ROUTE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?::(predict)|/(metadata))?$")


def _json_inputs(body, signature) -> dict[str, np.ndarray]:
    """The request's tensors, from row ("instances") or columnar ("inputs") JSON."""
    aliases = sorted(signature.inputs)
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise Failure(Code.INVALID_ARGUMENT, "the request must be a JSON object with either "
                      "an 'instances' or an 'inputs' key")
    rows, columns = body.get("instances"), body.get("inputs")
    if rows is not None:
        if not isinstance(rows, list) or not rows:
            raise Failure(Code.INVALID_ARGUMENT, "'instances' must be a non-empty list")
        if all(isinstance(row, dict) for row in rows):  # one object per row: {alias: value}
            if any(set(row) != set(rows[0]) for row in rows):
                raise Failure(Code.INVALID_ARGUMENT, "instances name different input tensors")
            columns = {name: [row[name] for row in rows] for name in rows[0]}
        elif len(aliases) == 1 and not any(isinstance(row, dict) for row in rows):
            columns = {aliases[0]: rows}
    elif not isinstance(columns, dict) and len(aliases) == 1:
        columns = {aliases[0]: columns}
    if not isinstance(columns, dict):
        raise Failure(Code.INVALID_ARGUMENT, f"name the inputs {_set(aliases)} with "
                      "a JSON object per instance, or an object of inputs")
    arrays = {}
    for alias, value in columns.items():
        if alias not in signature.inputs:
            arrays[alias] = np.zeros(0)  # validate() names the unknown alias
            continue
        dtype = np.dtype(tf.as_dtype(signature.inputs[alias].dtype).as_numpy_dtype)
        try:
            raw = np.array(value)
        except ValueError:
            raise Failure(Code.INVALID_ARGUMENT, f"input '{alias}' is not a rectangular "
                          "list") from None
        if raw.dtype.kind not in ("b" if dtype.kind == "b" else "biuf"):
            got = "strings" if raw.dtype.kind in "SU" else raw.dtype.name
            raise Failure(Code.INVALID_ARGUMENT, f"JSON value of input '{alias}' is not of "
                          f"expected type: {dtype.name} (got {got})")
        arrays[alias] = raw.astype(dtype)
    return arrays


def _predict_json(servable: Servable, body) -> dict:
    key, signature, function = servable.resolve(
        body.get("signature_name", "") if isinstance(body, dict) else "")
    arrays = _json_inputs(body, signature)
    servable.validate(key, signature, {
        alias: (signature.inputs[alias].dtype if alias in signature.inputs else 0, a.shape)
        for alias, a in arrays.items()})
    outputs = {name: value.tolist() for name, value in servable.call(function, arrays).items()}
    if "inputs" in body:
        return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    n = len(next(iter(outputs.values())))
    return {"predictions": [{name: value[i] for name, value in outputs.items()}
                            for i in range(n)]}


def _proto_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class _RestHandler(BaseHTTPRequestHandler):
    server_version = "TFServingStandIn/1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # http.server's method names
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def _answer(self, method: str):
        faults = self.server.standin.faults
        if method == "POST" and faults.on_predict():
            if faults.drop:  # no status line at all: the client sees the connection reset
                self.close_connection = True
                return
            self._send(503, {"error": f"stand-in: injected fault {faults.seen} of "
                                      f"{faults.fail_first}"})
            return
        try:
            status, body = 200, self._route(method)
        except Failure as failure:
            status, body = _HTTP_STATUS.get(failure.code, 500), {"error": failure.message}
        except Exception as err:  # a stand-in bug must not kill the thread
            status, body = 500, {"error": f"{type(err).__name__}: {err}"}
        self._send(status, body)

    def _send(self, status: int, body: dict):
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a deadline)
            self.close_connection = True

    def _route(self, method: str) -> dict:
        match = _ROUTE.match(urllib.parse.urlsplit(self.path).path)
        predict = bool(match and match.group(3))
        if not match or (method == "POST") != predict:
            raise Failure(Code.INVALID_ARGUMENT, f"Malformed request: {method} {self.path}")
        name = urllib.parse.unquote(match.group(1))
        version = None if match.group(2) is None else int(match.group(2))
        repository = self.server.repository
        if predict:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError as err:
                raise Failure(Code.INVALID_ARGUMENT, f"JSON Parse error: {err}") from None
            return _predict_json(repository.get(name, version), body)
        servable = repository.get(name, version)
        if match.group(4):
            spec = get_model_metadata_pb2.GetModelMetadataResponse().model_spec
            _fill_spec(spec, servable, "")
            return {"model_spec": _proto_dict(spec),
                    "metadata": {"signature_def": _proto_dict(servable.signature_defs)}}
        return {"model_version_status": [{"version": str(servable.version), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}


# === Both servers ===

class StandInServer:
    """gRPC and REST servers on 127.0.0.1 for the models under base_path.

    Use as a context manager; `grpc_target` ("127.0.0.1:PORT") and `rest_url`
    ("http://127.0.0.1:PORT") say where they listen, on free ports.

    Args:
      base_path: folder with one subfolder per model, each with integer version folders.
      preload: load the newest version of every model at start, as the real server does
        before it answers, so the first request does not pay for loading.
    """

    def __init__(self, base_path, *, preload: bool = True):
        self.repository = ModelRepository(base_path)
        self._preload = preload
        self._grpc = self._http = self._thread = None
        self.grpc_target = self.rest_url = None
        self.faults = Faults()

    @contextlib.contextmanager
    def inject(self, **faults):
        """Applies Faults(**faults) to the requests made inside the block; yields them."""
        self.faults = Faults(**faults)
        try:
            yield self.faults
        finally:
            self.faults = Faults()

    def start(self) -> StandInServer:
        if self._preload:
            for name in self.repository.names():
                self.repository.get(name)
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                     ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.repository, self), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.grpc_target = f"127.0.0.1:{port}"
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _RestHandler)  # daemon threads
        self._http.repository = self.repository
        self._http.standin = self
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="standin-rest")
        self._thread.start()
        self.rest_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        return self

    def stop(self, timeout_s: float = 2.0):
        """Stops both servers; returns within about 2 * timeout_s whatever is in flight."""
        if self._grpc is not None:
            self._grpc.stop(grace=min(0.5, timeout_s)).wait(timeout_s)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._thread.join(timeout_s)
            self._http = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
