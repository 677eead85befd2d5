"""Streaming input: tf.data pipelines over tables larger than memory.

Three file formats, all of raw numeric features of normal rows (no labels):
  .csv        a header row names the columns; one row per line (blank lines are skipped);
  .parquet    numeric columns, read in record batches with pyarrow (needs `pip install
              pyarrow`);
  .tfrecord   (or .tfrecords, uncompressed) tf.train.Example records with ONE float_list
              feature of length 1 per column, keyed by the column name. Other features are
              ignored. Without feature_columns, the columns are the float features of the
              first record in name order.

`open_stream` checks the file and its columns up front; `scan` makes one pass that checks
every cell and counts the rows; `Stream.batches` is the training pipeline: rows shuffled in
a buffer seeded alike on every worker, batched by the global batch size, and sharded by data
across the workers of a multi-worker strategy (each worker keeps its share of the batches).
The shuffle and the sharding are `pipeline`'s, which batches rows held in memory alike.

The header, the blank lines and the column checks of a CSV file are `tables`' and
`columns`' (the loader's and the scorer's own); only the decoding of the data rows is
TensorFlow's (see Stream._csv).
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from mmocgan_tf.data import tables
from mmocgan_tf.data.columns import as_names, check_columns, shown
from mmocgan_tf.data.errors import DataError
from mmocgan_tf.data.moments import Moments
from mmocgan_tf.data.pipeline import seeded_shuffle, shard_by_data

__all__ = ["STREAM_SUFFIXES", "Stream", "open_stream", "scan"]

STREAM_SUFFIXES = (".csv", ".parquet", ".tfrecord", ".tfrecords")
_PARQUET_CHUNK = 65536
_CSV_BLOCK = 8192  # lines parsed per decode_csv call


@dataclasses.dataclass(frozen=True)
class Stream:
    """A checked table file and the columns to read, in order.

    Attributes:
      path: the file.
      feature_names: the feature columns, in model input order.
      kind: "csv", "parquet" or "tfrecord".
      column_index: for CSV, the position of each feature in the header.
      header_lines: for CSV, the lines up to and including the header (blank ones too).
    """

    path: str
    feature_names: tuple
    kind: str
    column_index: tuple = ()
    header_lines: int = 1

    def rows(self, batch_size):
        """Float32 batches [<= batch_size, d] of every row, in file order."""
        return self._pipeline(batch_size, None, 0).prefetch(tf.data.AUTOTUNE)

    def batches(self, batch_size, shuffle_buffer, seed, rows=None):
        """The training pipeline: shuffled global batches, sharded by data across workers.

        The shuffle seed is the same on every worker and the order changes every epoch, so
        workers split one common order between them instead of drawing overlapping rows.
        `rows` (the count `scan` found) lets Keras know the epoch length from the start.
        """
        dataset = self._pipeline(batch_size, shuffle_buffer, seed)
        if rows is not None:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(
                -(-rows // batch_size)))
        return shard_by_data(dataset).prefetch(tf.data.AUTOTUNE)

    def _pipeline(self, batch_size, shuffle_buffer, seed):
        if self.kind == "csv":
            return self._csv(batch_size, shuffle_buffer, seed)
        if self.kind == "parquet":
            dataset = tf.data.Dataset.from_generator(
                lambda: tables.parquet_blocks(self.path, self.feature_names, _PARQUET_CHUNK),
                output_signature=tf.TensorSpec([None, len(self.feature_names)], tf.float32))
            return seeded_shuffle(dataset.unbatch(), shuffle_buffer, seed).batch(batch_size)
        spec = {name: tf.io.FixedLenFeature([], tf.float32) for name in self.feature_names}
        dataset = seeded_shuffle(tf.data.TFRecordDataset(self.path), shuffle_buffer, seed)
        names = self.feature_names
        return dataset.batch(batch_size).map(
            lambda records: tf.stack(_columns(tf.io.parse_example(records, spec), names), 1),
            num_parallel_calls=tf.data.AUTOTUNE)

    def _csv(self, batch_size, shuffle_buffer, seed):
        """Rows decoded by tf.io.decode_csv, inside the graph, a block of lines per call.

        The header and the columns come from tables.CsvFile, the package's CSV parser;
        the rows do not, because a Python parser in tf.data (from_generator) holds the GIL
        and would serialise the pipeline with training. Lines, not
        tf.data.experimental.CsvDataset, so blank lines (a trailing one is common) are
        skipped as CsvFile skips them; stripping, filtering and decoding a block at a time
        in one vectorised call keeps per-row op overhead out. Quoted fields may not span
        lines here, and a bad cell is reported as TensorFlow names it (see scan).
        """
        order = np.argsort(np.argsort(self.column_index))  # header order -> feature order
        defaults = [tf.constant([], tf.float32)] * len(self.feature_names)  # [] = required
        select = sorted(self.column_index)

        def parse(lines):
            lines = tf.strings.strip(lines)
            lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
            columns = tf.io.decode_csv(lines, defaults, select_cols=select)
            return tf.stack([columns[i] for i in order], axis=1)

        block = batch_size if shuffle_buffer is None else _CSV_BLOCK
        lines = tf.data.TextLineDataset(self.path).skip(self.header_lines)
        rows = lines.batch(block).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        if shuffle_buffer is None:
            return rows
        return seeded_shuffle(rows.unbatch(), shuffle_buffer, seed).batch(batch_size)


def open_stream(path, feature_columns=None):
    """Checks a table file for streaming and names its feature columns.

    Args:
      path: a .csv, .parquet, .tfrecord or .tfrecords file.
      feature_columns: names picking and ordering the features (a comma-separated string
        or a sequence); None or empty = every column.

    Raises:
      DataError: one line naming the problem: the file type, a missing file, an unreadable
        header or schema, missing, duplicate or non-numeric columns.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in STREAM_SUFFIXES:
        raise DataError(f"{path}: streaming reads {', '.join(STREAM_SUFFIXES)} files; load "
                        "other sources without --streaming")
    if not os.path.isfile(path):
        raise DataError(f"{path}: {'not a file' if os.path.exists(path) else 'file not found'}")
    wanted = as_names(feature_columns) or None
    if suffix == ".csv":
        with tables.CsvFile(path) as source:
            header, header_lines = source.header, source.header_line
        if not header:
            raise DataError(f"{path}: has no header row (empty file)")
        names = check_columns(path, header, wanted, None)
        return Stream(path, tuple(names), "csv", tuple(header.index(n) for n in names),
                      header_lines)
    if suffix == ".parquet":
        return Stream(path, tuple(tables.parquet_feature_columns(path, wanted)), "parquet")
    return Stream(path, tuple(_tfrecord_columns(path, wanted)), "tfrecord")


