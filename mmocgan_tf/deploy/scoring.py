"""Offline batch scoring through an exported SavedModel, without a server.

Reads the input in chunks and writes the output CSV to a temporary file that is renamed
only when every row was scored, so a failure never leaves a partial file that looks done.
"""

import numbers

import numpy as np
import tensorflow as tf

from mmocgan_tf.data.chunks import iter_feature_chunks
from mmocgan_tf.deploy import export
from mmocgan_tf.files import atomic_write

OUTPUT_COLUMNS = ("score", "is_anomaly", "mode")


def load_exported(model_path):
    """(serving_default function, metadata) of saved_models/NAME[/VERSION] (newest if none)."""
    version_dir = export.latest_version_dir(model_path)
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    return signature, export.read_metadata(version_dir)


def score_file(model_path, data_path, output_path, chunk_rows=65536, on_chunk=None):
    """Scores every row of data_path into output_path (CSV: score,is_anomaly,mode).

    Table columns are matched to the model's features by name. Returns the number of rows.
    on_chunk, when given, is called with the rows scored so far after every chunk (a
    progress line: the total of a CSV file is not known before it is read).

    Raises:
      ValueError: chunk_rows < 1 (which would score nothing and write a bare header).
      ExportError: no exported model at model_path.
      DataError: the data does not fit the model (missing columns, bad cells).
    """
    if (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, numbers.Integral)
            or chunk_rows < 1):
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    signature, meta = load_exported(model_path)
    rows = 0
    with atomic_write(output_path) as out:
        out.write(",".join(OUTPUT_COLUMNS) + "\n")
        for chunk in iter_feature_chunks(data_path, meta["feature_names"], chunk_rows):
            result = signature(features=tf.constant(chunk))
            block = np.column_stack([
                result["score"].numpy().astype(np.float64),
                result["is_anomaly"].numpy().astype(np.int64),
                result["mode"].numpy().astype(np.int64)])
            np.savetxt(out, block, fmt=("%.9g", "%d", "%d"), delimiter=",")
            rows += len(chunk)
            if on_chunk is not None:
                on_chunk(rows)
    return rows
