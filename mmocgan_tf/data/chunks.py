"""Features in blocks, for scoring files larger than memory with a model's columns.

Why apart from loading: scoring never needs a whole table, labels or a split, only the
model's features in row order, a block at a time; the CSV blocks come from the same
parser (`tables`) that loading uses, so a file that trains also scores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from mmocgan_tf.data import tables
from mmocgan_tf.data.columns import require_finite
from mmocgan_tf.data.errors import DataError
from mmocgan_tf.data.loading import load_data


def iter_feature_chunks(
    path: str, feature_names: Sequence[str], chunk_rows: int = 65536
) -> Iterator[np.ndarray]:
    """Yields float32 blocks [<= chunk_rows, d] of the named features, in row order.

    CSV files are read lazily and .npy files memory-mapped, so files larger than memory can
    be scored; .npz and Parquet are loaded whole. Table columns are matched by name (extra
    columns such as an id are ignored); arrays must have exactly d columns.

    Args:
        path: A .csv, .npy, .npz or .parquet file.
        feature_names: The model's features, in its input order.
        chunk_rows: Rows per block at most.

    Raises:
        DataError: missing file, missing columns (naming them and the extra ones),
            non-numeric or non-finite cells (naming column and row).
    """
    names = list(feature_names)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".csv":
        yield from tables.csv_feature_blocks(path, names, chunk_rows)
        return
    if suffix == ".npy":
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    elif suffix in (".npz", ".parquet"):
        columns = names if suffix == ".parquet" else None
        x = load_data(path, feature_columns=columns).x
    else:
        raise DataError(f"{path}: cannot score this file type; use .csv, .npy, .npz or .parquet")
    if x.ndim != 2 or x.shape[1] != len(names):
        raise DataError(f"{path}: expected {len(names)} feature columns, got shape {x.shape}")
    for start in range(0, x.shape[0], chunk_rows):
        block = np.asarray(x[start:start + chunk_rows], dtype=np.float64)
        require_finite(block, path, lambda row, s=start: f"row {s + row + 1}", names)
        yield block.astype(np.float32)
