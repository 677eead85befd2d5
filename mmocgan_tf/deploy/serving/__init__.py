"""Clients for a TensorFlow Serving model server running an exported MMOC-GAN.

`GrpcClient` (needs the `serving` extra: tensorflow-serving-api and grpcio) and `RestClient`
(standard library only) share one contract: `predict(features)` returns a dict of numpy
arrays, `explain(features)` the per-feature attributions and modes, `metadata()` describes
the signature, `feature_names()` asks the export for its feature names (None for an export
without them), and every failure is a `ServingError`
whose message is one line. `write_models_config` writes the server's multi-model config file.

GrpcClient is imported on first use, so the REST client works without the gRPC packages.
"""

from mmocgan_tf.deploy.serving.contract import ServingError
from mmocgan_tf.deploy.serving.models_config import write_models_config
from mmocgan_tf.deploy.serving.rest_client import RestClient

__all__ = ["GrpcClient", "RestClient", "ServingError", "write_models_config"]


def __getattr__(name):
    if name == "GrpcClient":
        from mmocgan_tf.deploy.serving.grpc_client import GrpcClient

        return GrpcClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
