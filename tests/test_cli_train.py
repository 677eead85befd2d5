"""cli.train end to end: flagfile in, workdir out; bad input gives one line and exit 2."""

import json
import os
import re
import sys

import numpy as np
import pytest
from absl import flags
from tiny import TINY_ARGS, TINY_FLAGS, finish, start_module

from cli import train as train_cli
from mmocgan_tf.cli import train as train_command


def write_csv(path, rows, header="a,b,c,label"):
    with open(path, "w") as f:
        f.write(header + "\n")
        for row in rows:
            f.write(",".join(str(v) for v in row) + "\n")
    return str(path)


def good_rows(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).round(4)
    labels = (np.arange(n) % 20 == 0).astype(int)
    x[labels == 1] += 4
    return [list(r) + [lab] for r, lab in zip(x, labels, strict=False)]


@pytest.fixture(scope="module")
def cli_processes(tmp_path_factory):
    """The two cli.train processes of this file, started together.

    "trained" trains the default variant (the flow reference, with a short fit) on a small
    labelled CSV from a flagfile, for 10 epochs at the default verbosity (the progress
    line, in a log: stderr is a pipe); "missing" names a file that does not exist. Returns
    ({name: CompletedProcess}, folder).
    """
    folder = tmp_path_factory.mktemp("cli")
    csv = write_csv(folder / "data.csv", good_rows())
    flagfile = folder / "tiny.flags"
    tiny_default = TINY_FLAGS.replace("--reference=gmm\n", "--reference_flow_steps=50\n")
    flagfile.write_text(tiny_default + f"--data={csv}\n--label_column=label\n--normal_label=0\n"
                        f"--workdir={folder / 'work'}\n")
    procs = {"trained": start_module("cli.train", f"--flagfile={flagfile}", "--epochs=10",
                                     "--verbose=1"),
             "missing": start_module("cli.train", f"--data={folder / 'missing.csv'}",
                                     f"--workdir={folder / 'w'}")}
    return {name: finish(proc) for name, proc in procs.items()}, folder


@pytest.fixture(scope="module")
def trained_workdir(cli_processes):
    result = cli_processes[0]["trained"]
    assert result.returncode == 0, result.stderr[-2000:]
    return cli_processes[1] / "work", result


def test_cli_writes_config_model_metrics_and_logs(trained_workdir):
    workdir, result = trained_workdir
    assert {"config.json", "model.keras", "metrics.json", "logs"} <= set(os.listdir(workdir))
    config = json.loads((workdir / "config.json").read_text())
    assert config["epochs"] == 10 and config["model"]["num_modes"] == 3
    assert config["model"]["d_hidden"] == [16, 16] and config["model"]["reference"] == "flow"
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["n_train"] == 152  # 80% of the 190 normal rows
    assert set(metrics["eval"]) == {"quantile"}  # "half" is the paper variant's rule only
    # Anomalies 4 standard deviations off in every column: the default variant ranks them
    # all above the held-out normal rows.
    assert metrics["eval"]["quantile"]["auroc"] > 0.95
    assert "held-out (quantile rule)" in result.stdout
    assert not [name for name in os.listdir(workdir) if name.startswith(".staging")]


def test_progress_is_a_few_lines_and_no_keras_bar(trained_workdir):
    _, result = trained_workdir
    progress = [line for line in result.stderr.splitlines()
                if re.match(r"\d+/10 epochs, d_loss ", line)]
    assert 1 <= len(progress) <= 10 and progress[-1].startswith("10/10 epochs")
    for output in (result.stdout, result.stderr):
        assert "━" not in output and "Epoch 1/" not in output and "\r" not in output
        assert "step" not in output  # Keras's bar: "4/4 ━━━━ 0s 3ms/step - d_loss: ..."


def test_held_out_pictures_are_pngs_in_the_workdir(trained_workdir):
    pytest.importorskip("matplotlib", reason="the plots extra is not installed")
    workdir, result = trained_workdir
    names = {"scores.png", "roc.png", "pr.png", "explanations.png"}
    assert set(os.listdir(workdir / "figures")) == names
    for name in names:
        data = (workdir / "figures" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, name
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert sorted(metrics["figures"]) == sorted(f"figures/{n}" for n in names)
    assert (f"pictures in {workdir}/figures/: scores.png, roc.png, pr.png, explanations.png"
            in result.stdout)


def test_without_matplotlib_training_succeeds_and_says_how_to_get_pictures(
        tmp_path, capsys, monkeypatch):
    # An entry of None in sys.modules makes its import fail, as if it were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "mmocgan_tf.evaluation.plots", None)
    assert not train_command.plots_available()
    workdir, data = tmp_path / "work", write_csv(tmp_path / "d.csv", good_rows())
    code, err = run_in_process(capsys, *TINY_ARGS, f"--data={data}", "--label_column=label",
                               f"--workdir={workdir}")
    assert code == 0
    assert err.strip().splitlines() == [train_command.NO_PLOTS]
    assert "pip install 'mmocgan-tf[plots]'" in train_command.NO_PLOTS
    assert "figures" not in os.listdir(workdir) and (workdir / "model.keras").exists()


def test_saved_model_loads_and_scores(trained_workdir):
    import keras

    model = keras.saving.load_model(str(trained_workdir[0] / "model.keras"))
    out = model.predict(np.zeros((4, 3), "float32"), verbose=0)
    assert out["score"].shape == (4,) and np.all(np.isfinite(out["score"]))


def run_in_process(capsys, *args):
    """Runs cli.train's main with these flags; returns (exit code, stderr)."""
    flags.FLAGS.unparse_flags()
    argv = flags.FLAGS(["cli.train", *args])
    code = train_cli.main(argv)
    return code, capsys.readouterr().err


BAD_INPUTS = {
    "missing file": (lambda d: str(d / "nope.csv"), "nope.csv"),
    "non-numeric cell": (lambda d: write_csv(d / "t.csv", good_rows()[:-1] + [[1, "x7", 2, 0]]),
                         "x7"),
    "nan cell": (lambda d: write_csv(d / "t.csv", good_rows()[:-1] + [[1, "nan", 2, 0]]),
                 "column 'b', row 200 (line 201): NaN value"),
    "no rows": (lambda d: write_csv(d / "t.csv", []), "no data rows"),
    "fewer rows than a batch": (lambda d: write_csv(d / "t.csv", good_rows(30)), "batch"),
    "no normal rows": (lambda d: write_csv(d / "t.csv", [r[:3] + [1] for r in good_rows()]),
                       "normal"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_leaves_the_workdir_alone(case, tmp_path, capsys,
                                                                 trained_workdir):
    make_data, expected = BAD_INPUTS[case]
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "model.keras").write_bytes(b"a good model")
    code, err = run_in_process(capsys, f"--data={make_data(tmp_path)}", "--label_column=label",
                               f"--workdir={workdir}", "--batch_size=50", "--verbose=0")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert os.listdir(workdir) == ["model.keras"]
    assert (workdir / "model.keras").read_bytes() == b"a good model"


def test_bad_config_value_is_one_line(tmp_path, capsys):
    code, err = run_in_process(capsys, "--data=synthetic:production_line", "--prior=gaussian",
                               f"--workdir={tmp_path}")
    assert code == 2 and "prior='gaussian'" in err and len(err.strip().splitlines()) == 1


def test_cli_process_prints_no_traceback_on_bad_input(cli_processes):
    result, folder = cli_processes[0]["missing"], cli_processes[1]
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (folder / "w").exists()
