"""Rows of one file -> RowBlocks of good rows and error records of bad ones.

The readers (reading.py) hand every record here, so that a row is checked the same way
whatever its format: float() on every feature cell and a finiteness check in float32,
with the messages of data/columns.py that the in-process scorer gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import apache_beam as beam
import numpy as np

from mmocgan_tf.data.columns import column_floats, require_finite
from mmocgan_tf.data.errors import DataError

ERRORS = "errors"  # the tag of the error records, the readers' second output


@dataclasses.dataclass
class RowBlock:
    """Good rows of one file, in file order: what flows from the readers to RunInference.

    Attributes:
      file: the file they came from.
      rows: 1-based data row numbers, int64 [n].
      lines: the line each row ends on (CSV), else its row number, int64 [n].
      ids: one list of n values per id column.
      features: float32 [n, d] in the model's order (None once scored).
    """

    file: str
    rows: np.ndarray
    lines: np.ndarray
    ids: tuple[list, ...]
    features: np.ndarray | None

    def __len__(self) -> int:
        return len(self.rows)


def error_record(kind: str, path: str, line, row, reason: str) -> dict:
    """One line of the errors output: kind is "row" or "file"; the file is not repeated
    at the start of the reason (data/columns.py messages begin with it)."""
    reason = reason.removeprefix(f"{path}: ")
    return {"kind": kind, "file": path, "line": None if line is None else int(line),
            "row": None if row is None else int(row), "reason": reason}


def _where(row, line) -> str:
    return f"row {row} (line {line})" if line != row else f"row {row}"


class BlockBuilder:
    """Collects one file's rows: good ones into RowBlocks of at most batch_size rows,
    bad ones into error records (tagged ERRORS). Both are yielded as they are ready."""

    def __init__(self, path: str, feature_names: Sequence[str], n_ids: int, batch_size: int):
        self.path, self.names, self.batch_size = path, list(feature_names), batch_size
        self.n_ids = n_ids
        self._reset()

    def _reset(self):
        self._values, self._rows, self._lines = [], [], []
        self._ids = tuple([] for _ in range(self.n_ids))

    def reject(self, row, line, reason: str):
        """An error record for one row."""
        return beam.pvalue.TaggedOutput(ERRORS, error_record("row", self.path, line, row,
                                                             reason))

    def add(self, row: int, line: int, cells: Sequence, ids: Sequence) -> Iterator:
        """Adds one record's feature cells (model order) and id values."""
        try:
            values = [float(c) for c in cells]
        except (TypeError, ValueError):
            yield self.reject(row, line, self._bad_cell(row, line, cells))
            return
        self._values.append(values)
        self._rows.append(row)
        self._lines.append(line)
        for column, value in zip(self._ids, ids, strict=True):
            column.append(value)
        if len(self._rows) >= self.batch_size:
            yield from self.flush()

    def _bad_cell(self, row, line, cells) -> str:
        """The message column_floats gives for the first cell float() refused."""
        for name, cell in zip(self.names, cells, strict=True):
            try:
                column_floats([cell], self.path, name, lambda _: _where(row, line))
            except DataError as err:
                return str(err)
        return "unreadable feature values"

    def add_block(self, rows: np.ndarray, x64: np.ndarray, ids: tuple[list, ...]) -> Iterator:
        """Adds rows whose features are numbers already (a Parquet batch without nulls);
        their row numbers are their line numbers."""
        yield from self.flush()
        yield from self._emit(x64, rows, rows, ids)

    def flush(self) -> Iterator:
        """The collected good rows as one RowBlock (after the finiteness check)."""
        if not self._rows:
            return
        x64 = np.asarray(self._values, dtype=np.float64).reshape(-1, len(self.names))
        rows, lines = np.asarray(self._rows, np.int64), np.asarray(self._lines, np.int64)
        ids = self._ids
        self._reset()
        yield from self._emit(x64, rows, lines, ids)

    def _emit(self, x64, rows, lines, ids) -> Iterator:
        with np.errstate(over="ignore"):
            finite = (np.isfinite(x64).all(axis=1)
                      & np.isfinite(x64.astype(np.float32)).all(axis=1))
        if not finite.all():
            for i in np.flatnonzero(~finite):
                where = _where(rows[i], lines[i])
                try:
                    require_finite(x64[i:i + 1], self.path, lambda _, w=where: w, self.names)
                    reason = "non-finite value"
                except DataError as err:
                    reason = str(err)
                yield self.reject(rows[i], lines[i], reason)
            keep = np.flatnonzero(finite)
            x64, rows, lines = x64[keep], rows[keep], lines[keep]
            ids = tuple([column[i] for i in keep] for column in ids)
        if len(rows):
            yield RowBlock(self.path, rows, lines, ids, x64.astype(np.float32))
