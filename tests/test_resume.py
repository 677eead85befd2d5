"""Resuming a killed training run from its last completed epoch (training/resume.py).

The library tests interrupt a fit in-process and continue it in a new model; the CLI tests
kill `cli.train` (SIGKILL, SIGTERM) and start the same command again.
"""

import json
import os
import shutil
import signal
import time

import keras
import numpy as np
import pytest
from absl import flags
from test_cli_train import good_rows, write_csv
from tiny import TINY_ARGS, TINY_MODEL, finish, start_module, tiny_rows

from cli import train as train_cli
from mmocgan_tf.model.mmocgan import MMOCGAN
from mmocgan_tf.training import resume

ROWS = tiny_rows(230)  # 5 batches of 50, the last one partial


def make_model():
    model = MMOCGAN(num_features=3, target_epochs=1, **TINY_MODEL)
    model.compile(steps_per_execution=4)
    return model


class StopAt(keras.callbacks.Callback):
    """Interrupts the fit as `epoch` begins, as a kill would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def interrupted_then_resumed(folder, data, epochs=6, stop=3, **kwargs):
    """A fit stopped as epoch `stop` begins, then resumed in a new model (returned).

    data() gives the rows, or a new dataset each time (a new process builds its own).
    """
    with pytest.raises(KeyboardInterrupt):
        resume.fit(make_model(), data(), epochs, folder, verbose=0, callbacks=[StopAt(stop)],
                   **{k: v() for k, v in kwargs.items()})
    assert resume.completed_epochs(folder) == stop
    model = make_model()
    model.prepare = None  # a restored model must not fit its reference again
    history, resumed_from = resume.fit(model, data(), epochs, folder, verbose=0,
                                       **{k: v() for k, v in kwargs.items()})
    assert resumed_from == stop and len(history.history["d_loss"]) == epochs - stop
    return model


def largest_difference(a, b):
    return max(float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in
               zip(a.weights, b.weights, strict=True))


def test_a_resumed_fit_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    whole = make_model()
    resume.fit(whole, ROWS, 6, tmp_path / "whole", batch_size=50, verbose=0)
    plain = make_model()
    plain.fit(ROWS, epochs=6, batch_size=50, verbose=0)
    assert largest_difference(whole, plain) == 0.0  # resume.fit is MMOCGAN.fit, backed up
    resumed = interrupted_then_resumed(tmp_path / "cut", lambda: ROWS,
                                       batch_size=lambda: 50)
    # Weights, optimizer slots and step counts, the noise stream, standardisation,
    # reference and threshold: all of it.
    assert largest_difference(whole, resumed) == 0.0


def test_a_resumed_fit_on_a_dataset_of_unknown_length_is_exact_too(tmp_path):
    import tensorflow as tf

    def batches():  # filter hides the length from Keras
        dataset = tf.data.Dataset.from_tensor_slices(ROWS).shuffle(230, seed=3).batch(50)
        return dataset.filter(lambda batch: True)

    whole = make_model()
    resume.fit(whole, batches(), 6, tmp_path / "whole", prepare_x=batches(), verbose=0)
    resumed = interrupted_then_resumed(tmp_path / "cut", batches, prepare_x=batches)
    assert largest_difference(whole, resumed) == 0.0


def test_backup_and_restore_with_plain_model_fit_continues_from_the_epoch(tmp_path):
    """keras.callbacks.BackupAndRestore alone: the documented fit(callbacks=...) use."""
    backup = str(tmp_path / "backup")
    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(ROWS, epochs=5, batch_size=50, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup), StopAt(2)])
    state = model.seed_generator.state.numpy()
    again = make_model()
    history = again.fit(ROWS, epochs=5, batch_size=50, verbose=0,
                        callbacks=[keras.callbacks.BackupAndRestore(backup)])
    assert len(history.history["d_loss"]) == 3
    assert int(again.d_optimizer.iterations.numpy()) == 5 * 5
    # The noise stream went on from where the interrupted fit left it.
    assert int(again.seed_generator.state.numpy()[1]) == int(state[1]) + 3 * 5
    assert not os.path.exists(backup)  # deleted by Keras after a completed fit


def test_the_noise_stream_is_saved_with_the_model(tmp_path):
    model = make_model()
    model.fit(ROWS, epochs=1, batch_size=50, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.seed_generator.state.numpy(),
                                  model.seed_generator.state.numpy())


# === cli.train, killed and started again ===

EPOCHS = 40


def backup_epochs(workdir):
    return resume.completed_epochs(os.path.join(workdir, ".resume"))


def wait_for(condition, process, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition(), "the run ended or timed out before it got there"


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """cli.train runs of one command, started together where they can be.

      whole    uninterrupted
      killed   SIGKILLed once its first epoch is backed up, then started again
      changed  a copy of the killed run's workdir, before the rerun
      termed   SIGTERMed while training
    Returns ({name: CompletedProcess}, folder, args).
    """
    folder = tmp_path_factory.mktemp("resume")
    csv = write_csv(folder / "data.csv", good_rows())
    args = (f"--data={csv}", "--label_column=label", "--noplots", *TINY_ARGS,
            f"--epochs={EPOCHS}")
    procs = {name: start_module("cli.train", *args, f"--workdir={folder / name}")
             for name in ("whole", "killed", "termed")}
    killed = procs.pop("killed")
    wait_for(lambda: backup_epochs(folder / "killed") >= 1, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = set(os.listdir(folder / "killed"))
    assert ".resume" in left and [n for n in left if n.startswith(".staging-")], left
    shutil.copytree(folder / "killed", folder / "changed")
    (folder / "killed" / "notes").mkdir()  # not the run's: stays
    termed = procs.pop("termed")
    wait_for(lambda: (folder / "termed").exists(), termed)
    termed.send_signal(signal.SIGTERM)
    done = {"termed": finish(termed), "whole": finish(procs["whole"])}
    done["killed"] = finish(start_module("cli.train", *args,
                                         f"--workdir={folder / 'killed'}"))
    return done, folder, args


def test_a_killed_run_started_again_resumes_and_ends_like_an_uninterrupted_one(cli_runs):
    done, folder, _ = cli_runs
    for name in ("whole", "killed"):
        assert done[name].returncode == 0, done[name].stderr[-2000:]
    whole, resumed = (json.loads((folder / name / "metrics.json").read_text())
                      for name in ("whole", "killed"))
    assert whole["resumed_from_epoch"] == 0 and whole["epochs_run"] == EPOCHS
    assert 0 < resumed["resumed_from_epoch"] < EPOCHS
    assert resumed["epochs_run"] == EPOCHS - resumed["resumed_from_epoch"]
    # The same seed: the same run, to float32 round-off (in fact bit for bit here).
    assert resumed["final_losses"] == pytest.approx(whole["final_losses"], rel=1e-5, abs=1e-6)
    assert resumed["normality_threshold"] == pytest.approx(whole["normality_threshold"],
                                                           rel=1e-5)
    assert resumed["eval"] == whole["eval"]


def test_after_publishing_no_backup_or_stale_staging_is_left(cli_runs):
    _, folder, _ = cli_runs
    assert set(os.listdir(folder / "killed")) == {"config.json", "model.keras", "metrics.json",
                                                 "logs", "notes"}


def test_sigterm_exits_130_and_leaves_a_backup_or_nothing(cli_runs):
    done, folder, _ = cli_runs
    result = done["termed"]
    assert result.returncode == 130, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == "error: interrupted"
    workdir = folder / "termed"
    # Before its first epoch nothing is worth keeping; after it, the backup is.
    if workdir.exists():
        assert os.listdir(workdir) == [".resume"] and backup_epochs(workdir) >= 1


def test_other_settings_than_the_backups_are_refused_with_one_line(cli_runs, capsys):
    _, folder, args = cli_runs
    workdir = folder / "changed"
    before = sorted(os.listdir(workdir / ".resume" / "backup"))
    flags.FLAGS.unparse_flags()
    code = train_cli.main(flags.FLAGS(["cli.train", *args, "--epochs=41", "--d_hidden=8",
                                       f"--workdir={workdir}"]))
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "d_hidden, epochs" in lines[0] and f"remove {workdir / '.resume'}" in lines[0]
    assert sorted(os.listdir(workdir / ".resume" / "backup")) == before
