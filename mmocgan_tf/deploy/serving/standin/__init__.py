"""A protocol-faithful stand-in for tensorflow_model_server, for tests and benchmarks.

The real server is a C++ binary that is not pip-installable; this stand-in speaks the same
protocols on loopback so the clients and the CLI can be tested end to end: gRPC
PredictionService (Predict, GetModelMetadata) with TF Serving's request validation, status
codes and messages, and the REST JSON API (:predict in row and columnar formats, string
tensors as JSON strings, /metadata, model status, {"error": ...} bodies with TF Serving's
HTTP statuses). Models are read from
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
import threading
from concurrent import futures
from http.server import ThreadingHTTPServer

import grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from mmocgan_tf.deploy.serving.standin.grpc_service import PredictionService
from mmocgan_tf.deploy.serving.standin.repository import Faults, ModelRepository
from mmocgan_tf.deploy.serving.standin.rest_handler import RestHandler

_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

__all__ = ["StandInServer"]


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
            PredictionService(self.repository, self), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.grpc_target = f"127.0.0.1:{port}"
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), RestHandler)  # daemon threads
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
