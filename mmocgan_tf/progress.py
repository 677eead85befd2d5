"""One progress line for long jobs: rewritten in place on a terminal, sparse in a log.

A terminal gets a single line redrawn with a carriage return (at most 10 times a second);
a log file or CI output gets a whole line only at each tenth of the total and otherwise
at most once a minute, so a long run leaves a handful of lines instead of thousands.
Nothing here knows about Keras or the commands: training, scoring and the evaluation
folds all drive the same class.
"""

import sys
import time

REDRAW_S = 0.1  # terminal: the fastest redraw rate worth the output
LOG_EVERY_S = 60.0  # log: the longest silence between lines
LOG_STEPS = 10  # log: a line at each tenth of the total


def duration(seconds):
    """A short duration for people: 42s, 3m05s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """The progress of `total` units of work (None when the total is not known).

    Call update(done, **fields) after each unit and close() at the end; fields (losses,
    say) are shown after the count. With enabled=False nothing is ever written, and the
    instance still keeps time for tag(), for a command that prints lines of its own.
    """

    def __init__(self, total, unit, stream=None, enabled=True, clock=time.monotonic):
        self.total = total
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.live = enabled and _isatty(self.stream)
        self._clock = clock
        self._start = clock()
        self._first = None  # (time, done) of the first unit: the rate leaves out start-up
        self._shown = None  # (time, text) of the last line written
        self._pending = None  # a terminal line held back by the redraw limit
        self._width = 0
        self._step = 0  # log: the tenths of the total already reported

    def update(self, done, **fields):
        """Reports that `done` units are finished; writes a line if one is due."""
        now = self._clock()
        if self._first is None and done > 0:
            self._first = (now, done)
        if not self.enabled:
            return
        text = self.line(done, now, **fields)
        if self.live:
            finished = self.total is not None and done >= self.total
            if finished or self._shown is None or now - self._shown[0] >= REDRAW_S:
                self._draw(now, text)
            else:
                self._pending = text
        elif self._log_due(done, now):
            self._write(now, text + "\n")

    def close(self):
        """Ends the live line (its last state stays on screen); writes nothing in a log."""
        if self.live and (self._shown or self._pending):
            if self._pending:
                self._draw(self._clock(), self._pending)
            self.stream.write("\n")
            self.stream.flush()
        self._shown = self._pending = None

    def remaining(self, done, now=None):
        """Seconds left at the rate so far, or None while it cannot be told."""
        if self.total is None or done <= 0:
            return None
        now = self._clock() if now is None else now
        first_time, first_done = self._first or (now, done)
        if done > first_done:  # the first unit often holds compilation: leave it out
            rate = (now - first_time) / (done - first_done)
        else:
            rate = (now - self._start) / done
        return max(0.0, rate * (self.total - done))

    def tag(self, done):
        """`[done/total, ~T left]`, the prefix of a line that a command prints itself."""
        left = self.remaining(done)
        count = f"{done}/{self.total}" if self.total is not None else f"{done}"
        if left is None or done >= (self.total or 0):
            return f"[{count}]"
        return f"[{count}, ~{duration(left)} left]"

    def line(self, done, now=None, **fields):
        """The progress line: count, fields, time elapsed and time left."""
        now = self._clock() if now is None else now
        count = f"{done}/{self.total}" if self.total is not None else f"{done:,}"
        parts = [f"{count} {self.unit}"]
        parts += [f"{name} {_value(value)}" for name, value in fields.items()]
        timing = f"{duration(now - self._start)} elapsed"
        left = self.remaining(done, now)
        if left is not None and done < self.total:
            timing += f", ~{duration(left)} left"
        return ", ".join(parts + [timing])

    def _log_due(self, done, now):
        if self.total:
            step = min(LOG_STEPS, int(done * LOG_STEPS // self.total))
            if step > self._step:
                self._step = step
                return True
        last = self._shown[0] if self._shown else self._start
        return done > 0 and now - last >= LOG_EVERY_S

    def _draw(self, now, text):
        pad = " " * max(0, self._width - len(text))  # wipe what a longer line left
        self._width = len(text)
        self._pending = None
        self._write(now, "\r" + text + pad)

    def _write(self, now, text):
        self.stream.write(text)
        self.stream.flush()
        self._shown = (now, text)


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _value(value):
    if isinstance(value, float) or hasattr(value, "dtype"):
        return f"{float(value):.4g}"
    return str(value)
