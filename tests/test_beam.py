"""Beam batch scoring (mmocgan_tf/deploy/beam/, cli.score --runner) on the local DirectRunner.

Skipped without apache_beam (pip install ".[beam]"). The shards are tiny; a pipeline run
takes seconds in memory and about a minute with worker processes (marked slow). The
command line runs start together, sharing the cores: each is mostly TensorFlow's import.
"""

import csv
import glob
import gzip
import json
import os

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from tiny import finish, start_module, tiny_rows  # noqa: E402

from mmocgan_tf.data import DataError  # noqa: E402
from mmocgan_tf.deploy import beam  # noqa: E402
from mmocgan_tf.deploy.beam import score_with_beam, summary_line  # noqa: E402

TWO_WORKERS = ["--direct_num_workers=2"]
ROWS_PER_SHARD = 12


@pytest.fixture(scope="module")
def serving(tiny_export):
    import tensorflow as tf

    return tf.saved_model.load(tiny_export).signatures


def expected(signatures, x, signature="serving_default"):
    import tensorflow as tf

    out = signatures[signature](features=tf.constant(np.asarray(x, np.float32)))
    return {name: value.numpy() for name, value in out.items()}


def write_csv_shards(folder):
    """Three shards, columns in another order than the model's plus an extra one.

    Shard 0 is gzipped (part-0.csv.gz), shard 1 has a non-numeric cell, shard 2 a missing
    cell and a row of the wrong width.
    Returns ({id: feature row} of the good rows, {(file, line): id or None} of the bad).
    """
    x = tiny_rows(3 * ROWS_PER_SHARD, seed=7)
    good, bad = {}, {}
    for shard in range(3):
        path = os.path.join(folder, f"part-{shard}.csv")
        lines = ["note,c,id,a,b"]
        for i in range(ROWS_PER_SHARD):
            a, b, c = x[shard * ROWS_PER_SHARD + i]
            row_id = f"s{shard}-{i}"
            good[row_id] = (a, b, c)
            lines.append(f"n,{float(c)!r},{row_id},{float(a)!r},{float(b)!r}")
        if shard == 1:
            lines.insert(4, "n,1.0,bad-text,oops,2.0")
            bad[(path, 5)] = "non-numeric value 'oops'"
        if shard == 2:
            lines.insert(3, "n,1.0,bad-empty,,2.0")
            bad[(path, 4)] = "missing value"
            lines.append("n,1.0,bad-width,2.0")
            bad[(path, len(lines))] = "has 4 fields, header has 5"
        text = "\n".join(lines) + "\n"
        if shard == 0:  # compressed: Beam's filesystems read it through
            with gzip.open(path + ".gz", "wt") as f:
                f.write(text)
        else:
            with open(path, "w") as f:
                f.write(text)
    return good, bad


def read_csv_outputs(summary):
    rows = {}
    for path in summary.output_files:
        with open(path, newline="") as f:
            for record in csv.DictReader(f):
                assert record["id"] not in rows, "a row was written twice"
                rows[record["id"]] = record
    return rows


def read_errors(summary):
    errors = []
    for path in summary.errors_files:
        with open(path) as f:
            errors += [json.loads(line) for line in f if line.strip()]
    return errors


def check_scores(rows, good, signatures):
    ids = sorted(good)
    assert sorted(rows) == ids
    want = expected(signatures, [good[i] for i in ids])
    got = {name: np.array([float(rows[i][name]) for i in ids]) for name in
           ("score", "is_anomaly", "mode")}
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-5)
    np.testing.assert_array_equal(got["is_anomaly"], want["is_anomaly"].astype(int))
    np.testing.assert_array_equal(got["mode"], want["mode"])


def check_errors(errors, bad):
    assert {(e["file"], e["line"]) for e in errors} == set(bad)
    for error in errors:
        assert error["kind"] == "row" and error["row"] >= 1
        assert bad[(error["file"], error["line"])] in error["reason"]


