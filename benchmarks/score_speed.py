"""Scoring-speed benchmark: the exported SavedModel against scikit-learn's own mixture.

Trains an MMOCGAN briefly (its q the BIC mixture, or with --reference=flow the default's
flow over it) on synthetic rows of `--modes` Gaussian modes, exports it, and scores the
same `--rows` rows through the reloaded SavedModel in process (serving_default and score,
in batches of `--batch`) and through scikit-learn's `GaussianMixture.score_samples` with as
many full-covariance components as q has slots (`--num_modes`; q evaluates every slot,
filled by BIC or not), fitted to the same training rows. The mixture is scikit-learn's
whole work; the SavedModel adds the standardisation, D and the decision. Each side is timed
best of `--repeats` after a warm-up call. One `name: value` per line; the last is
`ratio_vs_sklearn_gmm` (SavedModel serving_default rows/s over scikit-learn's).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from mmocgan_tf import MMOCGAN  # noqa: E402
from mmocgan_tf.deploy.export import export_saved_model  # noqa: E402

flags.DEFINE_integer("rows", 200_000, "Rows scored by each side.")
flags.DEFINE_integer("features", 50, "Columns.")
flags.DEFINE_integer("modes", 10, "Gaussian modes of the synthetic rows.")
flags.DEFINE_integer("num_modes", 10, "The model's num_modes (q's slots).")
flags.DEFINE_integer("train_rows", 5000, "Rows the model and the mixture are fitted to.")
flags.DEFINE_integer("epochs", 1, "Training epochs (speed does not depend on them).")
flags.DEFINE_integer("batch", 10_000, "Rows per SavedModel call.")
flags.DEFINE_integer("repeats", 3, "Timed passes per side; the best is kept.")
flags.DEFINE_integer("seed", 0, "Seeds the data and the model.")
flags.DEFINE_enum("reference", "gmm", ["gmm", "flow"],
                  "The model's q: the mixture, as scikit-learn's, or the default's flow.")
FLAGS = flags.FLAGS


def synthetic_rows(n, rng, centres):
    modes = rng.integers(len(centres), size=n)
    return (centres[modes] + rng.normal(size=(n, centres.shape[1]))).astype(np.float32)


def best_time(run, repeats):
    run()  # warm-up: tracing, first allocations
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv):
    del argv
    rng = np.random.default_rng(FLAGS.seed)
    centres = rng.normal(0.0, 4.0, (FLAGS.modes, FLAGS.features))
    x_train = synthetic_rows(FLAGS.train_rows, rng, centres)
    x = synthetic_rows(FLAGS.rows, rng, centres)
    print(f"rows: {FLAGS.rows} features={FLAGS.features} batch={FLAGS.batch}")
    print(f"cpus: {os.cpu_count()} reference={FLAGS.reference}")

    model = MMOCGAN(FLAGS.features, num_modes=FLAGS.num_modes, reference=FLAGS.reference,
                    seed=FLAGS.seed)
    model.compile()
    model.fit(x_train, epochs=FLAGS.epochs, verbose=0)
    fitted = int(np.sum(model.reference.q.logits.numpy() > -1e8)) - 1
    print(f"q_slots: {FLAGS.num_modes} + the broad one (BIC filled {fitted})")
    with tempfile.TemporaryDirectory() as folder:
        loaded = tf.saved_model.load(export_saved_model(model, os.path.join(folder, "m")))
        batches = [tf.constant(x[i:i + FLAGS.batch]) for i in range(0, len(x), FLAGS.batch)]

        def run(signature, output):
            def call():
                for batch in batches:
                    signature(features=batch)[output].numpy()
            return call

        serve = best_time(run(loaded.signatures["serving_default"], "score"), FLAGS.repeats)
        score = best_time(run(loaded.signatures["score"], "score"), FLAGS.repeats)

    # As many components as q evaluates (its slots; unused ones cost the same as used ones).
    gmm = GaussianMixture(FLAGS.num_modes, covariance_type="full",
                          random_state=FLAGS.seed).fit(x_train)
    sklearn = best_time(lambda: gmm.score_samples(x), FLAGS.repeats)
    print(f"sklearn_components: {gmm.n_components}")
    print(f"savedmodel_rows_per_s: {FLAGS.rows / serve:.0f}")
    print(f"savedmodel_score_signature_rows_per_s: {FLAGS.rows / score:.0f}")
    print(f"sklearn_gmm_rows_per_s: {FLAGS.rows / sklearn:.0f}")
    print(f"ratio_vs_sklearn_gmm: {sklearn / serve:.2f}")


if __name__ == "__main__":
    app.run(main)
