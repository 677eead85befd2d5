"""Models on disk as the stand-in serves them, and the errors and faults both protocols share.

A `Failure` carries the gRPC status TF Serving would answer; the REST side maps it to the
HTTP status TF Serving uses, so both protocols refuse a request with the same words.
"""

from __future__ import annotations

import os
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

Code = grpc.StatusCode
_dt = types_pb2.DataType.Name


def names_set(names) -> str:
    """TF Serving's way of printing a set of aliases in its messages: {a,b}."""
    return "{" + ",".join(sorted(names)) + "}"


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
                f"len({names_set(inputs)}) != len({names_set(expected)}). "
                f"Sent extra: {names_set(extra)}. Missing but required: {names_set(missing)}."))
        if extra:
            raise Failure(Code.INVALID_ARGUMENT, (
                f"input tensor alias not found in signature: {extra[0]}. Inputs expected to "
                f"be in the set {names_set(expected)}."))
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
