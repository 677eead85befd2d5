"""Offline batch scoring through an exported SavedModel, without a server.

Reads the input in chunks and writes the output CSV to a temporary file that is renamed
only when every row was scored, so a failure never leaves a partial file that looks done.
"""

import csv
import numbers

import numpy as np
import tensorflow as tf

from mmocgan_tf.data.chunks import iter_feature_chunks
from mmocgan_tf.deploy import export
from mmocgan_tf.deploy.serving.contract import (
    DEFAULT_SIGNATURE,
    EXPLAIN_SIGNATURE,
    explanation_columns,
    no_explain_signature,
    top_features,
)
from mmocgan_tf.files import atomic_write

OUTPUT_COLUMNS = ("score", "is_anomaly", "mode")


def load_exported(model_path, explain=False):
    """(signatures, metadata) of saved_models/NAME[/VERSION] (the newest version if none).

    Raises:
      ExportError: no exported model there, or (explain) one exported before the explain
        signature existed.
    """
    version_dir = export.latest_version_dir(model_path)
    signatures = tf.saved_model.load(version_dir).signatures
    if explain and EXPLAIN_SIGNATURE not in signatures:
        raise export.ExportError(no_explain_signature(version_dir))
    return signatures, export.read_metadata(version_dir)


def score_file(model_path, data_path, output_path, chunk_rows=65536, on_chunk=None,
               explain=False):
    """Scores every row of data_path into output_path (CSV: score,is_anomaly,mode).

    Table columns are matched to the model's features by name. Returns the number of rows.
    on_chunk, when given, is called with the rows scored so far after every chunk (a
    progress line: the total of a CSV file is not known before it is read).

    With explain, the export's explain signature adds, after those columns, one column
    attribution_<feature name> per feature (in the model's order; higher: the feature makes
    the row more anomalous, relative to its mode) and top_features, the names of the row's
    three largest attributions, largest first, joined by ";". Without it the output is
    exactly as before.

    Raises:
      ValueError: chunk_rows < 1 (which would score nothing and write a bare header).
      ExportError: no exported model at model_path (or, with explain, one without the
        explain signature).
      DataError: the data does not fit the model (missing columns, bad cells).
    """
    if (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, numbers.Integral)
            or chunk_rows < 1):
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    signatures, meta = load_exported(model_path, explain)
    names = meta["feature_names"]
    rows = 0
    with atomic_write(output_path, newline="" if explain else None) as out:
        writer = csv.writer(out, lineterminator="\n") if explain else None
        if explain:
            writer.writerow([*OUTPUT_COLUMNS, *explanation_columns(names)])
        else:
            out.write(",".join(OUTPUT_COLUMNS) + "\n")
        for chunk in iter_feature_chunks(data_path, names, chunk_rows):
            features = tf.constant(chunk)
            result = signatures[DEFAULT_SIGNATURE](features=features)
            block = np.column_stack([
                result["score"].numpy().astype(np.float64),
                result["is_anomaly"].numpy().astype(np.int64),
                result["mode"].numpy().astype(np.int64)])
            if explain:
                attributions = signatures[EXPLAIN_SIGNATURE](
                    features=features)["attributions"].numpy()
                _write_explained(writer, block, attributions, top_features(attributions, names))
            else:
                np.savetxt(out, block, fmt=("%.9g", "%d", "%d"), delimiter=",")
            rows += len(chunk)
            if on_chunk is not None:
                on_chunk(rows)
    return rows


def _write_explained(writer, block, attributions, top):
    """Rows of score,is_anomaly,mode (formatted as np.savetxt does), attributions, top."""
    for (score, is_anomaly, mode), values, names in zip(block, attributions, top, strict=True):
        writer.writerow([f"{score:.9g}", int(is_anomaly), int(mode),
                         *(f"{v:.9g}" for v in values), names])
