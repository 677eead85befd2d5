"""Loading whole tables, the bundled set or the generator, and splitting them to train.

Why one module: every entry point (CLI, benchmarks, notebooks) needs the same
checks, and a user feeding a messy CSV should get one line saying which file,
column and row is wrong instead of a stack trace from deep inside training.
The files themselves are read by `tables`, the cells checked by `columns`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import itertools
import math
import os
from collections.abc import Sequence

import numpy as np

from mmocgan_tf.data import tables
from mmocgan_tf.data.columns import (
    as_names,
    check_columns,
    first_bad,
    require_finite,
    shown,
)
from mmocgan_tf.data.errors import DataError

__all__ = ["ACCEPTED_SPECS", "BUNDLED", "SYNTHETIC", "DataError", "TabularData", "check_trainable",
           "load_data", "load_split", "split_normal_holdout"]  # DataError: errors', re-exported

ACCEPTED_SPECS = (
    "a path ending .csv, .parquet, .npz or .npy, 'bundled:thyroid' or 'synthetic:production_line'"
)
BUNDLED = {"thyroid": "thyroid.npz"}
SYNTHETIC = ("production_line",)


@dataclasses.dataclass(frozen=True)
class TabularData:
    """Loaded data, features still in their own units (scaling belongs to the model).

    Attributes:
        x: float32 [n, d] raw features.
        y: int32 [n], 1 = anomaly, 0 = normal; None when the source has no labels.
        feature_names: One name per column of x.
        source: What was loaded, for logs.
    """

    x: np.ndarray
    y: np.ndarray | None
    feature_names: tuple[str, ...]
    source: str


def load_data(
    spec: str | os.PathLike,
    *,
    feature_columns: Sequence[str] | str | None = None,
    label_column: str | None = None,
    normal_label: str | None = None,
    seed: int = 0,
) -> TabularData:
    """Loads a data set named by spec.

    Args:
        spec: A .csv/.parquet path (header names the columns), a .npz path
            with arrays X and optional y (ADBench layout), a .npy path (2-D,
            no labels), "bundled:thyroid" or "synthetic:production_line".
        feature_columns: Names picking and ordering the features; None means
            every column except the label column. A string is read as a
            comma-separated list (handy for CLI flags). Array sources name
            their columns f0..f{d-1}.
        label_column: Column holding labels (CSV/Parquet only); rows whose
            label differs from normal_label are anomalies.
        normal_label: Label of normal rows, compared as stripped text or as
            numbers ("0" equals "0.0"). Defaults to "0"; ignored without
            label_column, so a CLI may always pass its default.
        seed: Seed for the synthetic generator.

    Raises:
        DataError: With a one-line message naming what is wrong.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise DataError(f"data spec must be a string, got {type(spec).__name__}")
    text = os.fspath(spec)
    columns = as_names(feature_columns)
    label = None if label_column is None else str(label_column).strip()
    normal = "0" if normal_label is None else str(normal_label).strip()

    if text.startswith(("bundled:", "synthetic:")):
        data = _load_named(text, seed)
    else:
        suffix = os.path.splitext(text)[1].lower()
        if suffix not in (".csv", ".parquet", ".npz", ".npy"):
            raise DataError(f"unknown data spec {text!r}; expected {ACCEPTED_SPECS}")
        if not os.path.isfile(text):
            reason = "not a file" if os.path.exists(text) else "file not found"
            raise DataError(f"{text}: {reason}")
        if suffix == ".csv":
            return _load_csv(text, columns, label, normal)
        if suffix == ".parquet":
            return _load_table(tables.read_parquet(text), columns, label, normal)
        data = _load_arrays(text)

    if label is not None:
        raise DataError(f"{data.source}: label_column applies to CSV/Parquet only")
    if columns is None:
        return data
    names = list(data.feature_names)
    picked = [names.index(n) for n in check_columns(data.source, names, columns, None)]
    return dataclasses.replace(
        data, x=np.ascontiguousarray(data.x[:, picked]), feature_names=tuple(columns)
    )


