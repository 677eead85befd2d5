"""Scoring a data file through a model server, the table's columns mapped by name.

The server knows what it serves: the export's feature_names signature names the columns to
send and their order, so a CSV's columns may come in any order and no local copy of the
model is needed. An export without that signature (written by an older version) gets the
file's columns in their order, checked against the input width the server declares.
"""

import csv
import functools
import os

import numpy as np

from mmocgan_tf.data import DataError, load_data
from mmocgan_tf.deploy.serving.contract import (
    EXPLAIN_SIGNATURE,
    INPUT_NAME,
    ServingError,
    explanation_columns,
    no_explain_signature,
    top_features,
)
from mmocgan_tf.files import atomic_write

OUTPUT_COLUMNS = ("score", "is_anomaly", "mode")
BLOCK_ROWS = 65536  # rows between two progress reports
NAMED_SOURCES = (".csv", ".parquet")  # tables whose header names the columns


def score_file(client, data_path, output_path, *, feature_columns=None, on_rows=None,
               explain=False):
    """Scores every row of data_path on the server and writes output_path.

    The output CSV has score,is_anomaly,mode per input row (is_anomaly as 0/1; a signature
    without decisions gives score only). With explain, the export's explain signature is
    called too, and attribution_<feature> for every feature plus top_features (the names of
    the row's three largest attributions, joined by ";") follow. It is renamed into place
    once complete, so a failure leaves no partial file and an earlier output untouched.

    Args:
      client: a GrpcClient or RestClient for the served model and signature.
      data_path: .csv or .parquet (columns matched by name), .npz or .npy (in order).
      output_path: the CSV to write; its folder must exist.
      feature_columns: the table columns to send, in the model's order; default the names
        the server gives, else (an export without them) every column in file order.
      on_rows: called with (rows scored so far, rows in all) after each block of rows.
      explain: also write each row's per-feature attributions (see above).

    Returns:
      (rows scored, rows flagged as anomalies or None when the signature has no is_anomaly);
      with explain, a third item: {"feature_names": the d names, "score": [n],
      "is_anomaly": [n] or None, "attributions": float32 [n, d], "mode": int32 [n]}. The
      names are the server's feature names, else the columns sent.

    Raises:
      DataError: unreadable data, missing columns, a column count the model does not take.
      ServingError: the server failed or refused the request.
    """
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise DataError(f"{output_path}: folder {folder} does not exist")
    meta = client.metadata()
    columns = [name for name in OUTPUT_COLUMNS if name in meta["outputs"]]
    if "score" not in columns:
        raise DataError(f"signature {meta['signature']!r} has no score output")
    if explain and EXPLAIN_SIGNATURE not in meta["signatures"]:  # before any row is sent
        raise ServingError(no_explain_signature(f"model {meta['model_name']!r} on the "
                                                "server"), code="NOT_FOUND")
    server_names = functools.cache(client.feature_names)  # asked for once, if at all
    data, how = _load_rows(data_path, feature_columns, server_names)
    shape = meta["inputs"].get(INPUT_NAME, {}).get("shape") or (None,)
    if shape[-1] is not None and shape[-1] != data.x.shape[1]:
        raise DataError(f"{data.source}: {data.x.shape[1]} feature columns ({how}), the model "
                        f"expects {shape[-1]}; name them, in its order, with feature_columns")
    names = (server_names() or list(data.feature_names)) if explain else None
    parts, explained = [], []
    for start in range(0, len(data.x), BLOCK_ROWS):
        block = data.x[start:start + BLOCK_ROWS]
        parts.append(client.predict(block))
        if explain:
            explained.append(client.explain(block))
        if on_rows is not None:
            on_rows(min(start + BLOCK_ROWS, len(data.x)), len(data.x))
    out = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    if explain:
        attributions = np.concatenate([part["attributions"] for part in explained])
        if attributions.shape[1] != len(names):
            raise DataError(f"the server explains {attributions.shape[1]} features, but "
                            f"{len(names)} are named: {', '.join(names)}")
    with atomic_write(output_path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns + (explanation_columns(names) if explain else []))
        values = [out[name] if name == "score" else out[name].astype(int) for name in columns]
        if explain:
            values += [attributions, top_features(attributions, names)]
        for row in zip(*values, strict=True):
            cells = [f"{row[0]:.9g}", *(int(v) for v in row[1:len(columns)])]
            if explain:
                cells += [f"{v:.9g}" for v in row[len(columns)]] + [row[len(columns) + 1]]
            writer.writerow(cells)
    flagged = int(out["is_anomaly"].sum()) if "is_anomaly" in out else None
    if not explain:
        return len(data.x), flagged
    mode = np.concatenate([part["mode"] for part in explained])
    return len(data.x), flagged, {"feature_names": names, "score": out["score"],
                                  "is_anomaly": out.get("is_anomaly"),
                                  "attributions": attributions, "mode": mode}


def _load_rows(data_path, feature_columns, server_names):
    """(the rows to send, how their columns were chosen, for messages).

    By the given names, else by the server's names (server_names(): tables only), else as
    the file has them.
    """
    if feature_columns is not None:
        return load_data(data_path, feature_columns=feature_columns), "as named"
    if not os.fspath(data_path).lower().endswith(NAMED_SOURCES):
        return load_data(data_path), "every column, in file order"
    names = server_names()
    if names is None:
        return load_data(data_path), ("every column, in file order: the served export has "
                                      "no feature_names signature to map them by name")
    try:
        return load_data(data_path, feature_columns=names), "named by the server"
    except DataError as err:
        raise DataError(f"{err} (the served model's features: {', '.join(names)})") from None
