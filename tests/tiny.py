"""Shared by the tests that run the CLIs: the repository root and a tiny training config."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The networks of every tiny in-process model: a fit takes seconds on 2 cores.
TINY_MODEL = dict(num_modes=3, z_dim=4, d_hidden=(16, 16), g_hidden=(16,))

# The model of the shared fitted model and its export (conftest.py).
TINY_EXPORT_MODEL = dict(num_modes=2, z_dim=4, d_hidden=(8, 8), g_hidden=(8,), target_epochs=1)


def tiny_rows(n, seed=0):
    """Raw rows of three features with scales 1, 10 and 100 around 5."""
    return (np.random.default_rng(seed).normal(size=(n, 3)) * [1, 10, 100] + 5).astype("float32")


# One flag per line, for flagfiles; seconds per fit on 2 cores.
TINY_FLAGS = """--epochs=2
--target_epochs=2
--batch_size=50
--num_modes=3
--z_dim=4
--d_hidden=16,16
--g_hidden=16
--steps_per_execution=4
--verbose=0
"""
TINY_ARGS = TINY_FLAGS.split()


def expected_flagged(n, share):
    """Rows strictly beyond np.quantile's linear interpolation at `share` of n distinct values.

    A threshold at the q-quantile of n training scores flags exactly this many of them.
    """
    return int(np.floor((n - 1) * share)) + 1


def start_module(module, *args, env=None):
    """Starts `python -m module args` in the repository root with its output piped.

    Tests start the processes they need together and finish them afterwards: each spends
    most of its time importing TensorFlow, so they share the cores instead of queueing.
    """
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=300):
    """Waits for a started process, killing it past `timeout`; a CompletedProcess."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_module(module, *args, env=None, timeout=300):
    """Runs `python -m module args` in the repository root; a CompletedProcess."""
    return finish(start_module(module, *args, env=env), timeout)
