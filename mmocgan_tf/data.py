"""Loading tabular data from files, the bundled set or the generator.

Why one module: every entry point (CLI, benchmarks, notebooks) needs the same
checks, and a user feeding a messy CSV should get one line saying which file,
column and row is wrong instead of a stack trace from deep inside training.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import itertools
import math
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

ACCEPTED_SPECS = (
    "a path ending .csv, .parquet, .npz or .npy, 'bundled:thyroid' or 'synthetic:production_line'"
)
BUNDLED = {"thyroid": "thyroid.npz"}
SYNTHETIC = ("production_line",)


class DataError(ValueError):
    """Bad input data.

    str(err) is ONE line naming the problem (file, column, row) for the CLI to print.
    """

    def __init__(self, message: str):
        super().__init__(re.sub(r"\s*[\r\n]+\s*", " ", str(message)).strip())


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
    columns = _as_names(feature_columns)
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
        if suffix in (".csv", ".parquet"):
            table = _read_csv(text) if suffix == ".csv" else _read_parquet(text)
            return _load_table(table, columns, label, normal)
        data = _load_arrays(text)

    if label is not None:
        raise DataError(f"{data.source}: label_column applies to CSV/Parquet only")
    if columns is None:
        return data
    names = list(data.feature_names)
    picked = [names.index(n) for n in _check_columns(data.source, names, columns, None)]
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
    bad = _first_bad(x)
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


def iter_feature_chunks(
    path: str, feature_names: Sequence[str], chunk_rows: int = 65536
):
    """Yields float32 blocks [<= chunk_rows, d] of the named features, in row order.

    CSV files are read lazily and .npy files memory-mapped, so files larger than memory can
    be scored; .npz and Parquet are loaded whole. Table columns are matched by name (extra
    columns such as an id are ignored); arrays must have exactly d columns.

    Raises:
        DataError: missing file, missing columns (naming them and the extra ones),
            non-numeric or non-finite cells (naming column and row).
    """
    names = list(feature_names)
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".csv":
        yield from _csv_chunks(path, names, chunk_rows)
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
        _require_finite(block, path, lambda row, s=start: f"row {s + row + 1}", names)
        yield block.astype(np.float32)


def _csv_chunks(path: str, names: list[str], chunk_rows: int):
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = [f.strip() for f in next(csv.reader([handle.readline()]), [])]
        missing = [n for n in names if n not in header]
        if missing:
            extra = [h for h in header if h not in names]
            raise DataError(f"{path}: missing feature columns {_shown(missing)}"
                            + (f"; extra columns {_shown(extra)}" if extra else ""))
        index = [header.index(n) for n in names]
        first = 0
        while lines := list(itertools.islice(handle, chunk_rows)):
            block = _parse_lines(path, header, names, index, lines, first)
            first += len(block)
            yield block


def _parse_lines(path, header, names, index, lines, first):
    """float32 block of the named columns; numpy's C parser first, then a diagnosis."""
    try:
        x64 = np.loadtxt(lines, delimiter=",", usecols=index, dtype=np.float64, ndmin=2,
                         quotechar='"')
        if x64.shape[0] == sum(1 for line in lines if line.strip()) and all(
                line.count(",") == len(header) - 1 for line in lines if line.strip()):
            _require_finite(x64, path, lambda row: f"row {first + row + 1}", names)
            return x64.astype(np.float32)
    except ValueError:
        pass
    rows = [fields for fields in csv.reader(lines) if fields]
    for number, fields in enumerate(rows):
        if len(fields) != len(header):
            raise DataError(f"{path}: row {first + number + 1} has {len(fields)} fields, "
                            f"header has {len(header)}")
    table = _Table(path, header, len(rows), None, lambda row: f"row {first + row + 1}")
    x64 = np.empty((len(rows), len(names)), dtype=np.float64)
    for j, (name, column) in enumerate(zip(names, index, strict=True)):
        x64[:, j] = _column_floats([r[column] for r in rows], table, name)
    _require_finite(x64, path, table.where, names)
    return x64.astype(np.float32)


