"""Tests for mmocgan_tf.data: loading, one-line errors, the holdout split."""

import numpy as np
import pytest

from mmocgan_tf.data.loading import (
    DataError,
    TabularData,
    check_trainable,
    load_data,
    split_normal_holdout,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(spec, **kwargs):
    """Loads spec expecting a DataError; returns its message after checking it is one line."""
    with pytest.raises(DataError) as info:
        load_data(spec, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return message


# ------------------------------------------------------------------ CSV


def test_csv_round_trip_all_columns(tmp_path):
    x = np.array([[1.5, -2.0, 3.25], [0.0, 4.0, 1e-3]], dtype=np.float32)
    lines = ["a,b,c"] + [",".join(repr(float(v)) for v in row) for row in x]
    data = load_data(write(tmp_path, "d.csv", "\n".join(lines) + "\n"))
    assert isinstance(data, TabularData)
    assert data.x.dtype == np.float32 and data.y is None
    np.testing.assert_array_equal(data.x, x)
    assert data.feature_names == ("a", "b", "c")
    assert data.source.endswith("d.csv")


def test_csv_feature_columns_pick_and_order(tmp_path):
    path = write(tmp_path, "d.csv", "a, b ,c\n1,2,3\n4,5,6\n")
    data = load_data(path, feature_columns=["c", "a"])
    assert data.feature_names == ("c", "a")
    np.testing.assert_array_equal(data.x, [[3, 1], [6, 4]])
    # A comma-separated string works too (CLI flags), with stripped names.
    assert load_data(path, feature_columns="b, c").feature_names == ("b", "c")


def test_csv_label_column_default_normal_is_zero(tmp_path):
    path = write(tmp_path, "d.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,0.0\n7,8,2\n")
    data = load_data(path, label_column="label")
    assert data.feature_names == ("a", "b")  # label column left out of the features
    assert data.y.dtype == np.int32
    np.testing.assert_array_equal(data.y, [0, 1, 0, 1])  # "0.0" equals "0" as a number


def test_csv_normal_label_text_and_whitespace(tmp_path):
    path = write(tmp_path, "d.csv", "a,kind\n1, ok \n2,bad\n3,ok\n4,OK\n")
    data = load_data(path, label_column="kind", normal_label="ok")
    np.testing.assert_array_equal(data.y, [0, 1, 0, 1])  # stripped, case-sensitive text


def test_csv_skips_blank_lines_and_bom(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\r\n1,2\r\n\r\n3,4\r\n")
    data = load_data(str(path))
    assert data.feature_names == ("a", "b")
    np.testing.assert_array_equal(data.x, [[1, 2], [3, 4]])


def test_missing_file(tmp_path):
    message = error_of(str(tmp_path / "nope.csv"))
    assert "nope.csv" in message and "not found" in message


@pytest.mark.parametrize(
    "text, expected",
    [("", "empty file"), ("a,b\n", "header only"), ("a,b\n\n\n", "header only")],
)
def test_csv_without_data_rows(tmp_path, text, expected):
    message = error_of(write(tmp_path, "d.csv", text))
    assert "d.csv" in message and "has no data rows" in message and expected in message


def test_unknown_feature_column_lists_available(tmp_path):
    message = error_of(write(tmp_path, "d.csv", "a,b\n1,2\n"), feature_columns=["a", "zz"])
    assert "'zz'" in message and "'a', 'b'" in message and "d.csv" in message


def test_unknown_label_column_lists_available(tmp_path):
    message = error_of(write(tmp_path, "d.csv", "a,b\n1,2\n"), label_column="y")
    assert "label column 'y'" in message and "'a', 'b'" in message


@pytest.mark.parametrize(
    "body, column, row, fragment",
    [
        ("1,2\n3,x7\n", "b", 2, "non-numeric value 'x7'"),
        ("1,2\n,4\n", "a", 2, "missing value"),
        ("1,2\n3, \n", "b", 2, "missing value"),
        ("nan,2\n3,4\n", "a", 1, "NaN"),
        ("1,2\n3,4\n5,-inf\n", "b", 3, "infinite"),
        ("1,2\n3,1e999\n", "b", 2, "infinite"),
    ],
)
def test_bad_cells_name_file_column_and_row(tmp_path, body, column, row, fragment):
    message = error_of(write(tmp_path, "cells.csv", "a,b\n" + body))
    assert "cells.csv" in message
    assert f"column {column!r}" in message
    assert f"row {row} " in message
    assert fragment in message


def test_row_numbers_count_data_rows_and_report_line(tmp_path):
    message = error_of(write(tmp_path, "d.csv", "a\n1\n\n2\nbad\n"))
    assert "row 3 (line 5)" in message


def test_wrong_number_of_fields(tmp_path):
    message = error_of(write(tmp_path, "d.csv", "a,b,c\n1,2,3\n4,5\n"))
    assert "d.csv" in message and "row 2" in message and "2 fields" in message
    message = error_of(write(tmp_path, "e.csv", "a,b\n1,2,3\n"))
    assert "row 1" in message and "3 fields" in message


def test_label_problems(tmp_path):
    path = write(tmp_path, "d.csv", "a,cls\n1,normal\n2,\n")
    assert "missing label" in error_of(path, label_column="cls", normal_label="normal")
    path = write(tmp_path, "e.csv", "a,cls\n1,normal\n2,fault\n")
    message = error_of(path, label_column="cls")  # default normal_label "0" matches nothing
    assert "normal_label '0'" in message and "'fault'" in message
    assert load_data(path, feature_columns=["a"], normal_label="0").y is None  # CLI default
    assert "both a feature and the label" in error_of(
        path, feature_columns=["a", "cls"], label_column="cls", normal_label="normal"
    )


def test_header_problems(tmp_path):
    assert "duplicate column name 'a'" in error_of(write(tmp_path, "d.csv", "a,a\n1,2\n"))
    message = error_of(write(tmp_path, "e.csv", ",a\n0,2\n"))
    assert "column 1 has an empty name" in message
    # An unnamed index column is fine when features are named explicitly.
    assert load_data(str(tmp_path / "e.csv"), feature_columns=["a"]).x.shape == (1, 1)


def test_unknown_spec_names_accepted_forms():
    message = error_of("data.xlsx")
    assert "data.xlsx" in message and ".csv" in message and "bundled:thyroid" in message
    assert "available: thyroid" in error_of("bundled:nope")
    assert "production_line" in error_of("synthetic:nope")


# ------------------------------------------------------- arrays and Parquet


def test_npz_with_labels_and_npy(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(tmp_path / "d.npz", X=x, y=np.array([0, 1, 0, 0]))
    data = load_data(str(tmp_path / "d.npz"))
    assert data.x.dtype == np.float32 and data.y.dtype == np.int32
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, [0, 1, 0, 0])
    assert data.feature_names == ("f0", "f1", "f2")
    picked = load_data(str(tmp_path / "d.npz"), feature_columns=["f2", "f0"])
    np.testing.assert_array_equal(picked.x, x[:, [2, 0]])

    np.save(tmp_path / "d.npy", x.astype(np.int64))
    data = load_data(str(tmp_path / "d.npy"))
    assert data.y is None and data.x.dtype == np.float32 and data.x.shape == (4, 3)


def test_npz_without_y_has_no_labels(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((2, 2)))
    assert load_data(str(tmp_path / "d.npz")).y is None


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"x": np.ones((2, 2))}, "no array 'X'"),
        ({"X": np.ones(3)}, "2-D"),
        ({"X": np.ones((0, 3))}, "has no data rows"),
        ({"X": np.array([["a", "b"]])}, "numeric"),
        ({"X": np.array([[1.0, np.nan], [2.0, 3.0]])}, "column 'f1', row 1: NaN"),
        ({"X": np.array([[1.0, 2.0], [3.0, 1e300]])}, "too large for float32"),
        ({"X": np.ones((2, 2)), "y": np.array([0, 2])}, "0 (normal) or 1 (anomaly)"),
        ({"X": np.ones((2, 2)), "y": np.array([0, 1, 1])}, "one label per row"),
    ],
)
def test_bad_npz(tmp_path, arrays, fragment):
    np.savez(tmp_path / "bad.npz", **arrays)
    message = error_of(str(tmp_path / "bad.npz"))
    assert fragment in message and "bad.npz" in message


