"""numpy arrays <-> TensorFlow TensorProto, written with numpy instead of TensorFlow ops.

Requests are encoded as `tensor_content` (raw little-endian bytes: compact and fast to
build). Responses are decoded from either representation: tensorflow_model_server fills the
typed repeated fields (`float_val`, `bool_val`, `int_val`, ...) by default and
`tensor_content` when asked to, and a typed field may hold fewer values than the shape has
elements, in which case TensorFlow repeats the last value; both rules are followed here.

Note: the proto classes live in the `tensorflow` package, so importing this module imports
TensorFlow's Python package even though no TensorFlow op runs.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

# numpy dtype -> (DataType enum name, typed repeated field in TensorProto).
_BY_NUMPY = {
    np.dtype(np.float32): ("DT_FLOAT", "float_val"),
    np.dtype(np.float64): ("DT_DOUBLE", "double_val"),
    np.dtype(np.float16): ("DT_HALF", "half_val"),
    np.dtype(np.int8): ("DT_INT8", "int_val"),
    np.dtype(np.int16): ("DT_INT16", "int_val"),
    np.dtype(np.int32): ("DT_INT32", "int_val"),
    np.dtype(np.int64): ("DT_INT64", "int64_val"),
    np.dtype(np.uint8): ("DT_UINT8", "int_val"),
    np.dtype(np.uint16): ("DT_UINT16", "int_val"),
    np.dtype(np.uint32): ("DT_UINT32", "uint32_val"),
    np.dtype(np.uint64): ("DT_UINT64", "uint64_val"),
    np.dtype(np.bool_): ("DT_BOOL", "bool_val"),
}
_BY_ENUM = {types_pb2.DataType.Value(name): (dtype, field)
            for dtype, (name, field) in _BY_NUMPY.items()}
_STRING = types_pb2.DataType.Value("DT_STRING")


class TensorDecodeError(ValueError):
    """A TensorProto cannot be turned into an array (unsupported dtype, inconsistent size)."""


def dtype_name(enum_value: int) -> str:
    """'DT_FLOAT' for 1, and so on; the name TF Serving's messages use."""
    return types_pb2.DataType.Name(enum_value)


def to_tensor_proto(array) -> tensor_pb2.TensorProto:
    """Encodes a numpy array (numeric, bool or strings) as a TensorProto."""
    x = np.asarray(array)
    proto = tensor_pb2.TensorProto(
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(n)) for n in x.shape]))
    if x.dtype.kind in "USO":
        proto.dtype = _STRING
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode("utf-8") for v in x.ravel())
        return proto
    if x.dtype not in _BY_NUMPY:
        raise TypeError(f"cannot send arrays of dtype {x.dtype} to TensorFlow Serving")
    proto.dtype = types_pb2.DataType.Value(_BY_NUMPY[x.dtype][0])
    proto.tensor_content = np.ascontiguousarray(x, x.dtype.newbyteorder("<")).tobytes()
    return proto


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Decodes a TensorProto into a numpy array (strings come back as an array of bytes)."""
    if proto.tensor_shape.unknown_rank:
        raise TensorDecodeError("tensor has unknown rank")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    size = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == _STRING:
        return _fill(np.array(list(proto.string_val), dtype=object), shape, size)
    if proto.dtype not in _BY_ENUM:
        raise TensorDecodeError(f"unsupported dtype {dtype_name(proto.dtype)}")
    dtype, field = _BY_ENUM[proto.dtype]
    if proto.tensor_content:
        content = proto.tensor_content
        if len(content) != size * dtype.itemsize:
            raise TensorDecodeError(f"tensor_content has {len(content)} bytes, shape {shape} "
                                    f"of {dtype} needs {size * dtype.itemsize}")
        return np.frombuffer(content, dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = getattr(proto, field)
    if field == "half_val":  # float16 bit patterns stored in an int32 field
        flat = np.array(values, np.uint16).view(np.float16)
    else:
        flat = np.array(values, dtype)
    return _fill(flat, shape, size)


def _fill(flat: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    """Reshapes typed-field values, repeating the last value (or zero) as TensorFlow does."""
    if len(flat) > size:
        raise TensorDecodeError(f"{len(flat)} values for shape {shape}")
    if len(flat) < size:
        pad = flat[-1] if len(flat) else np.zeros((), flat.dtype)
        if flat.dtype == object and not len(flat):
            pad = b""
        flat = np.concatenate([flat, np.full(size - len(flat), pad, flat.dtype)])
    return flat.reshape(shape)