def test_csv_shards_two_workers(tmp_path, tiny_export, serving):
    good, bad = write_csv_shards(tmp_path)
    prefix = str(tmp_path / "out" / "scores")
    summary = score_with_beam(tiny_export, str(tmp_path / "part-*"), prefix,
                              id_columns=["id"], pipeline_args=TWO_WORKERS, batch_size=5)
    assert (summary.rows_scored, summary.rows_rejected, summary.files_rejected) == (
        len(good), len(bad), 0)
    assert summary.files_matched == 3 and not summary.complete
    check_scores(read_csv_outputs(summary), good, serving)
    check_errors(read_errors(summary), bad)
    with open(summary.output_files[0]) as f:
        assert f.readline().strip() == "id,score,is_anomaly,mode"
    assert summary_line(summary) == (f"scored {len(good)} rows into {prefix}-*.csv; "
                                     f"rejected 3 rows into {prefix}-errors-*.jsonl")
    assert all(glob.fnmatch.fnmatch(p, summary.output_pattern) for p in summary.output_files)


@pytest.mark.slow
def test_csv_shards_worker_processes(tmp_path, tiny_export, serving):
    good, bad = write_csv_shards(tmp_path)
    summary = score_with_beam(
        tiny_export, str(tmp_path / "part-*"), str(tmp_path / "scores"),
        id_columns="id", batch_size=8,
        pipeline_args=[*TWO_WORKERS, "--direct_running_mode=multi_processing"])
    assert (summary.rows_scored, summary.rows_rejected) == (len(good), len(bad))
    check_scores(read_csv_outputs(summary), good, serving)
    check_errors(read_errors(summary), bad)


def test_parquet_in_parquet_out_and_a_rejected_file(tmp_path, tiny_export, serving):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x = tiny_rows(30, seed=8).astype(np.float64)
    ids = np.arange(100, 130, dtype=np.int64)
    pq.write_table(pa.table({"id": ids[:15], "a": x[:15, 0], "b": x[:15, 1],
                             "c": x[:15, 2]}), tmp_path / "part-0.parquet")
    b = [str(v) for v in x[15:, 1]]
    b[3] = "n/a"  # a text column: numbers are read by float(), this cell is rejected
    c = list(x[15:, 2])
    c[5] = None  # a null
    c[6] = float("nan")
    pq.write_table(pa.table({"id": ids[15:], "a": x[15:, 0], "b": b, "c": c}),
                   tmp_path / "part-1.parquet")
    pq.write_table(pa.table({"id": ids[:2], "a": x[:2, 0], "b": x[:2, 1]}),
                   tmp_path / "part-2.parquet")  # no column c: the whole file is rejected
    summary = score_with_beam(tiny_export, str(tmp_path / "part-*.parquet"),
                              str(tmp_path / "scores"), id_columns=["id"],
                              output_format="parquet", pipeline_args=TWO_WORKERS)
    assert (summary.rows_scored, summary.rows_rejected, summary.files_rejected) == (27, 3, 1)
    table = pa.concat_tables([pq.read_table(p) for p in summary.output_files])
    assert table.schema.field("id").type == pa.int64()  # the input's type, to join on
    assert table.column_names == ["id", "score", "is_anomaly", "mode"]
    out = table.to_pydict()
    keep = [i for i in range(30) if i not in (18, 20, 21)]
    order = np.argsort(out["id"])
    np.testing.assert_array_equal(np.asarray(out["id"])[order], ids[keep])
    want = expected(serving, x[keep])
    np.testing.assert_allclose(np.asarray(out["score"])[order], want["score"], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(out["is_anomaly"])[order], want["is_anomaly"])
    errors = sorted(read_errors(summary), key=lambda e: (e["file"], e["line"] or 0))
    part1 = str(tmp_path / "part-1.parquet")
    assert [(e["file"], e["line"], e["kind"]) for e in errors] == [
        (part1, 4, "row"), (part1, 6, "row"), (part1, 7, "row"),
        (str(tmp_path / "part-2.parquet"), 1, "file")]
    assert "non-numeric value 'n/a'" in errors[0]["reason"]
    assert "missing value" in errors[1]["reason"]
    assert "NaN" in errors[2]["reason"]
    assert "missing feature columns 'c'" in errors[3]["reason"]
    assert summary_line(summary).endswith(
        "rejected 3 rows and 1 file (not read, or not read to the end) into "
        f"{tmp_path / 'scores'}-errors-*.jsonl")


