"""What the gRPC and REST clients share: the error type, input checks, batching, metadata shape.

Both clients promise the same contract (same arguments, same output dict, same one-line
errors), so the parts of that contract that do not depend on the wire live here once.
This module imports neither grpc nor TensorFlow, so the REST client stays dependency-free.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

import numpy as np

INPUT_NAME = "features"
DEFAULT_SIGNATURE = "serving_default"
# The export's signature that tells a client the model's feature names, in input order.
# TF Serving's Predict cannot call a signature without inputs (REST finds no input map), so
# it takes a float32 scalar that it ignores.
FEATURE_NAMES_SIGNATURE = "feature_names"
FEATURE_NAMES_INPUT = "unused"
FEATURE_NAMES_OUTPUT = "feature_names"
# The export's signature that says why rows are anomalous: `features` in, per-feature
# attributions [n, d] and the mode out (model/explanations.py).
EXPLAIN_SIGNATURE = "explain"
EXPLAIN_OUTPUTS = ("attributions", "mode")

# The columns an explained output table adds after score,is_anomaly,mode: one attribution
# per feature, then the names of the TOP_FEATURES largest, joined by TOP_FEATURES_SEPARATOR.
ATTRIBUTION_PREFIX = "attribution_"
TOP_FEATURES_COLUMN = "top_features"
TOP_FEATURES = 3
TOP_FEATURES_SEPARATOR = ";"

# TensorFlow DataType enum names (types.proto) -> numpy dtype names, for metadata.
DTYPE_NAMES = {
    "DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16",
    "DT_INT8": "int8", "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64",
    "DT_UINT8": "uint8", "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64",
    "DT_BOOL": "bool", "DT_STRING": "string",
}


class ServingError(RuntimeError):
    """A prediction or metadata request failed; str(err) is ONE line saying why.

    Attributes:
      code: the gRPC status name ("UNAVAILABLE", "INVALID_ARGUMENT", ...) or, from the REST
        client, "HTTP <status>"; None when no answer came back at all.
    """

    def __init__(self, message: str, code: str | None = None):
        super().__init__(one_line(message))
        self.code = code


class BaseClient:
    """The options both clients take, checked once, and the retry pause they share."""

    def __init__(self, model_name: str, *, version: int | None, signature: str,
                 timeout_s: float, retries: int, backoff_s: float, batch_size: int):
        self.model_name = str(model_name)
        self.version = None if version is None else check_positive("version", version)
        self.signature = signature or DEFAULT_SIGNATURE
        self.timeout_s = check_positive("timeout_s", timeout_s, float)
        self.retries = check_positive("retries", retries)
        self.backoff_s = float(backoff_s)
        self.batch_size = check_positive("batch_size", batch_size)

    def _sleep(self, attempt: int):
        """Waits before attempt + 1: backoff_s, doubling for each further attempt."""
        time.sleep(self.backoff_s * 2 ** (attempt - 1))


def one_line(text: str) -> str:
    """Collapses whitespace runs with newlines, so a server's multi-line detail stays one line."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).strip()