# --------------------------------------------------------- named and arrays


def _load_named(spec: str, seed: int) -> TabularData:
    kind, _, name = spec.partition(":")
    if kind == "bundled":
        if name not in BUNDLED:
            raise DataError(f"unknown bundled data set {name!r}; available: {', '.join(BUNDLED)}")
        resource = importlib.resources.files("mmocgan_tf").joinpath("datasets", BUNDLED[name])
        with importlib.resources.as_file(resource) as path:
            if not path.is_file():
                raise DataError(f"{spec}: {BUNDLED[name]} is missing from the installed package")
            return dataclasses.replace(_load_arrays(str(path)), source=spec)
    if name not in SYNTHETIC:
        raise DataError(f"unknown synthetic data set {name!r}; available: {', '.join(SYNTHETIC)}")
    from mmocgan_tf.synthetic import make_production_line  # lazy: only this spec needs it

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
    _require_finite(x64, source, lambda row: f"row {row + 1}", _default_names(x.shape[1]))
    return x64.astype(np.float32)


def _check_labels(y: np.ndarray, n_rows: int, source: str) -> np.ndarray:
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise DataError(f"{source}: y must have one label per row ({n_rows}), got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise DataError(f"{source}: y must be numeric 0/1, got dtype {y.dtype}")
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(str(v) for v in values[:5])
        raise DataError(f"{source}: y must be 0 (normal) or 1 (anomaly), found {shown}")
    return y.astype(np.int32)


def _first_bad(x: np.ndarray) -> tuple[int, int] | None:
    bad = np.argwhere(~np.isfinite(x))
    return None if bad.size == 0 else (int(bad[0, 0]), int(bad[0, 1]))


def _require_finite(x64: np.ndarray, source: str, where: Callable, names: Sequence[str]) -> None:
    """Rejects NaN/inf, and values that only become inf when cast to float32."""
    with np.errstate(over="ignore"):
        as_float32 = x64.astype(np.float32)
    for array in (x64, as_float32):
        bad = _first_bad(array)
        if bad is not None:
            row, col = bad
            value = x64[row, col]
            if array is not x64:
                what = f"value {value:g} too large for float32"
            else:
                what = "NaN value" if np.isnan(value) else f"infinite value {value}"
            raise DataError(f"{source}: column {names[col]!r}, {where(row)}: {what}")


# ------------------------------------------------------------ CSV and Parquet


@dataclasses.dataclass(frozen=True)
class _Table:
    """A header plus a way to fetch columns; what the CSV and Parquet readers share."""

    path: str
    names: list[str]
    n_rows: int
    fetch: Callable[[list[str]], dict]  # names -> {name: list of cells, or float64 ndarray}
    where: Callable[[int], str]  # 0-based data row -> text such as "row 3 (line 4)"


def _as_names(columns: Sequence[str] | str | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = columns.split(",")
    return [str(c).strip() for c in columns]


def _shown(names: Sequence[str], limit: int = 20) -> str:
    text = ", ".join(repr(n) for n in names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _check_columns(
    source: str, names: list[str], wanted: list[str] | None, label: str | None
) -> list[str]:
    """Validates the header and the requested columns; returns the feature names in order."""
    for name in names:
        if names.count(name) > 1:
            raise DataError(f"{source}: duplicate column name {name!r} in header")
    if label is not None and label not in names:
        raise DataError(f"{source}: label column {label!r} not found; available: {_shown(names)}")
    if wanted is None:
        wanted = [n for n in names if n != label]
        if "" in wanted:
            position = names.index("") + 1
            raise DataError(
                f"{source}: column {position} has an empty name; name it or pass feature_columns"
            )
    for name in wanted:
        if name not in names:
            available = _shown(names)
            raise DataError(f"{source}: feature column {name!r} not found; available: {available}")
        if name == label:
            raise DataError(f"{source}: column {name!r} cannot be both a feature and the label")
        if wanted.count(name) > 1:
            raise DataError(f"{source}: feature column {name!r} requested more than once")
    if not wanted:
        raise DataError(f"{source}: no feature columns left besides the label {label!r}")
    return wanted


def _load_table(table: _Table, columns: list[str] | None, label: str | None, normal: str):
    features = _check_columns(table.path, table.names, columns, label)
    if table.n_rows == 0:
        raise DataError(f"{table.path}: has no data rows")
    cells = table.fetch(features + ([label] if label is not None else []))
    x64 = np.empty((table.n_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        x64[:, j] = _column_floats(cells[name], table, name)
    _require_finite(x64, table.path, table.where, features)
    y = None if label is None else _labels(cells[label], normal, table, label)
    return TabularData(x64.astype(np.float32), y, tuple(features), table.path)


def _column_floats(cells: list | np.ndarray, table: _Table, name: str) -> np.ndarray:
    if isinstance(cells, np.ndarray):
        return cells.astype(np.float64)
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except (TypeError, ValueError):
        pass  # find and name the first bad cell below
    for row, cell in enumerate(cells):
        where = f"{table.path}: column {name!r}, {table.where(row)}"
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            raise DataError(f"{where}: missing value (empty or null)")
        try:
            float(cell)
        except (TypeError, ValueError):
            text = str(cell)
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise DataError(f"{where}: non-numeric value {shown!r}") from None
    raise AssertionError("unreachable: some cell failed float() above")


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def _labels(cells: list | np.ndarray, normal: str, table: _Table, label: str) -> np.ndarray:
    """1 where the label differs from normal, comparing as text or else as numbers."""
    texts = ["" if c is None else str(c).strip() for c in cells]
    if "" in texts:
        where = table.where(texts.index(""))
        raise DataError(f"{table.path}: label column {label!r}, {where}: missing label")
    distinct, inverse = np.unique(np.array(texts, dtype=str), return_inverse=True)
    number = _as_number(normal)
    is_normal = np.array(
        [t == normal or (number is not None and _as_number(t) == number) for t in distinct]
    )
    if not is_normal.any():
        seen = _shown([str(t) for t in distinct], 5)
        raise DataError(
            f"{table.path}: no value of label column {label!r} equals normal_label {normal!r}; "
            f"values seen: {seen}"
        )
    return (~is_normal[inverse.ravel()]).astype(np.int32)


def _read_csv(path: str) -> _Table:
    header, rows, lines = None, [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                if not fields:  # blank line
                    continue
                if header is None:
                    header = [f.strip() for f in fields]
                elif len(fields) != len(header):
                    raise DataError(
                        f"{path}: row {len(rows) + 1} (line {reader.line_num}) has "
                        f"{len(fields)} fields, header has {len(header)}"
                    )
                else:
                    rows.append(fields)
                    lines.append(reader.line_num)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err.strerror or err})") from None
    if header is None or not rows:
        raise DataError(f"{path}: has no data rows ({'header only' if header else 'empty file'})")

    def fetch(names: list[str]) -> dict:
        return {n: [row[header.index(n)] for row in rows] for n in names}

    return _Table(path, header, len(rows), fetch, lambda row: f"row {row + 1} (line {lines[row]})")


def _read_parquet(path: str) -> _Table:
    try:
        import pyarrow.parquet as pq  # lazy: optional dependency
        import pyarrow.types as pa_types
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        handle = pq.ParquetFile(path)
        names = [str(n) for n in handle.schema_arrow.names]
    except Exception as err:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path}: cannot read Parquet file ({type(err).__name__}: {err})") from None
    stripped = [n.strip() for n in names]

    def fetch(wanted: list[str]) -> dict:
        table = handle.read(columns=[names[stripped.index(n)] for n in wanted])
        out = {}
        for name, column in zip(wanted, table.columns, strict=True):
            numeric = pa_types.is_integer(column.type) or pa_types.is_floating(column.type)
            if numeric and column.null_count == 0:
                out[name] = column.to_numpy().astype(np.float64)
            else:
                out[name] = column.to_pylist()
        return out

    return _Table(path, stripped, handle.metadata.num_rows, fetch, lambda row: f"row {row + 1}")
