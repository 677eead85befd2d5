"""Data: loading tables and bundled sets, streaming large files, synthetic data."""

from mmocgan_tf.data.errors import DataError
from mmocgan_tf.data.loading import TabularData, load_data

__all__ = ["DataError", "TabularData", "load_data"]
