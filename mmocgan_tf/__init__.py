"""mmocgan-tf: multimodal one-class GAN anomaly detection for tabular data."""

from mmocgan_tf.config import ConfigError, ModelConfig, TrainConfig
from mmocgan_tf.data.loading import DataError, load_data
from mmocgan_tf.detector import MMOCGANDetector
from mmocgan_tf.model.mmocgan import MMOCGAN

__version__ = "0.1.0"

__all__ = ["MMOCGAN", "MMOCGANDetector", "ModelConfig", "TrainConfig", "ConfigError",
           "DataError", "load_data", "__version__"]
