"""The progress line: rewritten in place on a terminal, a few whole lines in a log."""

import io
import re

import numpy as np
from tiny import tiny_rows

from mmocgan_tf.progress import Progress, duration


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    """What an interactive stderr looks like to the code that writes to it."""

    def isatty(self):
        return True


def run(progress, clock, total, seconds_per_unit, **fields):
    for done in range(1, total + 1):
        clock.now += seconds_per_unit
        progress.update(done, **fields)
    progress.close()


def test_a_log_gets_a_line_at_each_tenth_and_nothing_else():
    log, clock = io.StringIO(), Clock()
    progress = Progress(100, "epochs", stream=log, clock=clock)
    progress.update(0)
    run(progress, clock, 100, 1.0, d_loss=0.5, g_loss=np.float32(-1.25))
    lines = log.getvalue().splitlines()
    assert [line.split(" ")[0] for line in lines] == [f"{k}/100" for k in range(10, 101, 10)]
    assert lines[0] == "10/100 epochs, d_loss 0.5, g_loss -1.25, 10s elapsed, ~1m30s left"
    assert lines[-1] == "100/100 epochs, d_loss 0.5, g_loss -1.25, 1m40s elapsed"
    assert "\r" not in log.getvalue()


def test_a_log_line_at_most_once_per_unit_and_once_a_minute_between_tenths():
    log, clock = io.StringIO(), Clock()
    run(Progress(3, "epochs", stream=log, clock=clock), clock, 3, 500.0)  # slow units
    assert len(log.getvalue().splitlines()) == 3
    log, clock = io.StringIO(), Clock()
    run(Progress(None, "rows", stream=log, clock=clock), clock, 150, 1.0)  # total unknown
    assert log.getvalue().splitlines() == ["60 rows, 1m00s elapsed", "120 rows, 2m00s elapsed"]


def test_a_terminal_gets_one_line_rewritten_in_place():
    screen, clock = Terminal(), Clock()
    progress = Progress(200, "epochs", stream=screen, clock=clock)
    for done in range(1, 201):
        clock.now += 0.01
        progress.update(done)
        assert "\n" not in screen.getvalue()
    progress.close()
    text = screen.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    frames = text[:-1].split("\r")[1:]
    assert 15 <= len(frames) <= 25  # redrawn at most ten times a second, not 200 times
    assert frames[-1].startswith("200/200 epochs, 2s elapsed")


def test_a_terminal_line_wipes_a_longer_one_and_close_shows_the_last_state():
    screen, clock = Terminal(), Clock()
    progress = Progress(None, "rows", stream=screen, clock=clock)
    progress.update(5, note="a long note")
    progress.update(6)  # too soon to draw: held back until close
    progress.close()
    first, second = screen.getvalue().rstrip("\n").split("\r")[1:]
    assert second.startswith("6 rows, 0s elapsed") and len(second) == len(first)


def test_disabled_writes_nothing_but_still_tells_the_time_left():
    screen, clock = Terminal(), Clock()
    progress = Progress(4, "folds", stream=screen, enabled=False, clock=clock)
    clock.now = 100.0  # the first unit holds compilation: the rate leaves it out
    progress.update(1)
    assert progress.tag(1) == "[1/4, ~5m00s left]"
    clock.now = 110.0
    progress.update(2)
    assert progress.tag(2) == "[2/4, ~20s left]"
    clock.now = 120.0
    progress.update(4)
    progress.close()
    assert progress.tag(4) == "[4/4]" and screen.getvalue() == ""


def test_durations_read_easily():
    assert [duration(s) for s in (0, 42.4, 185, 3720, -3)] == ["0s", "42s", "3m05s", "1h02m",
                                                                "0s"]


def test_the_keras_callback_shows_the_two_main_losses_per_epoch():
    from mmocgan_tf.training.progress import EpochProgress

    screen, clock = Terminal(), Clock()
    callback = EpochProgress(stream=screen, clock=clock)
    callback.set_params({"epochs": 2})
    callback.on_train_begin()
    for epoch in range(2):
        clock.now += 1.0
        callback.on_epoch_end(epoch, {"d_loss": 1.5, "g_loss": -0.25, "d_entropy": 9.0})
    callback.on_train_end()
    callback.close()  # again, as fit.py does after a fit: no second line end
    text = screen.getvalue()
    frames = text.split("\r")
    assert text.count("\n") == 1 and text.endswith("\n")
    assert frames[1].startswith("0/2 epochs")
    assert frames[-1].rstrip() == "2/2 epochs, d_loss 1.5, g_loss -0.25, 2s elapsed"


def test_score_file_reports_the_rows_after_every_chunk(tiny_export, tmp_path):
    from mmocgan_tf.deploy import scoring

    rows = tmp_path / "rows.npy"
    np.save(rows, tiny_rows(45))
    seen = []
    total = scoring.score_file(tiny_export, str(rows), str(tmp_path / "out.csv"),
                               chunk_rows=20, on_chunk=seen.append)
    assert total == 45 and seen == [20, 40, 45]


def test_lines_have_no_control_characters_but_the_carriage_return():
    screen, clock = Terminal(), Clock()
    run(Progress(3, "epochs", stream=screen, clock=clock), clock, 3, 1.0, loss=1.0)
    assert not re.search(r"[\x00-\x09\x0b\x0c\x0e-\x1f]", screen.getvalue())
