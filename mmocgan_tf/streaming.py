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
`array_batches` does the same for rows in memory; MMOCGAN.fit feeds arrays through it.
"""

import csv
import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from mmocgan_tf import data as data_lib
from mmocgan_tf.data import DataError
from mmocgan_tf.preprocessing import Moments

__all__ = ["STREAM_SUFFIXES", "Stream", "array_batches", "open_stream", "scan"]

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
    """

    path: str
    feature_names: tuple
    kind: str
    column_index: tuple = ()

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
        return _shard_by_data(dataset).prefetch(tf.data.AUTOTUNE)

    def _pipeline(self, batch_size, shuffle_buffer, seed):
        if self.kind == "csv":
            return self._csv(batch_size, shuffle_buffer, seed)
        if self.kind == "parquet":
            dataset = tf.data.Dataset.from_generator(
                self._parquet_chunks,
                output_signature=tf.TensorSpec([None, len(self.feature_names)], tf.float32))
            return _shuffle(dataset.unbatch(), shuffle_buffer, seed).batch(batch_size)
        spec = {name: tf.io.FixedLenFeature([], tf.float32) for name in self.feature_names}
        dataset = _shuffle(tf.data.TFRecordDataset(self.path), shuffle_buffer, seed)
        names = self.feature_names
        return dataset.batch(batch_size).map(
            lambda records: tf.stack(_columns(tf.io.parse_example(records, spec), names), 1),
            num_parallel_calls=tf.data.AUTOTUNE)

    def _csv(self, batch_size, shuffle_buffer, seed):
        # Lines, not tf.data.experimental.CsvDataset: blank lines (a trailing one is common)
        # are skipped as the in-memory loader skips them. Lines are stripped, filtered and
        # parsed a block at a time in one vectorised decode_csv call (per-line tf.data ops
        # ran at ~12k rows/s; blocks at ~300k). Quoted fields may not span lines.
        order = np.argsort(np.argsort(self.column_index))  # header order -> feature order
        defaults = [tf.constant([], tf.float32)] * len(self.feature_names)  # [] = required
        select = sorted(self.column_index)

        def parse(lines):
            lines = tf.strings.strip(lines)
            lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
            columns = tf.io.decode_csv(lines, defaults, select_cols=select)
            return tf.stack([columns[i] for i in order], axis=1)

        block = batch_size if shuffle_buffer is None else _CSV_BLOCK
        rows = tf.data.TextLineDataset(self.path).skip(1).batch(block).map(
            parse, num_parallel_calls=tf.data.AUTOTUNE)
        if shuffle_buffer is None:
            return rows
        return _shuffle(rows.unbatch(), shuffle_buffer, seed).batch(batch_size)

    def _parquet_chunks(self):
        import pyarrow.parquet as pq  # lazy: optional dependency

        with pq.ParquetFile(self.path) as handle:
            for batch in handle.iter_batches(batch_size=_PARQUET_CHUNK,
                                             columns=list(self.feature_names)):
                yield np.stack([column.to_numpy(zero_copy_only=False).astype(np.float32)
                                for column in batch.columns], axis=1)


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
    wanted = data_lib._as_names(feature_columns) or None
    if suffix == ".csv":
        header = _csv_header(path)
        names = data_lib._check_columns(path, header, wanted, None)
        return Stream(path, tuple(names), "csv", tuple(header.index(n) for n in names))
    if suffix == ".parquet":
        return Stream(path, tuple(_parquet_columns(path, wanted)), "parquet")
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


def array_batches(x, batch_size, seed, shuffle=True):
    """In-memory rows as batches in a new order every epoch, the orders drawn from `seed`.

    The orders depend on `seed` alone (an int or a sequence of ints), not on TensorFlow's
    global seed (see _shuffle). Workers share the seed, so they draw the same orders
    and each keeps its share of the batches (sharded by data). A new epoch's iterator costs
    under a millisecond: no Python runs in the pipeline, and tf.data's autotuning, which has
    nothing to tune in it, is off (its thread stalled about one epoch start in five by
    0.3 s). The shuffle buffer holds a second copy of the rows.
    """
    rows = tf.data.Dataset.from_tensor_slices(np.asarray(x, np.float32))
    if shuffle:
        rows = _shuffle(rows, len(x), seed)
    options = tf.data.Options()
    options.autotune.enabled = False
    return _shard_by_data(rows.batch(batch_size)).prefetch(2).with_options(options)


def _shuffle(dataset, buffer, seed):
    """dataset.shuffle(buffer) reshuffled every epoch, with orders drawn from `seed` alone.

    Dataset.shuffle mixes TensorFlow's global seed into its own when one is set, so a model
    reinitialized with seed s (MMOCGAN.reinitialize) would see other orders than a fresh
    model built after keras.utils.set_random_seed(s); setting the global seed instead clears
    TensorFlow's function caches, about a second per model. The same shuffle op, given its
    two seeds directly, depends on `seed` only. A buffer of 0 leaves the order as it is.
    """
    if not buffer:
        return dataset
    seeds = np.random.default_rng(seed).integers(1, 2**62, size=2)
    variant = tf.raw_ops.ShuffleDatasetV3(
        input_dataset=tf.data.experimental.to_variant(dataset), buffer_size=buffer,
        seed=seeds[0], seed2=seeds[1], seed_generator=tf.raw_ops.DummySeedGenerator(),
        reshuffle_each_iteration=True,
        output_types=[dataset.element_spec.dtype], output_shapes=[dataset.element_spec.shape])
    return tf.data.experimental.from_variant(variant, dataset.element_spec)


def _shard_by_data(dataset):
    # By data, not by file: one file cannot be split between workers by file.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _columns(parsed, names):
    return [parsed[name] for name in names]


def _csv_header(path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV header ({err})") from None
    if not header:
        raise DataError(f"{path}: has no header row (empty file)")
    return [name.strip() for name in header]


def _parquet_columns(path, wanted):
    try:
        import pyarrow.parquet as pq  # lazy: optional dependency
        import pyarrow.types as pa_types
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path}: cannot read Parquet file ({type(err).__name__}: {err})") from None
    names = [str(n) for n in schema.names]
    picked = data_lib._check_columns(path, names, wanted, None)
    for name in picked:
        kind = schema.field(name).type
        if not (pa_types.is_integer(kind) or pa_types.is_floating(kind)):
            raise DataError(f"{path}: column {name!r} is not numeric ({kind})")
    return picked


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
                            f"available: {data_lib._shown(sorted(features))}")
        if name not in floats:
            kind = features[name].WhichOneof("kind")
            raise DataError(f"{path}: feature {name!r} is a {kind}, not a float_list")
    return data_lib._check_columns(path, floats, wanted, None)
