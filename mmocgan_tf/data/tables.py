"""Table files: the package's one CSV parser, and its Parquet reader.

Why one module: the in-memory loader, the chunked scorer and the tf.data streams must
read a file the same way (which line is the header, which lines are blank, how a quoted
field ends), or a file that trains could fail to score. Each reader gives `Table`s, a
header plus a way to fetch columns, so the checks in `columns` apply to all of them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import operator
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from mmocgan_tf.data.columns import check_columns, float_matrix, require_finite, shown
from mmocgan_tf.data.errors import DataError

# numpy strips these around a number where float() refuses it: blocks holding one are
# left to float().
_NOT_STRIPPED_BY_FLOAT = ("\x1c", "\x1d", "\x1e", "\x1f")

@dataclasses.dataclass(frozen=True)
class Table:
    """A header plus ways to fetch columns; what the CSV and Parquet readers share.

    Attributes:
        path: The file, for messages.
        names: The header's column names.
        n_rows: Data rows in this table (one block of them for chunked reads).
        fetch: names -> {name: list of cells, or float64 ndarray}.
        where: 0-based data row -> text such as "row 3 (line 4)", for messages.
        numbers: names -> float64 [n_rows, len(names)] of those columns, raising
            DataError on the first missing or non-numeric cell (see float_matrix).
    """

    path: str
    names: list[str]
    n_rows: int
    fetch: Callable[[list[str]], dict]
    where: Callable[[int], str]
    numbers: Callable[[list[str]], np.ndarray]


# -------------------------------------------------------------------------- CSV


class CsvFile:
    """A CSV file read once from the top: its header, then its data rows in blocks.

    The package's one CSV parser. Its rules are Python's csv module's: fields may be
    quoted (and then hold commas, quotes or line breaks), blank lines are skipped
    wherever they are, a UTF-8 byte-order mark is dropped and the first non-blank record,
    stripped, is the header; cells become numbers by float() (see columns.column_floats).
    For speed a block of lines without a quote is split and decoded by numpy's C
    tokenizer instead: without quotes the csv module only splits at commas, and numpy
    reads a number only where float() reads the same one (blocks holding the separator
    characters \\x1c-\\x1f excepted, which numpy alone strips), so any cell it cannot read
    sends the block back to float() and its messages; blocks with a quote or a field
    longer than csv.field_size_limit() go through the csv module itself. Blocks end
    where the quotes seen so far pair up, so a quoted line break never falls between two
    blocks. Use it as a context manager, so the file is closed when a reader stops early.

    Attributes:
        path: The file.
        header: The stripped column names; [] for a file without a record.
        header_line: The physical line the header ends on (0 without one), so a reader
            of raw lines knows how many to skip.
    """

    def __init__(self, path: str, *, show_lines: bool = True):
        """Opens path and reads its header.

        Args:
            path: The CSV file.
            show_lines: Whether messages name a bad row's line as well as its number.

        Raises:
            DataError: The file is unreadable, not UTF-8 or malformed.
        """
        self.path = path
        self._show_lines = show_lines
        self._rows_read = 0
        self._part = "CSV header"
        self._handle = None
        try:
            with self._errors():
                self._handle = open(path, newline="", encoding="utf-8-sig")
                reader = csv.reader(self._handle)
                first = next((fields for fields in reader if fields), None)
        except BaseException:
            self.close()
            raise
        self.header = [] if first is None else [f.strip() for f in first]
        self.header_line = 0 if first is None else reader.line_num
        self._lines_read = reader.line_num
        self._part = "CSV"

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file (also when its rows were not all read)."""
        if self._handle is not None:
            self._handle.close()

    def blocks(self, block_rows: int | None = None) -> Iterator[Table]:
        """Tables of the data rows in about block_rows lines each (None: all in one).

        A block holds at most block_rows lines unless a quoted field runs on past them;
        blank lines count, so a table may hold fewer rows. Tables come in file order.

        Raises:
            DataError: A row whose field count differs from the header's, or the file
                turns out unreadable, not UTF-8 or malformed.
        """
        while True:
            with self._errors():
                lines = list(itertools.islice(self._handle, block_rows))
                quotes = "".join(lines).count('"')
                while quotes % 2 and (line := next(self._handle, None)) is not None:
                    lines.append(line)
                    quotes += line.count('"')
                if not lines:
                    return
                first_line = self._lines_read
                self._lines_read += len(lines)
                # csv's own path where it differs from splitting: quotes, over-long fields
                by_csv = quotes or max(map(len, lines)) > csv.field_size_limit()
                table = (self._quoted if by_csv else self._plain)(lines, first_line)
            if table.n_rows:
                yield table

    def _plain(self, lines: list[str], first_line: int) -> Table:
        """A block without quotes: every record is its line split at commas."""
        stripped = [line.rstrip("\r\n") for line in lines]
        kept = [offset for offset, text in enumerate(stripped) if text]  # not blank
        texts = [stripped[offset] for offset in kept]
        commas = list(map(operator.methodcaller("count", ","), texts))
        if commas.count(len(self.header) - 1) != len(commas):
            row = next(r for r, n in enumerate(commas) if n != len(self.header) - 1)
            self._check_width(row, first_line + kept[row] + 1, commas[row] + 1)
        line_numbers = [first_line + offset + 1 for offset in kept]
        split = []

        def rows() -> list[list[str]]:
            if not split:
                split.extend(text.split(",") for text in texts)
            return split

        table = self._table(rows, line_numbers)
        joined = "".join(texts)
        if any(separator in joined for separator in _NOT_STRIPPED_BY_FLOAT):
            return table

        def decoded(names: list[str]) -> np.ndarray:
            index = [self.header.index(n) for n in names]
            try:
                x64 = np.loadtxt(texts, delimiter=",", usecols=index, dtype=np.float64,
                                 ndmin=2, comments=None)
                if x64.shape == (len(texts), len(names)):
                    return x64
            except ValueError:
                pass  # a cell numpy cannot read: float() reads it or names it
            return table.numbers(names)

        return dataclasses.replace(table, numbers=decoded)

    def _quoted(self, lines: list[str], first_line: int) -> Table:
        """A block with quotes, parsed by the csv module."""
        rows, line_numbers = [], []
        reader = csv.reader(lines)
        for fields in reader:
            if fields:  # blank line
                self._check_width(len(rows), first_line + reader.line_num, len(fields))
                rows.append(fields)
                line_numbers.append(first_line + reader.line_num)
        return self._table(lambda: rows, line_numbers)

    def _check_width(self, row: int, line: int, fields: int) -> None:
        if fields != len(self.header):
            raise DataError(f"{self.path}: {self._place(self._rows_read + row, line)} has "
                            f"{fields} fields, header has {len(self.header)}")

    def _table(self, rows: Callable[[], list[list[str]]], lines: list[int]) -> Table:
        first, header, path = self._rows_read, self.header, self.path
        self._rows_read += len(lines)

        def fetch(names: list[str]) -> dict:
            cells = {}
            for name in names:
                column = header.index(name)
                cells[name] = [row[column] for row in rows()]
            return cells

        def where(row: int) -> str:
            return self._place(first + row, lines[row])

        return Table(path, header, len(lines), fetch, where,
                     lambda names: float_matrix(fetch(names), names, path, where))

    def _place(self, row: int, line: int) -> str:
        return f"row {row + 1} (line {line})" if self._show_lines else f"row {row + 1}"

    @contextlib.contextmanager
    def _errors(self):
        """Turns what reading the file raises into one-line DataErrors."""
        try:
            yield
        except UnicodeDecodeError as err:
            raise DataError(
                f"{self.path}: not UTF-8 text (bad byte at offset {err.start})") from None
        except csv.Error as err:
            raise DataError(f"{self.path}: malformed {self._part} ({err})") from None
        except OSError as err:
            raise DataError(f"{self.path}: cannot read file ({err.strerror or err})") from None


