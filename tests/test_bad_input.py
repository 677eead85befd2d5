"""Bad input to the commands: one `error:` line, its exit status, nothing written.

One table of cases, each a command line, the status it must end with, a piece of its one
stderr line and the output it must not leave behind. Every case fails before any training,
so a run is mostly TensorFlow's import; the runs go a few at a time, sharing the cores.
Ctrl-C is the one case that needs a command at work: cli.evaluate is interrupted after its
first finished fold. Refusals that take the same path as a case here (--chunk_rows=-5,
--folds=1, an empty --seeds, a missing workdir) are checked in this process, at the end.
"""

import dataclasses
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tiny import TINY_ARGS, finish, start_module, tiny_rows

from mmocgan_tf.config import TrainConfig
from mmocgan_tf.data import DataError, load_data, loading


@dataclasses.dataclass(frozen=True)
class Case:
    """A command line and what it must do; {d} is the fixtures' folder, {o} the case's own.

    {o} must still not exist afterwards: the case's outputs all point into it.
    """

    module: str
    args: tuple
    status: int
    message: str
    interrupt: bool = False  # Ctrl-C after the first line of output


CASES = {
    # cli.score
    "score_chunk_rows_0": Case("cli.score", ("--model={d}/sm", "--data={d}/rows.csv",
                                             "--output={o}/s.csv", "--chunk_rows=0"),
                               2, "--chunk_rows=0: 0 is not a positive integer"),
    "score_beam_flag_without_runner": Case("cli.score", ("--model={d}/sm", "--data={d}/rows.csv",
                                                         "--output={o}/s.csv", "--id_column=id"),
                                           2, "--id_column: only with --runner"),
    # cli.export
    "export_dir_is_a_file": Case("cli.export", ("--workdir={d}/corrupt", "--export_dir={d}/a_file"),
                                 2, "a_file is a file, not a folder"),
    "export_corrupt_model": Case("cli.export", ("--workdir={d}/corrupt", "--export_dir={o}/sm"),
                                 2, "corrupt/model.keras: unreadable"),
    "export_workdir_is_a_file": Case("cli.export", ("--workdir={d}/a_file",
                                                    "--export_dir={o}/sm"),
                                     2, "workdir {d}/a_file is a file, not a folder"),
    # cli.benchmark and cli.evaluate: no folds or seeds would be an empty table and status 0
    "benchmark_folds_0": Case("cli.benchmark", ("--output={o}", "--folds=0"), 2,
                              "--folds must be >= 2"),
    "evaluate_folds_0": Case("cli.evaluate", ("--data=synthetic:production_line",
                                              "--output={o}", "--folds=0"),
                             2, "--folds must be >= 2"),
    # flags, for every command alike (cli/app.py parse_flags)
    "unknown_flag": Case("cli.score", ("--no_such_flag=1",), 2, "no_such_flag"),
    "missing_flagfile": Case("cli.train", ("--flagfile={o}/none.flags",), 2, "none.flags"),
    "bad_integer": Case("cli.train", ("--epochs=abc", "--workdir={o}"), 2, "--epochs=abc"),
    "missing_required_flag": Case("cli.export", ("--workdir={o}",), 2, "--export_dir"),
    # cli.train
    "train_workdir_is_a_file": Case("cli.train", ("--data={d}/rows.csv", "--workdir={d}/a_file",
                                                  "--noplots", *TINY_ARGS), 2, "a_file"),
    "train_export_dir_is_a_file": Case("cli.train", ("--data={d}/rows.csv", "--workdir={o}",
                                                     "--export_dir={d}/a_file", "--noplots",
                                                     *TINY_ARGS), 2, "a_file"),
    # Ctrl-C: what was written stays as it was (cli.evaluate writes its tables at the end)
    "ctrl_c": Case("cli.evaluate", ("--data=synthetic:production_line", "--methods=gmm",
                                    "--folds=2", f"--seeds={','.join(map(str, range(500)))}",
                                    "--output={o}"), 130, "error: interrupted", interrupt=True),
}


