"""Reading one shard: CSV, Parquet or TFRecord record by record, on any Beam filesystem.

A file that cannot be scored at all, or not past some point (unreadable, corrupt, a
feature or id column missing from its header), ends in one error record of kind "file";
the rows read before that are still scored.
"""

from __future__ import annotations

import csv
import io
import os
import struct
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from mmocgan_tf.data.columns import shown
from mmocgan_tf.deploy.beam.blocks import ERRORS, BlockBuilder, error_record

INPUT_FORMATS = ("csv", "parquet", "tfrecord")
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".tfrecord": "tfrecord",
             ".tfrecords": "tfrecord"}
_COMPRESSED = (".gz", ".bz2", ".zst", ".deflate")  # Beam opens these transparently
_BINARY = "application/octet-stream"


def input_format_of(path: str) -> str | None:
    """"csv", "parquet" or "tfrecord" from a file name (a .gz etc. suffix is looked past)."""
    stem = path
    for suffix in _COMPRESSED:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return _SUFFIXES.get(os.path.splitext(stem)[1].lower())


def open_parquet_raw(path: str):
    """A Parquet file as Beam opens it, uncompressed (pyarrow reads its own codecs)."""
    return FileSystems.open(path, mime_type=_BINARY,
                            compression_type=CompressionTypes.UNCOMPRESSED)


