"""mmocgan-tf: multimodal one-class GAN anomaly detection for tabular data.

The model classes are imported on first use, so the commands can quiet TensorFlow's
start-up log before it loads, and reading config or data never loads it.
"""

from mmocgan_tf.config import ConfigError, ModelConfig, TrainConfig
from mmocgan_tf.data import DataError, load_data

__version__ = "0.1.0"

__all__ = ["MMOCGAN", "MMOCGANDetector", "ModelConfig", "TrainConfig", "ConfigError",
           "DataError", "load_data", "__version__"]


def __getattr__(name):
    if name == "MMOCGAN":
        from mmocgan_tf.model.mmocgan import MMOCGAN

        return MMOCGAN
    if name == "MMOCGANDetector":
        from mmocgan_tf.detector import MMOCGANDetector

        return MMOCGANDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
