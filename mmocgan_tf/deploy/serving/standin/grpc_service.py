"""The stand-in's gRPC PredictionService: Predict and GetModelMetadata as TF Serving does."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from mmocgan_tf.deploy.serving.standin.repository import (
    Code,
    Failure,
    ModelRepository,
    Servable,
    names_set,
)

_TYPED_FIELDS = {tf.float32: "float_val", tf.float64: "double_val", tf.int32: "int_val",
                 tf.int16: "int_val", tf.int8: "int_val", tf.uint8: "int_val",
                 tf.int64: "int64_val", tf.bool: "bool_val", tf.string: "string_val"}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository, server):
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
                f"to be in the set {names_set(outputs)}."))
        response = predict_pb2.PredictResponse()
        fill_spec(response.model_spec, servable, key)
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
        fill_spec(response.model_spec, servable, "")
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


def fill_spec(spec, servable: Servable, signature_name: str):
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