def test_tfrecord_with_explanations(tmp_path, tiny_export, serving):
    import tensorflow as tf

    x = tiny_rows(10, seed=9)
    with tf.io.TFRecordWriter(str(tmp_path / "part-0.tfrecord")) as writer:
        for i, row in enumerate(x):
            feature = {name: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                       for name, v in zip("abc", row, strict=True) if not (i == 4
                                                                           and name == "b")}
            feature["id"] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[f"t{i}".encode()]))
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    summary = score_with_beam(tiny_export, str(tmp_path / "*.tfrecord"),
                              str(tmp_path / "scores"), id_columns=["id"], explain=True,
                              pipeline_args=TWO_WORKERS)
    assert (summary.rows_scored, summary.rows_rejected) == (9, 1)
    [error] = read_errors(summary)
    assert (error["line"], error["row"]) == (5, 5) and "missing feature 'b'" in error["reason"]
    rows = read_csv_outputs(summary)
    keep = [i for i in range(10) if i != 4]
    ids = [f"t{i}" for i in keep]
    assert sorted(rows) == sorted(ids)
    want = expected(serving, x[keep], "explain")
    got = np.array([[float(rows[i][f"attribution_{n}"]) for n in "abc"] for i in ids])
    np.testing.assert_allclose(got, want["attributions"], rtol=1e-5, atol=1e-7)
    assert all(len(rows[i]["top_features"].split(";")) == 3 for i in ids)
    scores = np.array([float(rows[i]["score"]) for i in ids])
    np.testing.assert_allclose(scores, expected(serving, x[keep])["score"], rtol=1e-5)


def test_arguments_are_checked_before_the_pipeline(tmp_path, tiny_export):
    with pytest.raises(DataError, match="no files match"):
        score_with_beam(tiny_export, str(tmp_path / "none-*.csv"), str(tmp_path / "o"))
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="output_format"):
        score_with_beam(tiny_export, str(tmp_path / "x.csv"), str(tmp_path / "o"),
                        output_format="json")
    with pytest.raises(ValueError, match="output column"):
        score_with_beam(tiny_export, str(tmp_path / "x.csv"), str(tmp_path / "o"),
                        id_columns=["score"])
    with pytest.raises(ValueError, match="batch_size"):
        score_with_beam(tiny_export, str(tmp_path / "x.csv"), str(tmp_path / "o"),
                        batch_size=0)


def test_input_format_from_file_names():
    assert beam.input_format_of("gs://b/part-1.csv.gz") == "csv"
    assert beam.input_format_of("x/y.PARQUET") == "parquet"
    assert beam.input_format_of("x.tfrecords") == "tfrecord"
    assert beam.input_format_of("x.npy") is None


def test_pipeline_options_refuse_bad_values_and_runners_in_one_line():
    with pytest.raises(ValueError, match="^pipeline options: argument --direct_num_workers: "
                       "invalid int value: 'two'$"):
        beam.pipeline_options(["--direct_num_workers=two"])
    with pytest.raises(ValueError, match="^--runner=NoSuchRunner: Unexpected pipeline runner"):
        beam.pipeline_options(["--runner=NoSuchRunner"])
    with pytest.raises(ValueError, match="not one string"):
        beam.pipeline_options("--runner=DirectRunner")
    options = beam.pipeline_options(["--runner=DirectRunner", "--flink_master=h:8081",
                                     "--a_portable_runners_own_option=1"])
    assert options.get_all_options()["flink_master"] == "h:8081"


