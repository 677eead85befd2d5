"""REST client for an exported MMOC-GAN served by TensorFlow Serving, with the standard library.

REST passes firewalls and proxies that gRPC may not, and needs nothing beyond urllib: no
grpcio, no tensorflow-serving-api, no TensorFlow. It speaks TF Serving's JSON API: row
("instances") or columnar ("inputs") requests to :predict, and GET .../metadata. JSON has no
dtypes, so outputs are cast to the dtypes the model's metadata declares; the metadata is
fetched once per client and also names the single output of one-output signatures, whose
predictions TF Serving sends without a name.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

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

_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_REJECTED_STATUS = (400, 412, 422)


class RestClient(BaseClient):
    """Calls :predict and /metadata of one model on a TF Serving REST port.

    Args:
      base_url: "http://host:port" of the REST endpoint (TF Serving's default port is
        8501); "host:port" alone means http.
      model_name: the served model's name.
      version: a specific version number; None lets the server pick (the latest loaded).
      signature: "serving_default" (score, is_anomaly, mode, mode_probs) or "score".
      timeout_s: timeout of each HTTP request, in seconds.
      retries: attempts per request while the connection is refused or the server answers
        503 (1 = no retry); other failures are not retried.
      backoff_s: wait before the second attempt; it doubles for each further one.
      batch_size: the most rows sent in one request; larger inputs are split.
      format: "instances" (row format, one list of d floats per row) or "inputs" (columnar
        format, one [n, d] list); both give the same numbers, "inputs" is more compact.
    """

    def __init__(self, base_url: str, model_name: str, *, version: int | None = None,
                 signature: str = DEFAULT_SIGNATURE, timeout_s: float = 10.0,
                 retries: int = 3, backoff_s: float = 0.2, batch_size: int = 1000,
                 format: str = "instances"):
        if format not in ("instances", "inputs"):
            raise ValueError(f"format must be 'instances' or 'inputs', got {format!r}")
        url = str(base_url).rstrip("/")
        self.base_url = url if "://" in url else f"http://{url}"
        super().__init__(model_name, version=version, signature=signature,
                         timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
                         batch_size=batch_size)
        self.format = format
        model_url = f"{self.base_url}/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
        if self.version is not None:
            model_url += f"/versions/{self.version}"
        self._predict_url = model_url + ":predict"
        self._metadata_url = model_url + "/metadata"
        # A proxy from the environment must not intercept a server on this machine.
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)
        self._metadata = None
        self._signatures = None  # every signature's {"inputs", "outputs"}, with _metadata

    def predict(self, features) -> dict[str, np.ndarray]:
        """Outputs of the signature for raw feature rows [n, d] (columns in training order).

        Returns:
          {output name: array with n rows}, dtypes as the signature declares them.

        Raises:
          ValueError: features is not a non-empty 1-D or 2-D array.
          ServingError: the server is unreachable, rejected the request or lacks the model.
        """
        x = as_rows(features)
        outputs = self.metadata()["outputs"]
        return predict_in_batches(lambda rows: self._predict_batch(rows, outputs), x,
                                  self.batch_size)

    def metadata(self) -> dict:
        """The signature's inputs and outputs, from GET .../metadata; cached per client.

        Returns:
          The same dict as GrpcClient.metadata().
        """
        if self._metadata is None:
            body = self._request(self._metadata_url, None)
            try:
                served = body["model_spec"].get("version")
                signature_map = body["metadata"]["signature_def"]["signature_def"]
                signatures = {name: {"inputs": _entries(sig.get("inputs", {})),
                                     "outputs": _entries(sig.get("outputs", {}))}
                              for name, sig in signature_map.items()}
            except (KeyError, TypeError, AttributeError, ValueError):
                raise ServingError(f"server {self.base_url} sent metadata in an unknown "
                                   "layout") from None
            self._metadata = signature_summary(
                self.model_name, None if served is None else int(served), self.signature,
                signatures, f"server {self.base_url}")
            self._signatures = signatures
        return self._metadata

    def explain(self, features) -> dict[str, np.ndarray]:
        """Per-feature attributions of the anomaly score, from the export's explain signature.

        Sent in batches of batch_size rows and in the client's format, like predict(); the
        client's own signature does not matter.

        Returns:
          {"attributions": float32 [n, d] (higher: the feature makes the row more
           anomalous, relative to its mode), "mode": int32 [n]}.

        Raises:
          ValueError: features is not a non-empty 1-D or 2-D array.
          ServingError: as predict(), and for an export without the explain signature
            (one written before it existed).
        """
        x = as_rows(features)
        self.metadata()
        where = f"server {self.base_url}"
        if EXPLAIN_SIGNATURE not in self._signatures:
            raise ServingError(no_explain_signature(
                f"{model_label(self.model_name, self.version)} on {where}"), code="NOT_FOUND")
        outputs = self._signatures[EXPLAIN_SIGNATURE]["outputs"]
        return predict_in_batches(lambda rows: explain_outputs(self._predict_batch(
            rows, outputs, EXPLAIN_SIGNATURE), len(rows), where), x, self.batch_size)

    def feature_names(self) -> list[str] | None:
        """The model's feature names in input order, from the export's feature_names signature.

        Returns None for an export without that signature (one written before it existed).
        The request is columnar: the row format would require the names to have one entry
        per input row.
        """
        if FEATURE_NAMES_SIGNATURE not in self.metadata()["signatures"]:
            return None
        body = self._request(self._predict_url, {"signature_name": FEATURE_NAMES_SIGNATURE,
                                                 "inputs": {FEATURE_NAMES_INPUT: 0.0}})
        try:
            names = body["outputs"]
            if isinstance(names, dict):  # named, as TF Serving sends several outputs
                names = names[FEATURE_NAMES_OUTPUT]
            if not isinstance(names, list):
                raise TypeError(names)
            return decode_names(names)
        except (KeyError, TypeError):
            raise ServingError(f"server {self.base_url} sent feature names in an unknown "
                               "layout") from None

    def _predict_batch(self, rows: np.ndarray, outputs: dict,
                       signature: str | None = None) -> dict[str, np.ndarray]:
        values = rows.tolist()
        key = "instances" if self.format == "instances" else "inputs"
        body = self._request(self._predict_url, {
            "signature_name": signature or self.signature,
            key: values if key == "instances" else {INPUT_NAME: values}})
        names = list(outputs)
        try:
            if self.format == "instances":
                rows_out = body["predictions"]
                if len(names) == 1 and not isinstance(rows_out[0], dict):
                    columns = {names[0]: rows_out}
                else:
                    columns = {name: [row[name] for row in rows_out] for name in rows_out[0]}
            else:
                columns = body["outputs"]
                if not isinstance(columns, dict):
                    columns = {names[0]: columns}
            return {name: _as_array(value, outputs.get(name)) for name, value in columns.items()}
        except (KeyError, IndexError, TypeError, ValueError):
            raise ServingError(f"server {self.base_url} sent a prediction in an unknown "
                               "layout") from None

    def _request(self, url: str, payload: dict | None) -> dict:
        """GET (payload None) or POST JSON; retries refused connections and 503s."""
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        for attempt in range(1, self.retries + 1):
            request = urllib.request.Request(url, data=data, method="GET" if data is None
                                             else "POST")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as err:
                message = _error_text(err)
                if err.code == 503 and attempt < self.retries:
                    self._sleep(attempt)
                    continue
                raise self._http_error(err.code, message, attempt) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                if isinstance(reason, TimeoutError):
                    raise ServingError(f"server {self.base_url} did not answer within "
                                       f"{self.timeout_s:g} s", code="DEADLINE_EXCEEDED") from None
                if isinstance(reason, ConnectionError):
                    if attempt < self.retries:
                        self._sleep(attempt)
                        continue
                    raise ServingError(f"server {self.base_url} unavailable after {attempt} "
                                       f"tries: {reason}", code="UNAVAILABLE") from None
                raise ServingError(f"cannot reach server {self.base_url}: {reason}",
                                   code="UNAVAILABLE") from None
            except ValueError as err:  # the body was not JSON
                raise ServingError(f"server {self.base_url} sent invalid JSON: {err}") from None
        raise AssertionError("unreachable")

    def _http_error(self, status: int, message: str, attempts: int) -> ServingError:
        code = f"HTTP {status}"
        if status == 404:
            return ServingError(f"{model_label(self.model_name, self.version)} not found on "
                                f"server {self.base_url}: {message}", code=code)
        if status in _REJECTED_STATUS:
            return ServingError(f"server rejected the request ({code}): {message}", code=code)
        if status == 503:
            return ServingError(f"server {self.base_url} unavailable after {attempts} tries "
                                f"({code}): {message}", code=code)
        return ServingError(f"server {self.base_url} failed ({code}): {message}", code=code)


def _error_text(err: urllib.error.HTTPError) -> str:
    """The {"error": ...} text TF Serving puts in error bodies, else the raw body or reason."""
    try:
        raw = err.read().decode("utf-8", "replace")
    except OSError:
        raw = ""
    try:
        return str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        return raw.strip()[:500] or str(err.reason)


def _entries(tensor_infos: dict) -> dict:
    """Metadata entries from the JSON form of a SignatureDef's map of TensorInfo."""
    entries = {}
    for name, info in tensor_infos.items():
        shape = info.get("tensor_shape", {})
        dims = None if shape.get("unknown_rank") else [
            int(d.get("size", -1)) for d in shape.get("dim", [])]
        entries[name] = tensor_entry(info.get("dtype", "DT_INVALID"), dims)
    return entries


def _as_array(values, entry: dict | None) -> np.ndarray:
    """A JSON list as an array of the declared dtype (JSON numbers are all doubles)."""
    dtype = None if entry is None or entry["dtype"] == "string" else entry["dtype"]
    try:
        return np.asarray(values, dtype=dtype)
    except TypeError:  # a dtype name numpy does not know
        return np.asarray(values)