def check_positive(name: str, value, kind=int):
    """Validates a constructor argument early, where the caller can still see which one."""
    if kind is int and (isinstance(value, bool) or int(value) != value or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if kind is float and not float(value) > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return kind(value)


def as_rows(features) -> np.ndarray:
    """The features as a 2-D array; numeric input becomes float32, the signature's dtype.

    An object array (a DataFrame's .values) is converted when every cell is a number; other
    non-numeric arrays (strings) are sent unchanged, and the server, which owns the
    signature, rejects them with INVALID_ARGUMENT as it would from any client. A 1-D array
    is one row.
    """
    x = np.asarray(features)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array [rows, columns], got shape {x.shape}")
    if len(x) == 0:
        raise ValueError("features has no rows")
    if x.dtype.kind == "O":
        try:
            x = x.astype(np.float32)
        except (TypeError, ValueError):
            pass
    if x.dtype.kind in "biuf":
        x = x.astype(np.float32, copy=False)
    return np.ascontiguousarray(x)


def predict_in_batches(call: Callable[[np.ndarray], dict], x: np.ndarray,
                       batch_size: int) -> dict[str, np.ndarray]:
    """Runs call on consecutive row blocks of x and concatenates each output along rows.

    Servers cap message sizes (gRPC's default is 4 MiB) and a huge request holds a server
    thread for long, so large inputs go as several requests of batch_size rows.
    """
    parts = [call(x[start:start + batch_size]) for start in range(0, len(x), batch_size)]
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def decode_names(values) -> list[str]:
    """Names as str from a string tensor's values (bytes over gRPC, str over REST JSON)."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for v in np.asarray(values, dtype=object).ravel()]


def model_label(name: str, version: int | None) -> str:
    return f"model {name!r}" + ("" if version is None else f" version {version}")


def signature_summary(model_name: str, version: int | None, signature: str,
                      signatures: Mapping[str, Mapping], where: str) -> dict:
    """The metadata() dict both clients return, from {signature: {"inputs": .., "outputs": ..}}.

    Each tensor entry is {"dtype": numpy dtype name, "shape": tuple with None for unknown
    dimensions, or None for unknown rank}.

    Raises:
      ServingError: the signature is not among the model's.
    """
    public = sorted(name for name in signatures if not name.startswith("__"))
    if signature not in signatures:
        raise ServingError(
            f"{model_label(model_name, version)} on {where} has no signature {signature!r} "
            f"(it has: {', '.join(public) or 'none'})", code="NOT_FOUND")
    chosen = signatures[signature]
    return {"model_name": model_name, "version": version, "signature": signature,
            "inputs": dict(chosen["inputs"]), "outputs": dict(chosen["outputs"]),
            "signatures": public}


def tensor_entry(dtype_name: str, dims: list[int] | None) -> dict:
    """One metadata tensor entry from a DataType enum name and dims (-1 = unknown)."""
    shape = None if dims is None else tuple(None if d < 0 else int(d) for d in dims)
    return {"dtype": DTYPE_NAMES.get(dtype_name, dtype_name), "shape": shape}


def explain_outputs(out: Mapping[str, np.ndarray], rows: int, where: str) -> dict:
    """An explain answer checked and typed: {"attributions": float32 [n, d], "mode": int32 [n]}.

    Raises:
      ServingError: an output is missing or has not one entry per row.
    """
    missing = [name for name in EXPLAIN_OUTPUTS if name not in out]
    if missing:
        raise ServingError(f"{where} sent no {', '.join(map(repr, missing))} output for the "
                           f"{EXPLAIN_SIGNATURE!r} signature")
    attributions = np.asarray(out["attributions"], dtype=np.float32)
    mode = np.asarray(out["mode"]).astype(np.int32, copy=False)
    if attributions.ndim != 2 or len(attributions) != rows or mode.shape != (rows,):
        raise ServingError(f"{where} sent explanations of shapes {attributions.shape} and "
                           f"{mode.shape} for {rows} rows")
    return {"attributions": attributions, "mode": mode}


def explanation_columns(feature_names) -> list[str]:
    """attribution_<name> for each feature, in input order, then top_features."""
    return [ATTRIBUTION_PREFIX + str(name) for name in feature_names] + [TOP_FEATURES_COLUMN]


def top_feature_indices(attributions: np.ndarray, count: int = TOP_FEATURES) -> np.ndarray:
    """[n, min(count, d)] column indices of each row's largest attributions, largest first.

    Ties keep the input order, so the first column is np.argmax's.
    """
    a = np.asarray(attributions)
    return np.argsort(-a, axis=1, kind="stable")[:, :min(count, a.shape[1])]


def top_features(attributions: np.ndarray, feature_names, count: int = TOP_FEATURES) -> list[str]:
    """Each row's top_features cell: the names of its `count` largest attributions, joined."""
    names = [str(name) for name in feature_names]
    return [TOP_FEATURES_SEPARATOR.join(names[j] for j in row)
            for row in top_feature_indices(attributions, count)]


def no_explain_signature(what: str) -> str:
    """The one line for an export made before the explain signature existed."""
    return (f"{what} has no {EXPLAIN_SIGNATURE!r} signature (it was exported before "
            "explanations existed): export it again")
