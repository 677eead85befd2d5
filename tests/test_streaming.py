"""Streaming input: CSV, Parquet and TFRecord pipelines on tiny files."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmocgan_tf import MMOCGAN
from mmocgan_tf.config import ConfigError, TrainConfig
from mmocgan_tf.data import pipeline, streaming
from mmocgan_tf.data.loading import DataError, load_data
from mmocgan_tf.data.moments import Moments
from mmocgan_tf.training import fit as training

COLUMNS = ("a", "b", "c")


def table(n=157, seed=0):
    """Rows with a large offset in one column, where naive variance formulas lose digits."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 20.0, 0.01] + [0.0, -5.0, 3e4]
    return x.astype(np.float32)


def write_csv(path, x, names=COLUMNS, extra=True):
    header = ["id", *names] if extra else list(names)
    lines = [",".join(header)]
    for i, row in enumerate(x):
        lines.append(",".join(([str(i)] if extra else []) + [repr(float(v)) for v in row]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path, x, names=COLUMNS):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"id": np.arange(len(x))} | {n: x[:, j] for j, n in enumerate(names)}
    pq.write_table(pa.table(columns), path, row_group_size=40)  # several row groups
    return path


def write_tfrecord(path, x, names=COLUMNS):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, row in enumerate(x):
            features = {n: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                        for n, v in zip(names, row, strict=True)}
            features["id"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=features)).SerializeToString())
    return path


WRITERS = {"csv": write_csv, "parquet": write_parquet, "tfrecord": write_tfrecord}


@pytest.fixture(params=sorted(WRITERS))
def written(request, tmp_path):
    """(path, rows) of one tiny file of each format."""
    x = table()
    kind = request.param
    return WRITERS[kind](tmp_path / f"rows.{kind}", x), x


def test_stream_gives_the_same_rows_as_the_in_memory_loader(written):
    path, x = written
    stream = streaming.open_stream(path, ["c", "a", "b"])  # a different column order
    rows = np.concatenate(list(stream.rows(50).as_numpy_iterator()))
    expected = x[:, [2, 0, 1]]
    if path.suffix != ".tfrecord":  # the loader reads CSV and Parquet
        expected = load_data(str(path), feature_columns=["c", "a", "b"]).x
    np.testing.assert_array_equal(rows, expected)
    assert stream.feature_names == ("c", "a", "b")


def test_default_columns_are_every_numeric_column(written):
    path, _ = written
    names = streaming.open_stream(path).feature_names
    if path.suffix == ".tfrecord":  # the first record's float features, in name order
        assert names == COLUMNS
    else:
        assert names == ("id", *COLUMNS)


def test_one_pass_statistics_equal_numpys(written):
    path, x = written
    stats = streaming.scan(streaming.open_stream(path, COLUMNS), chunk_rows=32)
    assert stats.count == len(x)
    reference = x.astype(np.float64)
    np.testing.assert_allclose(stats.mean, reference.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.variance, reference.var(axis=0), rtol=1e-5, atol=1e-5)


def test_moments_keep_their_precision_under_a_large_offset():
    rng = np.random.default_rng(3)
    x = 1e6 + rng.normal(size=(20_000, 2)) * [1.0, 1e-2]
    moments = Moments()
    for start in range(0, len(x), 999):
        moments.update(x[start:start + 999])
    np.testing.assert_allclose(moments.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.variance, x.var(axis=0), rtol=1e-6)


def test_training_batches_shuffle_alike_for_one_seed_and_anew_each_epoch(tmp_path):
    x = table(n=90)
    stream = streaming.open_stream(write_csv(tmp_path / "rows.csv", x), COLUMNS)

    def epochs(dataset, count):
        return [np.concatenate(list(dataset.as_numpy_iterator())) for _ in range(count)]

    first, second = epochs(stream.batches(30, 1000, seed=7, rows=90), 2)
    assert np.array_equal(first, epochs(stream.batches(30, 1000, seed=7), 1)[0])
    assert not np.array_equal(first, second)  # a new order each epoch
    assert not np.array_equal(first, x)  # shuffled at all
    for epoch in (first, second):  # every row exactly once per epoch
        np.testing.assert_array_equal(np.sort(epoch, axis=0), np.sort(x, axis=0))
    batches = stream.batches(30, 1000, seed=7, rows=90)
    assert int(batches.cardinality()) == 3


def test_array_batches_orders_depend_on_their_seed_alone():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)

    def epochs(seed, count=2):
        dataset = pipeline.array_batches(x, 8, seed)
        return [np.concatenate(list(dataset.as_numpy_iterator())) for _ in range(count)]

    first, second = epochs([3, 0])
    tf.random.set_seed(123)  # TensorFlow's global seed must not change the orders
    assert np.array_equal(np.stack(epochs([3, 0])), np.stack([first, second]))
    assert not np.array_equal(first, second)  # a new order each epoch
    assert not np.array_equal(first, epochs([3, 1], 1)[0])  # and another seed, others
    for epoch in (first, second):  # every row exactly once per epoch
        np.testing.assert_array_equal(np.sort(epoch, axis=0), x)
    assert int(pipeline.array_batches(x, 8, 0).cardinality()) == 3


