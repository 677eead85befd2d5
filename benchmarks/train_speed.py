"""Training-speed benchmark of MMOCGAN (a benchmark, not a test).

Times the main GAN loop of `fit` (target network already prepared, tracing excluded), sets it
against an analytic FLOP count and this machine's measured matmul peak (in a process of its
own, with TensorFlow's default threads; the fits run with --intra_op_threads), optionally
times a whole paper-faithful fit including the target-network phase, and (--folds) compares
the paper's k-fold protocol run by `fit` with the same folds run by a plain hand-written loop.
One `name: value` per line; with --folds the last line is `ratio_vs_plain_loop`.

Fold comparison (--folds=k, --fold_epochs=E): k sequential fits, each on the (k-1)/k of the
rows outside one fold, both sides with target_epochs=0 (no target-network phase, only the
standardisation in prepare) and the same per-fold seed. Both times include building the
model, tracing and the input pipeline, not the data generation or the fold split:
  plain loop: fresh MMOCGAN, compile() only to attach the optimizers, prepare(x_fold), a fresh
    tf.function(model.train_step) called once per minibatch over a tf.data pipeline
    (shuffled each epoch, batched) for E epochs;
  trainer: the benchmark method cli.evaluate runs (baselines.mmocgan.MMOCGANMethod): one
    MMOCGAN compiled with steps_per_execution=... for all folds; each fold after the first
    calls reinit.reinitialize_mmocgan(model, seed) (fresh weights, optimizer state and
    noise, the traced train function kept; fold i gives the same model as a fresh one),
    then fits E passes grouped into Keras epochs of at least 64 steps, and sets the
    decision threshold at the end (one eager pass of D over x_fold).

FLOP model of one training step on a batch of N rows (MAC = one multiply-add = 2 FLOPs):
  M(net) = sum of in*out over a network's dense layers, per row:
    D = d*h1 + h1*h2 + h2*(1 + m)   (shared layers, real/fake head, Q head)
    T = d*h1 + h1*h2 + h2           (target network, same body, one logit)
    G = p*g1 + g1*d                 (p = prior.output_dim: z_dim + m for "cat", z_dim for "mix")
  D update: forward  N*(2*D + G)              (D on x and on x_hat, G makes x_hat)
            backward 2 * 2N*D                 (only D is differentiated)
  G update: forward  N*(2*D + T) + N^2*h2     (D on concat([x, x_hat]), T on x_hat, and the
                                               N x N pull-away cosine matmul; x_hat is reused
                                               from the D update)
            backward 2 * (forward + N*G)       (backward of a matmul ~ 2x its forward: dX, dW)
  FLOPs/step = 2 * (sum of the MACs above). Element-wise ops and Adam updates are ignored.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from itertools import pairwise  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mmocgan_tf import MMOCGAN  # noqa: E402
from mmocgan_tf.evaluation.baselines.mmocgan import MMOCGANMethod  # noqa: E402
from mmocgan_tf.training import distribute  # noqa: E402

flags.DEFINE_string("data", "synthetic", '"synthetic" or a path to an .npz holding X.')
flags.DEFINE_integer("rows", 4000, "Rows of the synthetic data.")
flags.DEFINE_integer("features", 50, "Columns of the synthetic data.")
flags.DEFINE_integer("num_modes", 10, "m, the number of latent modes.")
flags.DEFINE_enum("prior", "cat", ["cat", "mix"], "Latent prior.")
flags.DEFINE_integer("batch_size", 100, "Minibatch size.")
flags.DEFINE_integer("epochs", 20, "Epochs of the timed fit (and of the full fit).")
flags.DEFINE_integer("steps_per_execution", 16, "Training steps per compiled call.")
flags.DEFINE_integer("seed", 0, "Seeds data, weights and noise.")
flags.DEFINE_integer("target_epochs", 100, "Target-network epochs of the full fit.")
flags.DEFINE_boolean("time_full_fit", True, "Also time a whole fit incl. the target phase.")
flags.DEFINE_integer("folds", 5, "Folds of the plain-loop vs trainer comparison (0: skip it).")
flags.DEFINE_integer("fold_epochs", 10, "GAN epochs of each fold's fit in the comparison.")
flags.DEFINE_integer("intra_op_threads", 1, "Threads per TensorFlow op, as cli.train's flag "
                     "(0: TensorFlow's choice). The peak is measured with TensorFlow's own.")
flags.DEFINE_boolean("peak_only", False, "Print the matmul peak alone (the peak's process).")
FLAGS = flags.FLAGS


def load_data():
    if FLAGS.data != "synthetic":
        return np.load(FLAGS.data)["X"].astype(np.float32)
    rng = np.random.default_rng(FLAGS.seed)
    centres = rng.normal(0.0, 3.0, (FLAGS.num_modes, FLAGS.features))
    modes = rng.integers(FLAGS.num_modes, size=FLAGS.rows)
    return (centres[modes] + rng.normal(size=(FLAGS.rows, FLAGS.features))).astype(np.float32)


def mlp_macs(widths):
    return sum(a * b for a, b in pairwise(widths))


def step_flops(model, n):
    """FLOPs of one training step on n rows (formula in the module docstring)."""
    cfg, d, m = model.config, model.num_features, model.config.num_modes
    body = mlp_macs([d, *cfg.d_hidden])
    h = cfg.d_hidden[-1]
    disc, target = body + h * (1 + m), body + h
    gen = mlp_macs([model.prior.output_dim, *cfg.g_hidden, d])
    d_update = n * (2 * disc + gen) + 2 * (2 * n * disc)
    g_update = 3 * (n * (2 * disc + target) + n * n * h) + 2 * n * gen
    return 2 * (d_update + g_update)


def build(num_features, target_epochs, seed=None, steps_per_execution=None):
    """The paper-configuration model the FLOP model describes, seeded and compiled."""
    seed = FLAGS.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    model = MMOCGAN(num_features=num_features, num_modes=FLAGS.num_modes, prior=FLAGS.prior,
                    reference="none", target_epochs=target_epochs, seed=seed)
    model.compile(steps_per_execution=steps_per_execution or FLAGS.steps_per_execution)
    return model


class LoopTimer(keras.callbacks.Callback):
    """Wall time of Keras's epoch loop alone (excludes data setup, prepare, set_threshold)."""

    def on_train_begin(self, logs=None):
        self.begin = time.perf_counter()

    def on_train_end(self, logs=None):
        self.end = time.perf_counter()