def test_not_a_numpy_file(tmp_path):
    message = error_of(write(tmp_path, "fake.npy", "hello"))
    assert "fake.npy" in message and "not a NumPy" in message


def test_label_column_rejected_for_array_sources(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((2, 2)))
    assert "CSV/Parquet only" in error_of(str(tmp_path / "d.npy"), label_column="y")


def test_parquet_same_semantics_as_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {"a": [1.0, 2.0, 3.0], "b": [4, 5, 6], "s": ["7", " 8", "9.5"], "kind": ["ok", "bad", "ok"]}
    )
    pq.write_table(table, tmp_path / "d.parquet")
    path = str(tmp_path / "d.parquet")
    data = load_data(path, feature_columns=["s", "a"], label_column="kind", normal_label="ok")
    assert data.feature_names == ("s", "a") and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.x, [[7, 1], [8, 2], [9.5, 3]])
    np.testing.assert_array_equal(data.y, [0, 1, 0])
    by_number = load_data(path, feature_columns=["a"], label_column="b", normal_label="5.0")
    assert by_number.y.tolist() == [1, 0, 1]


def test_parquet_bad_values(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"a": [1.0, None, 3.0], "s": ["1", "2", "oops"]})
    pq.write_table(table, tmp_path / "d.parquet")
    path = str(tmp_path / "d.parquet")
    message = error_of(path, feature_columns=["a"])
    assert "column 'a', row 2" in message and "missing value" in message
    message = error_of(path, feature_columns=["s"])
    assert "column 's', row 3" in message and "'oops'" in message
    assert "'a', 's'" in error_of(path, feature_columns=["nope"])
    message = error_of(write(tmp_path, "broken.parquet", "not parquet"))
    assert "broken.parquet" in message and "cannot read Parquet" in message