class _FileRejected(Exception):
    """The rest of a file cannot be read: becomes one error record of kind "file"."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason, self.line = reason, line


def _cannot_read(err: OSError, line=None) -> _FileRejected:
    return _FileRejected(f"cannot read file ({err.strerror or err})", line=line)


class _RawReader(io.RawIOBase):
    """A Beam file handle as a raw stream: Beam's CompressedFile (.gz, ...) lacks parts
    of the io interface that io.TextIOWrapper needs."""

    def __init__(self, handle):
        super().__init__()
        self._handle = handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ReadShard(beam.DoFn):
    """A file path -> RowBlocks of its good rows (main) and error records (ERRORS).

    id_types: {id column: arrow type name} of a Parquet output, taken from the first
    file; then every Parquet file must agree, and text ids (CSV, TFRecord) are refused.
    """

    def __init__(self, feature_names, id_columns, batch_size, input_format=None,
                 id_types=None):
        self.names, self.id_columns = list(feature_names), list(id_columns)
        self.batch_size, self.input_format, self.id_types = int(batch_size), input_format, id_types

    def process(self, path: str) -> Iterator:
        reader = {"csv": self._csv, "parquet": self._parquet, "tfrecord": self._tfrecord
                  }.get(self.input_format or input_format_of(path))
        builder = BlockBuilder(path, self.names, len(self.id_columns), self.batch_size)
        try:
            if reader is None:
                raise _FileRejected("cannot tell the format from the file name; use .csv, "
                                    ".parquet or .tfrecord, or pass input_format")
            yield from reader(path, builder)
        except _FileRejected as err:
            yield from builder.flush()  # what was read before the failure is still scored
            yield beam.pvalue.TaggedOutput(
                ERRORS, error_record("file", path, err.line, None, err.reason))
            return
        yield from builder.flush()

    def _positions(self, header) -> tuple[list[int], list[int]]:
        """Header positions of the features and the id columns; rejects the file if any
        is missing or a name is duplicated."""
        for name in set(header):
            if header.count(name) > 1 and name in (*self.names, *self.id_columns):
                raise _FileRejected(f"duplicate column name {name!r} in header")
        missing = [n for n in self.names if n not in header]
        if missing:
            extra = [h for h in header if h not in self.names and h not in self.id_columns]
            raise _FileRejected(f"missing feature columns {shown(missing)}"
                                + (f"; extra columns {shown(extra)}" if extra else "")
                                + "; no row of this file was read", line=1)
        missing_ids = [n for n in self.id_columns if n not in header]
        if missing_ids:
            raise _FileRejected(f"missing id columns {shown(missing_ids)}; no row of this "
                                f"file was read", line=1)
        return ([header.index(n) for n in self.names],
                [header.index(n) for n in self.id_columns])

    def _refuse_text_ids(self):
        if self.id_types and any(t != "string" for t in self.id_types.values()):
            raise _FileRejected(f"the output's id columns have types {self.id_types} (from "
                                "the first file, a Parquet file); this file's ids are text")

    def _csv(self, path, builder):
        self._refuse_text_ids()
        line = 0
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as raw:
                text = io.TextIOWrapper(io.BufferedReader(_RawReader(raw)),
                                        encoding="utf-8-sig", newline="")
                reader = csv.reader(text)
                header = next((fields for fields in reader if fields), None)
                if header is None:
                    raise _FileRejected("empty file, no header", line=0)
                header = [name.strip() for name in header]
                features, ids = self._positions(header)
                width, row = len(header), 0
                for fields in reader:
                    line = reader.line_num
                    if not fields:  # a blank line
                        continue
                    row += 1
                    if len(fields) != width:
                        yield builder.reject(row, line, f"row {row} (line {line}) has "
                                             f"{len(fields)} fields, header has {width}")
                        continue
                    yield from builder.add(row, line, [fields[j] for j in features],
                                           [fields[j] for j in ids])
        except UnicodeDecodeError:
            raise _FileRejected(f"not UTF-8 text (bad byte near line {line + 1}); the rest "
                                f"of the file was not read", line=line + 1) from None
        except csv.Error as err:
            raise _FileRejected(f"malformed CSV after line {line} ({err}); the rest of the "
                                f"file was not read", line=line + 1) from None
        except OSError as err:
            raise _cannot_read(err, line or None) from None

    def _parquet(self, path, builder):
        import pyarrow.parquet as pq
        import pyarrow.types as pa_types

        try:
            raw = open_parquet_raw(path)
        except OSError as err:
            raise _cannot_read(err) from None
        with raw:
            try:
                handle = pq.ParquetFile(raw)
                schema = handle.schema_arrow
            except Exception as err:  # pyarrow raises several types for unreadable files
                raise _FileRejected(f"cannot read Parquet file ({type(err).__name__}: {err})"
                                    ) from None
            stored = [str(n) for n in schema.names]
            features, ids = self._positions([n.strip() for n in stored])
            for name, j in zip(self.id_columns, ids, strict=True):
                want, here = (self.id_types or {}).get(name, "string"), str(schema.field(j).type)
                if self.id_types and want != here:
                    raise _FileRejected(f"id column {name!r} is {here} here, {want} in the "
                                        f"first file")
            wanted = sorted(set(features) | set(ids))
            row = 0
            try:
                for batch in handle.iter_batches(batch_size=self.batch_size,
                                                 columns=[stored[j] for j in wanted]):
                    by_position = dict(zip(wanted, batch.columns, strict=True))
                    cells = []
                    for j in features:
                        column = by_position[j]
                        numeric = (pa_types.is_integer(column.type)
                                   or pa_types.is_floating(column.type))
                        cells.append(column.to_numpy(zero_copy_only=False)
                                     if numeric and column.null_count == 0
                                     else column.to_pylist())
                    id_values = [by_position[j].to_pylist() for j in ids]
                    if all(isinstance(c, np.ndarray) for c in cells):  # no cell to check
                        numbers = np.arange(row + 1, row + batch.num_rows + 1, dtype=np.int64)
                        row += batch.num_rows
                        yield from builder.add_block(
                            numbers, np.stack(cells, axis=1).astype(np.float64),
                            tuple(id_values))
                        continue
                    for i in range(batch.num_rows):
                        row += 1
                        yield from builder.add(row, row, [c[i] for c in cells],
                                               [v[i] for v in id_values])
            except Exception as err:  # a corrupt row group: what came before is kept
                raise _FileRejected(f"cannot read Parquet file after row {row} "
                                    f"({type(err).__name__}: {err}); the rest of the file was "
                                    f"not read", line=row + 1) from None

    def _tfrecord(self, path, builder):
        """tf.train.Example records, one value per feature (the convention of
        data/streaming.py); a record's number is its row and line. Checksums are not
        verified; a truncated record ends the file with a file error."""
        from tensorflow.core.example import example_pb2

        self._refuse_text_ids()
        row = 0
        try:
            with FileSystems.open(path, mime_type=_BINARY,
                                  compression_type=CompressionTypes.AUTO) as raw:
                while head := raw.read(12):  # length (8 bytes), its CRC (4)
                    if len(head) < 12:
                        raise _FileRejected(f"truncated TFRecord header after record {row}",
                                            line=row + 1)
                    (length,) = struct.unpack("<Q", head[:8])
                    data = raw.read(length)
                    if len(data) < length or len(raw.read(4)) < 4:
                        raise _FileRejected(f"truncated TFRecord record {row + 1}",
                                            line=row + 1)
                    row += 1
                    try:
                        example = example_pb2.Example.FromString(data)
                    except Exception:  # protobuf's DecodeError
                        yield builder.reject(row, row, f"record {row} is not a "
                                             "tf.train.Example")
                        continue
                    values = self._example_values(example, row)
                    if isinstance(values, str):
                        yield builder.reject(row, row, values)
                        continue
                    yield from builder.add(row, row, values[: len(self.names)],
                                           values[len(self.names):])
        except OSError as err:
            raise _cannot_read(err, row + 1) from None

    def _example_values(self, example, row):
        """The record's feature values then its ids (as text), or why it cannot be scored."""
        features = example.features.feature
        values = []
        for i, name in enumerate((*self.names, *self.id_columns)):
            if name not in features:
                what = "feature" if i < len(self.names) else "id column"
                return f"record {row}: missing {what} {name!r}"
            kind = features[name].WhichOneof("kind")
            cells = list(getattr(features[name], kind).value) if kind else []
            if len(cells) != 1:
                return f"record {row}: {name!r} has {len(cells)} values, expected 1"
            cell = cells[0]
            values.append(cell.decode("utf-8", errors="replace") if isinstance(cell, bytes)
                          else cell)
        return [*values[: len(self.names)], *(str(v) for v in values[len(self.names):])]