def snapshot(folder):
    """{relative path: bytes} of every file under folder."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """The inputs the cases read: a file, rows, a workdir whose model.keras is cut short."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "a_file").write_text("keep me\n")
    with open(d / "rows.csv", "w") as f:
        f.write("a,b,c\n" + "".join(",".join(f"{v:.4f}" for v in row) + "\n"
                                    for row in tiny_rows(200)))
    (d / "corrupt").mkdir()
    config = TrainConfig(data=str(d / "rows.csv"), workdir=str(d / "corrupt"))
    (d / "corrupt" / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (d / "corrupt" / "model.keras").write_bytes(b"PK\x03\x04" + bytes(200))  # a zip, cut short
    return d


def _sigint_by_default():
    """A job started in the background (a CI runner's shell) inherits Ctrl-C ignored, and
    so would its children; a command the test interrupts must get it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_case(name, case, d, o):
    fill = {"d": str(d), "o": str(o)}
    proc = start_module(case.module, *(arg.format(**fill) for arg in case.args),
                        preexec_fn=_sigint_by_default if case.interrupt else None)
    first = ""
    if case.interrupt:
        first = proc.stdout.readline()  # a fold is done: the command is at work
        proc.send_signal(signal.SIGINT)
    result = finish(proc, timeout=240)
    result.stdout = first + result.stdout
    return result


@pytest.fixture(scope="module")
def results(fixtures, tmp_path_factory):
    """{case: (CompletedProcess, its {o} folder)}, four commands at a time."""
    outputs = tmp_path_factory.mktemp("outputs")
    before = snapshot(fixtures)
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(run_case, name, case, fixtures, outputs / name)
                   for name, case in CASES.items()}
        done = {name: (future.result(), outputs / name) for name, future in futures.items()}
    return done, before, snapshot(fixtures)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_its_status_and_nothing_written(name, results, fixtures):
    done, before, after = results
    case = CASES[name]
    result, output = done[name]
    lines = result.stderr.strip().splitlines()
    message = case.message.format(d=fixtures, o=output)
    assert result.returncode == case.status, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert message in lines[0]
    assert before == after  # the inputs are as they were
    if case.interrupt:
        assert result.stdout.startswith("[1/"), result.stdout[:500]
        assert not os.path.exists(output / "results.json")
    else:
        assert not os.path.exists(output)


@pytest.mark.parametrize("params, name", [(dict(epochs=0), "epochs"),
                                          (dict(epochs=-1), "epochs"),
                                          (dict(batch_size=0), "batch_size"),
                                          (dict(steps_per_execution=0), "steps_per_execution")])
def test_the_detector_refuses_counts_below_one_naming_the_parameter(params, name):
    from mmocgan_tf import MMOCGANDetector

    detector = MMOCGANDetector(**params)
    with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 1, got -?\d+$"):
        detector.fit(tiny_rows(20))
    assert not hasattr(detector, "model_")


def test_a_csv_is_loaded_block_by_block_as_if_whole(tmp_path, monkeypatch):
    """Only one block is held as text; rows, labels and messages are the whole file's."""
    x = tiny_rows(23)
    labels = ["ok"] * 20 + ["bad"] * 3
    path = tmp_path / "t.csv"
    rows = [",".join(f"{v:.4f}" for v in row) + f",{label}\n"
            for row, label in zip(x, labels, strict=True)]
    path.write_text("a,b,c,label\n" + "".join(rows))
    whole = load_data(str(path), label_column="label", normal_label="ok")
    monkeypatch.setattr(loading, "CSV_BLOCK_ROWS", 4)
    blocks = load_data(str(path), label_column="label", normal_label="ok")
    np.testing.assert_array_equal(blocks.x, whole.x)
    np.testing.assert_array_equal(blocks.y, np.r_[np.zeros(20), np.ones(3)])
    np.testing.assert_array_equal(whole.y, blocks.y)
    lines = path.read_text().splitlines()
    lines[18] = lines[18].replace(",ok", ",")  # row 18, in the fifth block
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"label column 'label', row 18 \(line 19\): missing"):
        load_data(str(path), label_column="label", normal_label="ok")
    lines[18] += "ok"
    lines[22] = "1,2"  # the last row, cut short
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"row 22 \(line 23\) has 2 fields, header has 4"):
        load_data(str(path), label_column="label", normal_label="ok")


@pytest.mark.parametrize("folds, seeds, message", [
    (1, ["0"], "--folds must be >= 2"), (0, ["0"], "--folds must be >= 2"),
    (5, [], "--seeds is empty"), (5, ["0", "x"], "--seeds takes integers, got 0,x")])
def test_evaluate_and_benchmark_refuse_no_folds_or_seeds(folds, seeds, message):
    from mmocgan_tf.cli import evaluate

    with pytest.raises(ValueError, match=message):
        evaluate.check_protocol(folds, seeds)
    assert evaluate.check_protocol(2, ["3", "1"]) == [3, 1]


@pytest.mark.parametrize("chunk_rows", [0, -5, 1.5])
def test_score_file_refuses_chunks_below_one_row_before_reading_anything(tmp_path, chunk_rows):
    from mmocgan_tf.deploy import scoring

    with pytest.raises(ValueError, match="chunk_rows must be an integer >= 1"):
        scoring.score_file(str(tmp_path / "none"), str(tmp_path / "none.csv"),
                           str(tmp_path / "out.csv"), chunk_rows=chunk_rows)
    assert os.listdir(tmp_path) == []


def test_export_refuses_a_missing_workdir_in_one_line(tmp_path):
    from mmocgan_tf.deploy import export

    with pytest.raises(export.ExportError, match="^workdir .*run does not exist$"):
        export.export_workdir(str(tmp_path / "run"), str(tmp_path / "sm"))
    assert os.listdir(tmp_path) == []
