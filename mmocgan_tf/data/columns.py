"""Column names and cell values: the checks every table reader shares.

Why one module: the in-memory loader, the chunked scorer and the tf.data streams all
pick columns by name and turn cells into numbers, and a mistake in a file should get the
same one-line message whichever of them read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mmocgan_tf.data.errors import DataError


def as_names(columns: Sequence[str] | str | None) -> list[str] | None:
    """Column names as a list of stripped strings.

    Args:
        columns: A sequence of names, a comma-separated string (handy for CLI flags) or
            None.

    Returns:
        The stripped names, or None for None.
    """
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = columns.split(",")
    return [str(c).strip() for c in columns]


def shown(names: Sequence[str], limit: int = 20) -> str:
    """Names quoted for a message, the list cut short so a wide table keeps it one line.

    Args:
        names: The names to show.
        limit: How many to show before counting the rest.

    Returns:
        Text such as "'a', 'b', ... (3 more)".
    """
    text = ", ".join(repr(n) for n in names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_columns(
    source: str, names: list[str], wanted: list[str] | None, label: str | None
) -> list[str]:
    """Validates a header and the requested columns.

    Args:
        source: The file, for messages.
        names: The header's column names.
        wanted: Feature names picking and ordering the features; None = every column
            except the label.
        label: The label column, or None.

    Returns:
        The feature names, in order.

    Raises:
        DataError: Duplicate or empty header names, a missing label or feature column, a
            feature that is also the label or requested twice, or no features at all.
    """
    for name in names:
        if names.count(name) > 1:
            raise DataError(f"{source}: duplicate column name {name!r} in header")
    if label is not None and label not in names:
        raise DataError(f"{source}: label column {label!r} not found; available: {shown(names)}")
    if wanted is None:
        wanted = [n for n in names if n != label]
        if "" in wanted:
            position = names.index("") + 1
            raise DataError(
                f"{source}: column {position} has an empty name; name it or pass feature_columns"
            )
    for name in wanted:
        if name not in names:
            available = shown(names)
            raise DataError(f"{source}: feature column {name!r} not found; available: {available}")
        if name == label:
            raise DataError(f"{source}: column {name!r} cannot be both a feature and the label")
        if wanted.count(name) > 1:
            raise DataError(f"{source}: feature column {name!r} requested more than once")
    if not wanted:
        raise DataError(f"{source}: no feature columns left besides the label {label!r}")
    return wanted


def column_floats(
    cells: list | np.ndarray, source: str, name: str, where: Callable[[int], str]
) -> np.ndarray:
    """One column's cells as float64, by Python's float() (so " 1.5 " and "1e3" are numbers).

    Args:
        cells: Text (or Parquet values, None for null) of each row, or an ndarray that is
            already numeric.
        source: The file, for messages.
        name: The column, for messages.
        where: 0-based row -> its place in the file for messages, e.g. "row 3 (line 4)".

    Returns:
        float64 [rows].

    Raises:
        DataError: Naming the first missing or non-numeric cell.
    """
    if isinstance(cells, np.ndarray):
        return cells.astype(np.float64)
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except (TypeError, ValueError):
        pass  # find and name the first bad cell below
    for row, cell in enumerate(cells):
        place = f"{source}: column {name!r}, {where(row)}"
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            raise DataError(f"{place}: missing value (empty or null)")
        try:
            float(cell)
        except (TypeError, ValueError):
            text = str(cell)
            short = text if len(text) <= 40 else text[:40] + "..."
            raise DataError(f"{place}: non-numeric value {short!r}") from None
    raise AssertionError("unreachable: some cell failed float() above")


def float_matrix(
    cells: dict, names: Sequence[str], source: str, where: Callable[[int], str]
) -> np.ndarray:
    """Columns of cells as one float64 matrix, converted (and checked) in names order.

    Args:
        cells: {name: cells of that column}, as a Table's fetch gives them.
        names: The columns, in output order.
        source: The file, for messages.
        where: 0-based row -> its place in the file for messages.

    Returns:
        float64 [rows, len(names)].

    Raises:
        DataError: Naming the first missing or non-numeric cell (see column_floats).
    """
    rows = len(cells[names[0]]) if names else 0
    x64 = np.empty((rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        x64[:, j] = column_floats(cells[name], source, name, where)
    return x64


def first_bad(x: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first non-finite value of a 2-D array, or None."""
    bad = np.argwhere(~np.isfinite(x))
    return None if bad.size == 0 else (int(bad[0, 0]), int(bad[0, 1]))


def require_finite(
    x64: np.ndarray, source: str, where: Callable[[int], str], names: Sequence[str]
) -> None:
    """Rejects NaN/inf, and values that only become inf when cast to float32.

    Args:
        x64: float64 [rows, columns].
        source: The file, for messages.
        where: 0-based row -> its place in the file for messages.
        names: One name per column, for messages.

    Raises:
        DataError: Naming the column and row of the first such value.
    """
    with np.errstate(over="ignore"):
        as_float32 = x64.astype(np.float32)
    for array in (x64, as_float32):
        bad = first_bad(array)
        if bad is not None:
            row, col = bad
            value = x64[row, col]
            if array is not x64:
                what = f"value {value:g} too large for float32"
            else:
                what = "NaN value" if np.isnan(value) else f"infinite value {value}"
            raise DataError(f"{source}: column {names[col]!r}, {where(row)}: {what}")
