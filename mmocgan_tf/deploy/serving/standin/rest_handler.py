"""The stand-in's REST API: :predict (row and columnar JSON), /metadata and model status."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from http.server import BaseHTTPRequestHandler

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from mmocgan_tf.deploy.serving.standin.grpc_service import fill_spec
from mmocgan_tf.deploy.serving.standin.repository import Code, Failure, Servable, names_set

_HTTP_STATUS = {Code.INVALID_ARGUMENT: 400, Code.FAILED_PRECONDITION: 400,
                Code.OUT_OF_RANGE: 400, Code.NOT_FOUND: 404, Code.UNAVAILABLE: 503}

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
        raise Failure(Code.INVALID_ARGUMENT, f"name the inputs {names_set(aliases)} with "
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
        accepted = {"b": "b", "O": "U"}.get(dtype.kind, "biuf")
        if raw.dtype.kind not in accepted:
            got = "strings" if raw.dtype.kind in "SU" else raw.dtype.name
            want = "string" if dtype.kind == "O" else dtype.name
            raise Failure(Code.INVALID_ARGUMENT, f"JSON value of input '{alias}' is not of "
                          f"expected type: {want} (got {got})")
        if dtype.kind == "O":  # DT_STRING: TensorFlow holds bytes
            arrays[alias] = np.vectorize(lambda v: v.encode("utf-8"), otypes=[object])(raw)
        else:
            arrays[alias] = raw.astype(dtype)
    return arrays


def _json_value(alias: str, array: np.ndarray):
    """An output as TF Serving writes it: strings as JSON strings, or as {"b64": ...} when
    the alias ends in _bytes (JSON cannot hold arbitrary bytes)."""
    if array.dtype.kind not in "OSU":
        return array.tolist()

    def text(value):
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if alias.endswith("_bytes"):
            return {"b64": base64.b64encode(raw).decode("ascii")}
        return raw.decode("utf-8", "replace")

    return np.vectorize(text, otypes=[object])(array).tolist()


def _predict_json(servable: Servable, body) -> dict:
    key, signature, function = servable.resolve(
        body.get("signature_name", "") if isinstance(body, dict) else "")
    arrays = _json_inputs(body, signature)
    servable.validate(key, signature, {
        alias: (signature.inputs[alias].dtype if alias in signature.inputs else 0, a.shape)
        for alias, a in arrays.items()})
    outputs = {name: _json_value(name, value)
               for name, value in servable.call(function, arrays).items()}
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


class RestHandler(BaseHTTPRequestHandler):
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
            fill_spec(spec, servable, "")
            return {"model_spec": _proto_dict(spec),
                    "metadata": {"signature_def": _proto_dict(servable.signature_defs)}}
        return {"model_version_status": [{"version": str(servable.version), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}