def read_csv(path: str) -> Table:
    """Reads a whole CSV file.

    Args:
        path: The file; its first non-blank record is the header.

    Returns:
        One Table of every data row; messages name rows as "row 3 (line 4)".

    Raises:
        DataError: Unreadable, malformed, a row of the wrong width, or no data rows.
    """
    with CsvFile(path) as source:
        table = next(source.blocks(), None)
        header = source.header
    if table is None:
        raise DataError(f"{path}: has no data rows ({'header only' if header else 'empty file'})")
    return table


def csv_feature_blocks(path: str, names: Sequence[str], block_rows: int) -> Iterator[np.ndarray]:
    """float32 blocks [<= block_rows, d] of the named columns, read lazily in file order.

    Columns are matched by name and extra ones (such as an id) are ignored: what scoring a
    file with a model's features needs. Messages name rows by number only.

    Args:
        path: The CSV file.
        names: The feature columns, in output order.
        block_rows: Lines per block (see CsvFile.blocks).

    Raises:
        DataError: Missing columns (naming them and the extra ones), a row of the wrong
            width, a non-numeric or non-finite cell (naming column and row).
    """
    names = list(names)
    with CsvFile(path, show_lines=False) as source:
        header = source.header
        missing = [n for n in names if n not in header]
        if missing:
            extra = [h for h in header if h not in names]
            raise DataError(f"{path}: missing feature columns {shown(missing)}"
                            + (f"; extra columns {shown(extra)}" if extra else ""))
        for table in source.blocks(block_rows):
            x64 = table.numbers(names)
            require_finite(x64, path, table.where, names)
            yield x64.astype(np.float32)


