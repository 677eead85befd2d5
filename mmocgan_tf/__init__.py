"""mmocgan-tf: multimodal one-class GAN anomaly detection for tabular data.

The names below are imported on first use, so tools that need no TensorFlow (cli.plot,
the data loaders) start without it.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "MMOCGAN": "mmocgan_tf.model",
    "MMOCGANDetector": "mmocgan_tf.detector",
    "ModelConfig": "mmocgan_tf.config",
    "TrainConfig": "mmocgan_tf.config",
    "ConfigError": "mmocgan_tf.config",
    "DataError": "mmocgan_tf.data",
    "load_data": "mmocgan_tf.data",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmocgan_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