@dataclasses.dataclass(frozen=True)
class Statistics:
    """What one pass over a stream found: rows, and their per-column mean and variance."""

    count: int
    mean: np.ndarray
    variance: np.ndarray


def scan(stream, chunk_rows=8192):
    """One pass over every row: checks each cell and computes the column statistics.

    Memory stays at one chunk whatever the file's length.

    Raises:
      DataError: no rows, a cell that is not a number (naming TensorFlow's record), a
        missing, NaN or infinite value (naming the column and the row).
    """
    moments = Moments()
    try:
        for block in stream.rows(chunk_rows).as_numpy_iterator():
            bad = np.argwhere(~np.isfinite(block))
            if bad.size:
                row, col = bad[0]
                value = block[row, col]
                what = "missing or NaN value" if np.isnan(value) else f"infinite value {value}"
                raise DataError(f"{stream.path}: column {stream.feature_names[col]!r}, row "
                                f"{moments.count + row + 1}: {what}")
            moments.update(block)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
        raise DataError(_parse_error(stream.path, err, moments.count, chunk_rows)) from None
    if not moments.count:
        raise DataError(f"{stream.path}: has no data rows")
    return Statistics(moments.count, moments.mean, moments.variance)


def _parse_error(path, err, rows_before, chunk_rows):
    """One line from TensorFlow's parse error, with the row in the file where it knows it."""
    text = " ".join(str(err.message).split())
    core = re.search(r"Iterator::\S+?: (.*)", text)
    text = re.sub(r"\[\[.*?\]\]|\{\{.*?\}\}|\[Op:.*$", "", core.group(1) if core else text)
    record = re.search(r" in record (\d+)", text)  # counted within the failing chunk
    if record:
        row = rows_before + int(record.group(1)) + 1
        return f"{path}: row {row}: {text.replace(record.group(0), '').strip()}"
    return (f"{path}: unreadable value in rows {rows_before + 1}-{rows_before + chunk_rows}: "
            f"{text.strip()}")


def _columns(parsed, names):
    return [parsed[name] for name in names]


def _tfrecord_columns(path, wanted):
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
        example = None if first is None else tf.train.Example.FromString(first.numpy())
    except (tf.errors.OpError, ValueError) as err:
        raise DataError(f"{path}: not a TFRecord file of tf.train.Example records "
                        f"({type(err).__name__})") from None
    if example is None:
        raise DataError(f"{path}: has no records")
    features = example.features.feature
    floats = sorted(name for name, value in features.items()
                    if value.WhichOneof("kind") == "float_list")
    if wanted is None:
        if not floats:
            raise DataError(f"{path}: the first record has no float_list features")
        return floats
    for name in wanted:
        if name not in features:
            raise DataError(f"{path}: feature column {name!r} not found in the first record; "
                            f"available: {shown(sorted(features))}")
        if name not in floats:
            kind = features[name].WhichOneof("kind")
            raise DataError(f"{path}: feature {name!r} is a {kind}, not a float_list")
    return check_columns(path, floats, wanted, None)