def tiny_model(num_features):
    keras.utils.set_random_seed(0)
    model = MMOCGAN(num_features=num_features, num_modes=3, z_dim=4, d_hidden=(16, 16),
                    g_hidden=(16,), target_epochs=1, reference="gmm")
    model.compile(steps_per_execution=4)
    return model


def test_a_one_epoch_fit_on_the_stream_works(written):
    path, x = written
    stream = streaming.open_stream(path, COLUMNS)
    model = tiny_model(3)
    history = model.fit(stream.batches(50, 100, seed=0, rows=len(x)), epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"][0])
    # The standardisation was learned in one pass over the stream.
    np.testing.assert_allclose(model.standardizer.mean.numpy(), x.astype(np.float64).mean(0),
                               rtol=1e-5)
    np.testing.assert_allclose(model.standardizer.scale.numpy(), x.astype(np.float64).std(0),
                               rtol=1e-5)
    scores = model.predict(x[:5], verbose=0)["score"]
    assert np.all(np.isfinite(scores)) and 0 < float(model.prepared.numpy())


def test_bad_cells_are_one_line_data_errors_naming_file_column_and_row(tmp_path):
    x = table(n=20)
    nan_csv = tmp_path / "nan.csv"
    write_csv(nan_csv, x, extra=False)
    lines = nan_csv.read_text().splitlines()
    lines[8] = "1.0,nan,2.0"
    nan_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"nan.csv: column 'b', row 8: missing or NaN"):
        streaming.scan(streaming.open_stream(nan_csv))

    text_csv = tmp_path / "text.csv"
    text_csv.write_text("a,b\n1,2\n\n3,x7\n")
    with pytest.raises(DataError, match=r"text.csv: row 2: .*x7") as err:
        streaming.scan(streaming.open_stream(text_csv))
    assert "\n" not in str(err.value)


def test_csv_blank_lines_and_windows_line_ends_are_read_like_the_loader(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"a,b\r\n1.5,2\r\n\r\n3,4\r\n\r\n")
    rows = np.concatenate(list(streaming.open_stream(path).rows(10).as_numpy_iterator()))
    np.testing.assert_array_equal(rows, load_data(str(path)).x)


@pytest.mark.parametrize("kind, columns, expected", [
    ("csv", ["a", "zz"], "feature column 'zz' not found"),
    ("parquet", ["a", "zz"], "feature column 'zz' not found"),
    ("tfrecord", ["a", "zz"], "feature column 'zz' not found"),
    ("tfrecord", ["a", "id"], "'id' is a int64_list, not a float_list"),
])
def test_missing_or_wrong_columns_are_refused_up_front(kind, columns, expected, tmp_path):
    path = WRITERS[kind](tmp_path / f"rows.{kind}", table(n=10))
    with pytest.raises(DataError, match=expected):
        streaming.open_stream(path, columns)


def test_other_sources_and_missing_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="streaming reads"):
        streaming.open_stream(tmp_path / "x.npz")
    with pytest.raises(DataError, match="file not found"):
        streaming.open_stream(tmp_path / "x.csv")


def test_streaming_run_writes_a_model_and_counts_the_rows(tmp_path):
    path = write_csv(tmp_path / "rows.csv", table(n=120), extra=False)
    config = TrainConfig(data=str(path), workdir=str(tmp_path / "work"), streaming=True,
                         epochs=1, batch_size=40, verbose=0, shuffle_buffer=64)
    config.model.num_modes, config.model.z_dim, config.model.target_epochs = 3, 4, 1
    config.model.d_hidden, config.model.g_hidden = (16, 16), (16,)
    metrics = training.train(config)
    assert metrics["n_train"] == 120 and "eval" not in metrics
    assert json.loads((tmp_path / "work" / "metrics.json").read_text())["n_train"] == 120
    model = keras.saving.load_model(str(tmp_path / "work" / "model.keras"))
    assert model.feature_names == COLUMNS


def test_streaming_refuses_labels_and_too_few_rows(tmp_path):
    with pytest.raises(ConfigError, match="label_column"):
        TrainConfig(data="x.csv", streaming=True, label_column="label").validate()
    path = write_csv(tmp_path / "few.csv", table(n=30), extra=False)
    config = TrainConfig(data=str(path), workdir=str(tmp_path / "work"), streaming=True,
                         batch_size=40)
    with pytest.raises(DataError, match="only 30 training rows"):
        training.train(config)
    assert not (tmp_path / "work").exists()