def split_normal_holdout(
    data: TabularData, *, holdout_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Splits data by the paper's protocol (one fold), so training never sees an anomaly.

    Training rows = a random (seeded) 1 - holdout_fraction share of the NORMAL
    rows; evaluation = the held-out normal rows plus ALL anomalies. Rows keep
    their source order within each part, so evaluation rows can be traced back.

    Returns:
        (x_train, x_eval, y_eval); without labels (all rows, None, None).

    Raises:
        DataError: If labels exist but there are no normal rows.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise DataError(f"holdout_fraction must be between 0 and 1, got {holdout_fraction}")
    if data.y is None:
        return data.x, None, None
    normal = np.flatnonzero(data.y == 0)
    if normal.size == 0:
        raise DataError(f"{data.source}: no normal rows (label 0) to train on")
    shuffled = np.random.default_rng(seed).permutation(normal)
    n_holdout = int(round(holdout_fraction * normal.size))
    if n_holdout >= normal.size:
        raise DataError(f"{data.source}: only {normal.size} normal rows, none left to train on")
    train = np.sort(shuffled[n_holdout:])
    held = np.sort(np.concatenate([shuffled[:n_holdout], np.flatnonzero(data.y == 1)]))
    return data.x[train], data.x[held], data.y[held]


def check_trainable(x: np.ndarray, batch_size: int) -> None:
    """Fails early, before a model is built, on data that cannot train.

    Raises:
        DataError: If x has fewer rows than one batch (naming both numbers), or
            holds non-finite values.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"training data must be 2-D [rows, features], got shape {x.shape}")
    if x.shape[0] < batch_size:
        raise DataError(
            f"only {x.shape[0]} training rows, fewer than one batch of {batch_size}; "
            "use a smaller batch size or more data"
        )
    bad = first_bad(x)
    if bad is not None:
        row, col = bad
        raise DataError(
            f"training data has non-finite value {x[row, col]} at row {row + 1}, column {col + 1}"
        )


def load_split(config) -> tuple[TabularData, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The rows a TrainConfig trains and evaluates on, checked before any model is built.

    Returns:
        (data, x_train, x_eval, y_eval) as split_normal_holdout gives them.

    Raises:
        DataError: If the data cannot be loaded or trained on.
    """
    data = load_data(
        config.data, feature_columns=tuple(config.feature_columns) or None,
        label_column=config.label_column or None, normal_label=config.normal_label,
        seed=config.model.seed)
    x_train, x_eval, y_eval = split_normal_holdout(
        data, holdout_fraction=config.holdout_fraction, seed=config.model.seed)
    check_trainable(x_train, config.batch_size)
    return data, x_train, x_eval, y_eval


# --------------------------------------------------------- named and arrays


def _load_named(spec: str, seed: int) -> TabularData:
    kind, _, name = spec.partition(":")
    if kind == "bundled":
        if name not in BUNDLED:
            raise DataError(f"unknown bundled data set {name!r}; available: {', '.join(BUNDLED)}")
        resource = importlib.resources.files("mmocgan_tf.data").joinpath("datasets", BUNDLED[name])
        with importlib.resources.as_file(resource) as path:
            if not path.is_file():
                raise DataError(f"{spec}: {BUNDLED[name]} is missing from the installed package")
            return dataclasses.replace(_load_arrays(str(path)), source=spec)
    if name not in SYNTHETIC:
        raise DataError(f"unknown synthetic data set {name!r}; available: {', '.join(SYNTHETIC)}")
    from mmocgan_tf.data.synthetic import make_production_line  # lazy: only this spec needs it

    x, y = make_production_line(seed=seed)
    return TabularData(x, y, _default_names(x.shape[1]), f"{spec} (seed={seed})")


def _default_names(d: int) -> tuple[str, ...]:
    return tuple(f"f{i}" for i in range(d))


def _load_arrays(path: str) -> TabularData:
    """Reads a .npy (2-D X, no labels) or a .npz (X and optional y, the ADBench layout)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
        if not (magic.startswith(b"PK") or magic == b"\x93NUMPY"):
            raise DataError(f"{path}: not a NumPy .npy/.npz file")
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            x, y = loaded, None
        else:
            with loaded:
                if "X" not in loaded.files:
                    found = ", ".join(loaded.files) or "nothing"
                    raise DataError(f"{path}: no array 'X' (found {found})")
                x = loaded["X"]
                y = loaded["y"] if "y" in loaded.files else None
    except DataError:
        raise
    except Exception as err:  # whatever np.load trips on, the file is not usable
        raise DataError(f"{path}: cannot read file ({type(err).__name__}: {err})") from None
    x = _check_matrix(x, path)
    y = None if y is None else _check_labels(y, x.shape[0], path)
    return TabularData(x, y, _default_names(x.shape[1]), path)


def _check_matrix(x: np.ndarray, source: str) -> np.ndarray:
    """Checks for a 2-D, numeric, finite array with rows and columns; returns it as float32."""
    if x.ndim != 2:
        raise DataError(f"{source}: X must be 2-D [rows, features], got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        if x.dtype != bool:
            raise DataError(f"{source}: X must be numeric, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise DataError(f"{source}: has no data rows")
    if x.shape[1] == 0:
        raise DataError(f"{source}: X has no feature columns")
    x64 = x.astype(np.float64)
    require_finite(x64, source, lambda row: f"row {row + 1}", _default_names(x.shape[1]))
    return x64.astype(np.float32)


def _check_labels(y: np.ndarray, n_rows: int, source: str) -> np.ndarray:
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise DataError(f"{source}: y must have one label per row ({n_rows}), got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise DataError(f"{source}: y must be numeric 0/1, got dtype {y.dtype}")
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        found = ", ".join(str(v) for v in values[:5])
        raise DataError(f"{source}: y must be 0 (normal) or 1 (anomaly), found {found}")
    return y.astype(np.int32)


# ------------------------------------------------------------------ tables


# Lines of a CSV file parsed at a time: only one block is held as text, so a bad row is
# refused once its block is read and a good file costs little more than its numbers.
CSV_BLOCK_ROWS = 65536


def _load_csv(path: str, columns: list[str] | None, label: str | None, normal: str):
    """A CSV file read block by block into float32 rows (and label texts)."""
    with tables.CsvFile(path) as source:
        blocks = source.blocks(CSV_BLOCK_ROWS)
        first = next(blocks, None)
        if first is None:
            what = "header only" if source.header else "empty file"
            raise DataError(f"{path}: has no data rows ({what})")
        features = check_columns(path, source.header, columns, label)
        parts, codes, vocabulary = [], [], {}
        for table in itertools.chain([first], blocks):
            parts.append(_features(table, features))
            if label is not None:
                codes.append(_label_codes(_label_texts(table, label), vocabulary))
    x = parts[0] if len(parts) == 1 else np.concatenate(parts)
    y = None if label is None else _labels(np.concatenate(codes), vocabulary, normal, path,
                                           label)
    return TabularData(x, y, tuple(features), path)


def _load_table(table: tables.Table, columns: list[str] | None, label: str | None, normal: str):
    features = check_columns(table.path, table.names, columns, label)
    if table.n_rows == 0:
        raise DataError(f"{table.path}: has no data rows")
    x, y = _features(table, features), None
    if label is not None:
        vocabulary = {}
        codes = _label_codes(_label_texts(table, label), vocabulary)
        y = _labels(codes, vocabulary, normal, table.path, label)
    return TabularData(x, y, tuple(features), table.path)


def _features(table: tables.Table, features: list[str]) -> np.ndarray:
    """The table's feature columns as float32, every value checked finite."""
    x64 = table.numbers(features)
    require_finite(x64, table.path, table.where, features)
    return x64.astype(np.float32)


def _label_texts(table: tables.Table, label: str) -> list[str]:
    """The label column's cells as stripped text; a missing label names its row."""
    texts = ["" if c is None else str(c).strip() for c in table.fetch([label])[label]]
    if "" in texts:
        where = table.where(texts.index(""))
        raise DataError(f"{table.path}: label column {label!r}, {where}: missing label")
    return texts


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def _label_codes(texts: list[str], vocabulary: dict[str, int]) -> np.ndarray:
    """int32 codes of label texts, new texts added to vocabulary (text -> code)."""
    distinct, inverse = np.unique(np.array(texts, dtype=str), return_inverse=True)
    local = np.array([vocabulary.setdefault(str(t), len(vocabulary)) for t in distinct],
                     np.int32)
    return local[inverse.ravel()]


def _labels(codes: np.ndarray, vocabulary: dict[str, int], normal: str, path: str,
            label: str) -> np.ndarray:
    """1 where the label differs from normal, comparing as text or else as numbers."""
    number = _as_number(normal)
    is_normal = np.array([t == normal or (number is not None and _as_number(t) == number)
                          for t in vocabulary])
    if not is_normal.any():
        seen = shown(sorted(vocabulary), 5)
        raise DataError(
            f"{path}: no value of label column {label!r} equals normal_label {normal!r}; "
            f"values seen: {seen}"
        )
    return (~is_normal[codes]).astype(np.int32)