# ------------------------------------------------------- bundled, synthetic


def test_bundled_thyroid():
    data = load_data("bundled:thyroid")
    assert data.x.shape == (3772, 6) and data.x.dtype == np.float32
    assert data.y.dtype == np.int32 and int(data.y.sum()) == 93
    assert np.isfinite(data.x).all()
    assert data.feature_names == tuple(f"f{i}" for i in range(6))
    assert data.source == "bundled:thyroid"


def test_synthetic_spec_uses_seed():
    a = load_data("synthetic:production_line", seed=1)
    b = load_data("synthetic:production_line", seed=1)
    c = load_data("synthetic:production_line", seed=2)
    assert a.x.shape == (3060, 12) and int(a.y.sum()) == 60
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    assert "seed=1" in a.source


# ------------------------------------------------------------------ splits


def labelled(n_normal=50, n_anomaly=7):
    x = np.arange(n_normal + n_anomaly, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    y = np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))
    return TabularData(x[order], y[order], ("a", "b"), "test")


def test_split_normal_holdout_protocol():
    data = labelled()
    x_train, x_eval, y_eval = split_normal_holdout(data, holdout_fraction=0.2, seed=3)
    row_of = {float(v): i for i, v in enumerate(data.x[:, 0])}
    train_rows = {row_of[float(v)] for v in x_train[:, 0]}
    eval_rows = {row_of[float(v)] for v in x_eval[:, 0]}
    assert not train_rows & eval_rows
    assert all(data.y[i] == 0 for i in train_rows)
    assert len(train_rows) == 40 and len(eval_rows) == 10 + 7
    assert {i for i in range(len(data.y)) if data.y[i] == 1} <= eval_rows
    np.testing.assert_array_equal(y_eval, [data.y[row_of[float(v)]] for v in x_eval[:, 0]])
    assert int(y_eval.sum()) == 7


def test_split_is_seeded():
    data = labelled()
    first = split_normal_holdout(data, seed=5)
    again = split_normal_holdout(data, seed=5)
    other = split_normal_holdout(data, seed=6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_split_without_labels_and_without_normals():
    data = TabularData(np.ones((5, 2), np.float32), None, ("a", "b"), "test")
    x_train, x_eval, y_eval = split_normal_holdout(data)
    assert x_train.shape == (5, 2) and x_eval is None and y_eval is None
    only_anomalies = TabularData(np.ones((3, 1), np.float32), np.ones(3, np.int32), ("a",), "t")
    with pytest.raises(DataError, match="no normal rows"):
        split_normal_holdout(only_anomalies)
    with pytest.raises(DataError, match="holdout_fraction"):
        split_normal_holdout(data, holdout_fraction=1.0)


def test_check_trainable():
    check_trainable(np.zeros((8, 3), np.float32), 8)
    with pytest.raises(DataError) as info:
        check_trainable(np.zeros((5, 3), np.float32), 8)
    assert "5" in str(info.value) and "8" in str(info.value)
    x = np.zeros((10, 3), np.float32)
    x[4, 2] = np.inf
    with pytest.raises(DataError, match="row 5, column 3"):
        check_trainable(x, 2)