def fold_splits(rows, folds, seed):
    """Training-row indices of each of `folds` folds (all rows outside the fold)."""
    parts = np.array_split(np.random.default_rng(seed).permutation(rows), folds)
    return [np.sort(np.concatenate(parts[:i] + parts[i + 1:])) for i in range(folds)]


def plain_loop_fold(x, seed, epochs, bs):
    """One fold as a user would write it without `fit`: one train_step call per batch."""
    model = build(x.shape[1], 0, seed, steps_per_execution=1)  # compile: optimizers only
    model.prepare(x)  # target_epochs=0: learns the standardisation, T stays untrained
    step = tf.function(model.train_step)
    data = (tf.data.Dataset.from_tensor_slices(x)
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(bs))
    logs = None
    for _ in range(epochs):
        for batch in data:
            logs = step(batch)
    return float(logs["g_loss"])


def trainer_folds(fold_data, epochs, bs):
    """All folds as cli.evaluate runs them: one benchmark method, one model, no retracing."""
    method = MMOCGANMethod(epochs=epochs, batch_size=bs,
                           steps_per_execution=FLAGS.steps_per_execution, prior=FLAGS.prior,
                           num_modes=FLAGS.num_modes, reference="none", target_epochs=0)
    for i, x in enumerate(fold_data):
        method.fit(x, seed=FLAGS.seed + i)


def plain_loop_folds(fold_data, epochs, bs):
    for i, x in enumerate(fold_data):
        plain_loop_fold(x, FLAGS.seed + i, epochs, bs)


def timed(run, *args):
    start = time.perf_counter()
    run(*args)
    return time.perf_counter() - start


