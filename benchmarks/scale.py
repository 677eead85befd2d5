"""Scale run (a benchmark, not a test): train through cli.train on a large table and report
samples/s and the peak memory of the training process.

    python benchmarks/scale.py --rows=5000000 --csv=/tmp/big.csv      # streamed CSV
    python benchmarks/scale.py --data=PATH/10_cover.npz --nostreaming   # in memory

With --csv, a seeded CSV of --rows rows (a mixture of Gaussian modes, --features columns) is
written first in chunks, unless the file exists. Training runs `python -m cli.train` as a
child process; its peak resident memory comes from the OS (getrusage of the children).
Running two sizes shows whether memory grows with the file: with --streaming it must not.
One `name: value` per line.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("csv", None, "CSV to stream (written first if missing).")
flags.DEFINE_string("data", None, "Any cli.train data spec instead of --csv.")
flags.DEFINE_integer("rows", 5_000_000, "Rows of the generated CSV.")
flags.DEFINE_integer("features", 10, "Columns of the generated CSV.")
flags.DEFINE_boolean("streaming", True, "Stream the data (cli.train --streaming).")
flags.DEFINE_integer("epochs", 1, "GAN epochs.")
flags.DEFINE_integer("target_epochs", 1, "Target-network epochs.")
flags.DEFINE_integer("batch_size", 1000, "Minibatch size.")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_csv(path, rows, features, chunk=500_000, seed=0):
    """Rows from 5 Gaussian modes, written chunk by chunk (bounded memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(5, features))
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        handle.write(",".join(f"f{i}" for i in range(features)) + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = centres[rng.integers(0, 5, n)] + rng.normal(0, 1, (n, features))
            np.savetxt(handle, x, fmt="%.5f", delimiter=",")
    os.replace(tmp, path)


def main(argv):
    del argv
    data = FLAGS.data or FLAGS.csv
    if FLAGS.csv and not os.path.exists(FLAGS.csv):
        start = time.perf_counter()
        write_csv(FLAGS.csv, FLAGS.rows, FLAGS.features)
        print(f"csv_written_s: {time.perf_counter() - start:.1f}")
    print(f"data: {data}")
    print(f"file_mb: {os.path.getsize(data) / 2**20:.0f}")
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "cli.train", f"--data={data}", f"--workdir={workdir}/run",
                   f"--epochs={FLAGS.epochs}", f"--target_epochs={FLAGS.target_epochs}",
                   f"--batch_size={FLAGS.batch_size}", "--verbose=0",
                   f"--streaming={str(FLAGS.streaming).lower()}"]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode:
            print(result.stderr.strip().splitlines()[-1])
            return 1
        with open(os.path.join(workdir, "run", "metrics.json")) as handle:
            metrics = json.load(handle)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    rows = metrics["n_train"]
    passes = FLAGS.epochs + FLAGS.target_epochs
    print(f"streaming: {FLAGS.streaming}")
    print(f"train_rows: {rows}")
    print(f"batch_size: {FLAGS.batch_size}")
    print(f"epochs: {FLAGS.epochs} target_epochs: {FLAGS.target_epochs}")
    print(f"command_wall_s: {wall:.1f}")
    print(f"fit_s: {metrics['fit_seconds']:.1f}")
    print(f"training_samples_per_s: {rows * passes / metrics['fit_seconds']:.0f}")
    print(f"peak_rss_mb: {peak_mb:.0f}")
    return 0


if __name__ == "__main__":
    app.run(main)
