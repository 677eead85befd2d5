"""gRPC client for an exported MMOC-GAN served by TensorFlow Serving (PredictionService).

gRPC is TF Serving's native API: binary tensors, no JSON number formatting, HTTP/2 reuse
of one connection. This client adds what every caller would otherwise rewrite: batching of
large inputs, per-call deadlines, retries while the server is (re)starting, and errors
that say in one line what went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from mmocgan_tf.deploy.serving import tensor_proto
from mmocgan_tf.deploy.serving.contract import (
    DEFAULT_SIGNATURE,
    EXPLAIN_SIGNATURE,
    FEATURE_NAMES_INPUT,
    FEATURE_NAMES_OUTPUT,
    FEATURE_NAMES_SIGNATURE,
    INPUT_NAME,
    BaseClient,
    ServingError,
    as_rows,
    decode_names,
    explain_outputs,
    model_label,
    no_explain_signature,
    predict_in_batches,
    signature_summary,
    tensor_entry,
)

_REJECTED = ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE")
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class GrpcClient(BaseClient):
    """Calls Predict and GetModelMetadata of one model on a TF Serving gRPC port.

    Args:
      target: "host:port" of the gRPC endpoint (TF Serving's default port is 8500).
      model_name: the served model's name (--model_name or a models.config entry).
      version: a specific version number; None lets the server pick (the latest loaded).
      signature: the signature to call: "serving_default" (score, is_anomaly, mode,
        mode_probs) or "score" (score only).
      timeout_s: deadline of each request, in seconds.
      retries: attempts per request while the server answers UNAVAILABLE (1 = no retry);
        no other error is retried, since repeating a rejected request cannot help.
      backoff_s: wait before the second attempt; it doubles for each further one.
      batch_size: the most rows sent in one request; larger inputs are split.

    Use it as a context manager, or call close(), to release the channel.
    """

    def __init__(self, target: str, model_name: str, *, version: int | None = None,
                 signature: str = DEFAULT_SIGNATURE, timeout_s: float = 10.0,
                 retries: int = 3, backoff_s: float = 0.2, batch_size: int = 1000):
        super().__init__(model_name, version=version, signature=signature,
                         timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
                         batch_size=batch_size)
        self.target = str(target)
        # Reconnect attempts at the pace of our retries: gRPC's own default first backoff
        # (1 s) would make every retry within that second fail without trying to connect.
        backoff_ms = max(50, int(self.backoff_s * 1000))
        self._channel = grpc.insecure_channel(self.target, options=[
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.initial_reconnect_backoff_ms", backoff_ms),
            ("grpc.max_reconnect_backoff_ms", backoff_ms * 2 ** self.retries),
        ])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, features) -> dict[str, np.ndarray]:
        """Outputs of the signature for raw feature rows [n, d] (columns in training order).

        Returns:
          {output name: array with n rows}, e.g. score float32 [n], is_anomaly bool [n],
          mode int32 [n], mode_probs float32 [n, m] for "serving_default".

        Raises:
          ValueError: features is not a non-empty 1-D or 2-D array.
          ServingError: the server is unreachable, rejected the request or lacks the model.
        """
        x = as_rows(features)
        return predict_in_batches(lambda rows: self.predict_arrays({INPUT_NAME: rows}), x,
                                  self.batch_size)

    def explain(self, features) -> dict[str, np.ndarray]:
        """Per-feature attributions of the anomaly score, from the export's explain signature.

        Sent in batches of batch_size rows, like predict(); the client's own signature does
        not matter.

        Returns:
          {"attributions": float32 [n, d] (higher: the feature makes the row more
           anomalous, relative to its mode), "mode": int32 [n]}.

        Raises:
          ValueError: features is not a non-empty 1-D or 2-D array.
          ServingError: as predict(), and for an export without the explain signature
            (one written before it existed).
        """
        x = as_rows(features)
        where = f"server {self.target}"
        try:
            return predict_in_batches(lambda rows: explain_outputs(self.predict_arrays(
                {INPUT_NAME: rows}, signature=EXPLAIN_SIGNATURE), len(rows), where), x,
                self.batch_size)
        except ServingError as err:
            if err.code == "FAILED_PRECONDITION" and f'"{EXPLAIN_SIGNATURE}"' in str(err):
                raise ServingError(no_explain_signature(
                    f"{model_label(self.model_name, self.version)} on {where}"),
                    code=err.code) from None
            raise

    def predict_arrays(self, inputs: Mapping[str, np.ndarray], *,
                       signature: str | None = None) -> dict[str, np.ndarray]:
        """One Predict request with the given named arrays sent as they are (no cast, no split).

        The low-level door for other signatures (default: the client's) and for checking
        the server's validation.
        """
        request = predict_pb2.PredictRequest()
        self._fill_model_spec(request.model_spec, signature)
        for name, array in inputs.items():
            request.inputs[name].CopyFrom(tensor_proto.to_tensor_proto(array))
        response = self._call(self._stub.Predict, request)
        try:
            return {name: tensor_proto.from_tensor_proto(proto)
                    for name, proto in response.outputs.items()}
        except tensor_proto.TensorDecodeError as err:
            raise ServingError(f"server {self.target} sent an unreadable tensor: {err}") from None

    def metadata(self) -> dict:
        """The signature's inputs and outputs, from GetModelMetadata (the signature_def field).

        Returns:
          {"model_name", "version" (the one that answered), "signature", "inputs",
           "outputs", "signatures" (all public signature names)}, where inputs and outputs
          map names to {"dtype": "float32", "shape": (None, d)}.
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_model_spec(request.model_spec)
        response = self._call(self._stub.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata[
                "signature_def"].Unpack(signature_map):
            raise ServingError(f"server {self.target} sent no signature_def metadata")
        signatures = {name: {"inputs": _entries(sig.inputs), "outputs": _entries(sig.outputs)}
                      for name, sig in signature_map.signature_def.items()}
        served = response.model_spec.version.value if response.model_spec.HasField(
            "version") else self.version
        return signature_summary(self.model_name, served, self.signature, signatures,
                                 f"server {self.target}")

    def feature_names(self) -> list[str] | None:
        """The model's feature names in input order, from the export's feature_names signature.

        Returns None for an export without that signature (one written before it existed).
        """
        if FEATURE_NAMES_SIGNATURE not in self.metadata()["signatures"]:
            return None
        out = self.predict_arrays({FEATURE_NAMES_INPUT: np.float32(0)},
                                  signature=FEATURE_NAMES_SIGNATURE)
        if FEATURE_NAMES_OUTPUT not in out:
            raise ServingError(f"server {self.target} sent no {FEATURE_NAMES_OUTPUT!r} output")
        return decode_names(out[FEATURE_NAMES_OUTPUT])

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _fill_model_spec(self, spec, signature=None):
        spec.name = self.model_name
        spec.signature_name = signature or self.signature
        if self.version is not None:
            spec.version.value = self.version

    def _call(self, method, request):
        for attempt in range(1, self.retries + 1):
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    self._sleep(attempt)
                    continue
                details = err.details() if hasattr(err, "details") else str(err)
                raise self._error(code, details or "", attempt) from None
        raise AssertionError("unreachable")

    def _error(self, code: grpc.StatusCode, details: str, attempts: int) -> ServingError:
        name = code.name
        if code == grpc.StatusCode.UNAVAILABLE:
            message = f"server {self.target} unavailable after {attempts} tries: {details}"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = f"server {self.target} did not answer within {self.timeout_s:g} s"
        elif code == grpc.StatusCode.NOT_FOUND:
            message = (f"{model_label(self.model_name, self.version)} not found on server "
                       f"{self.target}: {details}")
        elif name in _REJECTED:
            message = f"server rejected the request: {name}: {details}"
        else:
            message = f"server {self.target} failed: {name}: {details}"
        return ServingError(message, code=name)


def _entries(tensor_infos) -> dict:
    """Metadata entries from a SignatureDef's map of TensorInfo."""
    entries = {}
    for name, info in tensor_infos.items():
        shape = info.tensor_shape
        dims = None if shape.unknown_rank else [d.size for d in shape.dim]
        entries[name] = tensor_entry(tensor_proto.dtype_name(info.dtype), dims)
    return entries
