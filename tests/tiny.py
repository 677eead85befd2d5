"""Shared by the tests: the repository root, tiny model configs, synthetic rows, CLI runs.

The data generators are seeded functions rather than fixtures, so module-scoped fixtures
and parametrisations can use them too.
"""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The networks of every tiny in-process GAN (MMOCGAN and the GAN baselines): a fit takes
# seconds on 2 cores.
TINY_NETWORKS = dict(z_dim=4, d_hidden=(16, 16), g_hidden=(16,))
# Tiny models take the mixture reference: the default flow's fit alone costs several times
# a tiny model's, and only its own tests (test_flow_reference.py and the flow cases
# elsewhere) need it.
TINY_MODEL = dict(num_modes=3, reference="gmm", **TINY_NETWORKS)

# The model of the shared fitted model and its export (conftest.py).
TINY_EXPORT_MODEL = dict(num_modes=2, z_dim=4, d_hidden=(8, 8), g_hidden=(8,), target_epochs=1,
                         reference="gmm")


def tiny_rows(n, seed=0):
    """Raw rows of three features with scales 1, 10 and 100 around 5."""
    return (np.random.default_rng(seed).normal(size=(n, 3)) * [1, 10, 100] + 5).astype("float32")


# Blob centres at least 2 apart in 4 features: the same clusters for every seed.
FIXED_CENTRES = np.array([[2, 0, 0, 0], [-2, 2, 0, 0], [0, -2, 2, 0]], np.float32)


def blobs(n=300, d=4, seed=0, spread=None, noise=0.3, standardize=False):
    """Normal rows in three Gaussian blobs [n, d] float32, the baselines' test data.

    Args:
      n: rows.
      d: features (4 with the fixed centres).
      seed: the generator's seed; the same arguments give the same rows.
      spread: std of random centres, drawn first from the generator; None: FIXED_CENTRES.
      noise: std of the rows around their centre.
      standardize: scale every column to mean 0 and std 1, as the protocol does.
    """
    if spread is None and d != FIXED_CENTRES.shape[1]:
        raise ValueError(f"the fixed centres have {FIXED_CENTRES.shape[1]} features, not {d}")
    rng = np.random.default_rng(seed)
    x = _blob_rows(rng, n, d, spread, noise)
    if standardize:
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    return x.astype(np.float32)


def labelled_blobs(n_normal=300, n_anomaly=20, d=4, seed=0):
    """(x [n, d] float32, y [n] int32, 1 = anomaly) for the protocol's tests, rows shuffled.

    The normal rows are blobs(spread=4, noise=0.5); the anomalies lie around 12 in every
    feature, far from all of them, so any sensible detector ranks them first.
    """
    rng = np.random.default_rng(seed)
    normal = _blob_rows(rng, n_normal, d, 4.0, 0.5)
    anomalies = rng.normal(0, 1, (n_anomaly, d)) + 12
    x = np.concatenate([normal, anomalies]).astype(np.float32)
    y = np.r_[np.zeros(n_normal, np.int32), np.ones(n_anomaly, np.int32)]
    order = rng.permutation(len(y))
    return x[order], y[order]


def far_rows(n=30, d=4, seed=1, radius=8.0):
    """n rows [n, d] float32 at `radius` from the origin in random directions: far from blobs."""
    directions = np.random.default_rng(seed).normal(size=(n, d))
    return (radius * directions / np.linalg.norm(directions, axis=1, keepdims=True)).astype(
        "float32")


def _blob_rows(rng, n, d, spread, noise):
    centres = FIXED_CENTRES if spread is None else rng.normal(0, spread, (3, d))
    return centres[rng.integers(0, 3, n)] + rng.normal(0, noise, (n, centres.shape[1]))


# One flag per line, for flagfiles; seconds per fit on 2 cores.
TINY_FLAGS = """--epochs=2
--target_epochs=2
--batch_size=50
--num_modes=3
--reference=gmm
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


def start_module(module, *args, env=None, **popen_options):
    """Starts `python -m module args` in the repository root with its output piped.

    Tests start the processes they need together and finish them afterwards: each spends
    most of its time importing TensorFlow, so they share the cores instead of queueing.
    """
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **popen_options)


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