def matmul_gflops(n, k, reps):
    """GFLOP/s of float32 [n, k] @ [k, k] chained reps times in one graph call (best of 3)."""
    a = tf.random.normal([n, k], seed=1)
    b = tf.random.normal([k, k], seed=2) / np.sqrt(k)

    @tf.function
    def chain(x):
        for _ in tf.range(reps):
            x = tf.matmul(x, b)
        return x

    chain(a).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        chain(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n * k * k * reps / best / 1e9


def machine_peak():
    """The float32 matmul peak with TensorFlow's own threads, in a process of its own: the
    machine's peak, whatever --intra_op_threads this process runs with."""
    done = subprocess.run([sys.executable, __file__, "--peak_only"], capture_output=True,
                          text=True, check=True)
    return float(done.stdout.split()[-1])


def main(argv):
    del argv
    if FLAGS.peak_only:
        print(matmul_gflops(1024, 1024, 20))
        return
    distribute.set_intra_op_threads(FLAGS.intra_op_threads)
    x = load_data()
    rows, bs = len(x), FLAGS.batch_size
    print(f"data: {FLAGS.data} rows={rows} features={x.shape[1]}")
    print(f"cpus: {os.cpu_count()}")

    # Main loop only: T is left untrained (target_epochs=0); the warm-up fit prepares the
    # model and traces the train function, which the timed fit then reuses.
    model = build(x.shape[1], target_epochs=0)
    traces = [0]
    train_step = model.train_step

    def counted_step(data):  # Python runs only while tracing, so this counts traces
        traces[0] += 1
        return train_step(data)

    model.train_step = counted_step
    start = time.perf_counter()
    model.fit(x, epochs=1, batch_size=bs, verbose=0)
    print(f"warmup_fit_s: {time.perf_counter() - start:.3f}")
    print(f"traces_in_warmup: {traces[0]}")
    warm_traces, train_function = traces[0], model.train_function

    timer = LoopTimer()
    start = time.perf_counter()
    model.fit(x, epochs=FLAGS.epochs, batch_size=bs, verbose=0, callbacks=[timer])
    fit_wall = time.perf_counter() - start
    loop_wall = timer.end - timer.begin
    retraces = traces[0] - warm_traces
    print(f"retraces_in_timed_fit: {retraces}")
    print(f"train_function_reused: {model.train_function is train_function}")
    if retraces:
        print("warning: the timed fit retraced; its time includes tracing")

    steps_per_epoch = -(-rows // bs)
    steps = FLAGS.epochs * steps_per_epoch
    flops = step_flops(model, bs)
    epoch_flops = (rows // bs) * flops + (step_flops(model, rows % bs) if rows % bs else 0)
    achieved = FLAGS.epochs * epoch_flops / loop_wall / 1e9
    print(f"epochs: {FLAGS.epochs}")
    print(f"steps: {steps}")
    print(f"fit_wall_s: {fit_wall:.3f}")
    print(f"loop_wall_s: {loop_wall:.3f}")
    print(f"steps_per_s: {steps / loop_wall:.1f}")
    print(f"samples_per_s: {FLAGS.epochs * rows / loop_wall:.0f}")
    print(f"ms_per_step: {1e3 * loop_wall / steps:.3f}")
    print(f"mflop_per_step: {flops / 1e6:.2f}")
    print(f"achieved_gflops: {achieved:.2f}")

    peak = machine_peak()
    print(f"peak_matmul_1024_gflops: {peak:.1f}")
    print(f"batch_matmul_{2 * bs}x128x128_gflops: {matmul_gflops(2 * bs, 128, 2000):.1f}")
    print(f"achieved_over_peak: {achieved / peak:.4f}")

    if FLAGS.time_full_fit:
        model = build(x.shape[1], target_epochs=FLAGS.target_epochs)
        timer = LoopTimer()
        start = time.perf_counter()
        model.fit(x, epochs=FLAGS.epochs, batch_size=bs, verbose=0, callbacks=[timer])
        end = time.perf_counter()
        print(f"full_fit_target_epochs: {FLAGS.target_epochs}")
        print(f"full_fit_wall_s: {end - start:.3f}")
        print(f"full_fit_prepare_s: {timer.begin - start:.3f}")  # standardise + train T
        print(f"full_fit_main_s: {timer.end - timer.begin:.3f}")  # incl. its own tracing

    if FLAGS.folds:
        # Data and splits are made before the clocks start; each fold's seed is shared.
        fold_data = [x[idx] for idx in fold_splits(rows, FLAGS.folds, FLAGS.seed)]
        epochs = FLAGS.fold_epochs
        print(f"folds: {FLAGS.folds} rows_per_fold_fit={len(fold_data[0])} "
              f"fold_epochs={epochs} target_epochs=0")
        plain = timed(plain_loop_folds, fold_data, epochs, bs)
        trainer = timed(trainer_folds, fold_data, epochs, bs)
        print(f"plain_loop_{FLAGS.folds}fold_s: {plain:.3f}")
        print(f"trainer_{FLAGS.folds}fold_s: {trainer:.3f}")
        print(f"ratio_vs_plain_loop: {plain / trainer:.2f}")


if __name__ == "__main__":
    app.run(main)