# ---------------------------------------------------------------------- Parquet


def _pyarrow(path: str):
    try:
        import pyarrow.parquet as pq  # lazy: optional dependency
        import pyarrow.types as pa_types
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    return pq, pa_types


def _unreadable(path: str, err: Exception) -> DataError:
    return DataError(f"{path}: cannot read Parquet file ({type(err).__name__}: {err})")


def read_parquet(path: str) -> Table:
    """Opens a Parquet file; columns are read when fetched.

    Args:
        path: The file; column names are stripped.

    Returns:
        A Table whose fetch gives float64 arrays for numeric columns without nulls, and
        Python values (None for null) otherwise; messages name rows as "row 3".

    Raises:
        DataError: pyarrow is missing or the file is not Parquet.
    """
    pq, pa_types = _pyarrow(path)
    try:
        handle = pq.ParquetFile(path)
        names = [str(n) for n in handle.schema_arrow.names]
    except Exception as err:  # pyarrow raises several types for unreadable files
        raise _unreadable(path, err) from None
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

    def where(row: int) -> str:
        return f"row {row + 1}"

    return Table(path, stripped, handle.metadata.num_rows, fetch, where,
                 lambda wanted: float_matrix(fetch(wanted), wanted, path, where))


def parquet_feature_columns(path: str, wanted: list[str] | None) -> list[str]:
    """The numeric feature columns of a Parquet file, from its schema alone.

    Args:
        path: The file; names are used as stored (not stripped), as pyarrow reads them.
        wanted: Names picking and ordering the features; None = every column.

    Returns:
        The feature names, in order.

    Raises:
        DataError: pyarrow is missing, the file is not Parquet, a column check fails
            (see columns.check_columns) or a picked column is not numeric.
    """
    pq, pa_types = _pyarrow(path)
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # pyarrow raises several types for unreadable files
        raise _unreadable(path, err) from None
    names = [str(n) for n in schema.names]
    picked = check_columns(path, names, wanted, None)
    for name in picked:
        kind = schema.field(name).type
        if not (pa_types.is_integer(kind) or pa_types.is_floating(kind)):
            raise DataError(f"{path}: column {name!r} is not numeric ({kind})")
    return picked


def parquet_blocks(path: str, names: Sequence[str], block_rows: int) -> Iterator[np.ndarray]:
    """float32 blocks [<= block_rows, d] of numeric columns, read in record batches.

    Args:
        path: The file, checked by parquet_feature_columns.
        names: The columns, in output order.
        block_rows: Rows per record batch.
    """
    import pyarrow.parquet as pq  # lazy: optional dependency

    with pq.ParquetFile(path) as handle:
        for batch in handle.iter_batches(batch_size=block_rows, columns=list(names)):
            yield np.stack([column.to_numpy(zero_copy_only=False).astype(np.float32)
                            for column in batch.columns], axis=1)