# ------------------------------------------------------------- the command line


def cli_shards(folder):
    """Two CSV shards of 8 rows, one row of the second non-numeric: 15 good rows."""
    x = tiny_rows(16, seed=11)
    for shard in range(2):
        lines = ["id,a,b,c"] + [f"r{shard}-{i}," + ",".join(f"{v:.6f}" for v in row)
                                for i, row in enumerate(x[8 * shard: 8 * shard + 8])]
        if shard == 1:
            lines[3] = "r1-2,1.0,oops,3.0"
        (folder / f"part-{shard}.csv").write_text("\n".join(lines) + "\n")
    return str(folder / "part-*.csv")


@pytest.fixture(scope="module")
def cli_runs(tiny_export, tmp_path_factory):
    """{case: (CompletedProcess, output prefix)}: the command line cases, started together."""
    folder = tmp_path_factory.mktemp("cli")
    pattern = cli_shards(folder)
    stub = folder / "stub"  # an apache_beam that is not installed
    stub.mkdir()
    (stub / "apache_beam.py").write_text('raise ImportError("No module named \'apache_beam\'")\n')
    beam_args = ("--runner=DirectRunner", "--direct_num_workers=2", "--id_column=id")
    cases = {
        "rejected": (*beam_args,),
        "allowed": (*beam_args, "--max_rejected=5"),
        "bad_beam_option": ("--runner=DirectRunner", "--direct_num_workers=two"),
        "unknown_flag": ("--direct_num_workers=2",),
        "no_beam": ("--runner=DirectRunner",),
    }
    procs = {}
    for name, args in cases.items():
        prefix = str(folder / name / "scores")
        env = None
        if name == "no_beam":
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                [str(stub), os.environ.get("PYTHONPATH", "")]))
        procs[name] = (start_module("cli.score", f"--model={tiny_export}", f"--data={pattern}",
                                    f"--output={prefix}", *args, env=env), prefix)
    return {name: (finish(proc, timeout=300), prefix) for name, (proc, prefix) in procs.items()}


@pytest.mark.parametrize("name, status", [("rejected", 1), ("allowed", 0)])
def test_cli_runner_scores_the_shards_and_exits_by_max_rejected(cli_runs, name, status):
    result, prefix = cli_runs[name]
    assert result.returncode == status, result.stderr[-3000:]
    assert result.stdout == (f"scored 15 rows into {prefix}-*.csv; rejected 1 row into "
                             f"{prefix}-errors-*.jsonl\n")
    outputs = glob.glob(prefix + "-*-of-*.csv")
    assert outputs and glob.glob(prefix + "-errors-*-of-*.jsonl")
    rows = {}
    for path in outputs:
        with open(path, newline="") as f:
            rows.update((r["id"], r) for r in csv.DictReader(f))
    assert len(rows) == 15 and "r1-2" not in rows
    assert list(next(iter(rows.values()))) == ["id", "score", "is_anomaly", "mode"]
    with open(prefix + "-counts.json") as f:
        assert json.load(f) == {"rows_scored": 15, "rows_rejected": 1, "files_rejected": 0}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if status:
        assert errors == [f"error: 1 rows rejected, more than --max_rejected=0 allows; the "
                          f"reasons are in {prefix}-errors-*.jsonl"]
    else:
        assert errors == []


@pytest.mark.parametrize("name, message", [
    ("bad_beam_option", "error: pipeline options: argument --direct_num_workers: invalid int "
                        "value: 'two'"),
    ("unknown_flag", "error: Unknown command line flag 'direct_num_workers'"),
    ("no_beam", "error: No module named 'apache_beam': install it with pip install "
                "'mmocgan-tf[beam]'"),
])
def test_cli_bad_beam_input_is_one_line_and_status_2(cli_runs, name, message):
    result, prefix = cli_runs[name]
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr[-3000:]
    assert result.stdout == ""
    assert not os.path.exists(os.path.dirname(prefix))
