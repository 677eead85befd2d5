"""Do the attributions name the faulty gauges? hit@k of explanations on sensor-fault data.

For each seed, a sensor-fault set (mmocgan_tf.data.synthetic.make_sensor_faults): product
types on low-rank manifolds, anomalies with 1-3 gauges off by a few noise widths within the
gauges' normal range. The model (MMOCGAN(d), the default configuration, with --reference)
trains on 80% of the normal rows; the other 20% and all anomalies are held out. Labels and
the faulty mask are used for evaluation only.

hit@k: for an anomaly with k faulty features, the share of its k top-attributed features
that are faulty, averaged over the anomalies. Methods, in standardised units:

- chance: the expectation k/d of a random ranking;
- global_z: |x - mean| / std against the training rows;
- nearest_row: |x - its nearest training row| per feature;
- oracle: |conditional z| of each feature under the row's true type, with that type's true
  covariance: what the best explanation of this kind could do on this data (the faults'
  size against the noise bounds it; --fault_size moves it);
- explain: MMOCGAN.explain, the library's method;
- ig_component: integrated gradients of the model's score from the mean of the row's
  component of the mode mixture (explanations.integrated_gradients, scaled_score);
- grad_x_dev: the score's gradient at the row times (row - that component's mean);
- *_abs: the same two by absolute value (the signed ones can rank a fault below zero);
- explain_paper (--paper): explain of the paper variant (reference="none"), trained alike.

Then detection AUROC on the held-out rows: the model, a BIC Gaussian mixture (full
covariance, 1..--gmm_max_components components) and the 5-NN mean distance.

  PYTHONPATH=. .venv/bin/python benchmarks/explanations.py                 # defaults
  PYTHONPATH=. .venv/bin/python benchmarks/explanations.py --seeds=0,1,2,3,4 --paper
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mmocgan_tf import MMOCGAN  # noqa: E402
from mmocgan_tf.data.synthetic import make_sensor_faults  # noqa: E402
from mmocgan_tf.evaluation.metrics import hit_at_k  # noqa: E402
from mmocgan_tf.model import explanations  # noqa: E402
from mmocgan_tf.model.references import mixtures  # noqa: E402

flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each gives its own data set, split and fit.")
flags.DEFINE_integer("epochs", 100, "Training epochs of the MMOC-GAN.")
flags.DEFINE_integer("batch_size", 100, "Training minibatch size.")
flags.DEFINE_enum("reference", "gmm", ["gmm", "local", "none"], "The model's reference.")
flags.DEFINE_bool("paper", False, "Also train the paper variant and measure its explain.")
flags.DEFINE_integer("n_normal", 3000, "Normal rows per data set.")
flags.DEFINE_integer("n_anomalies", 150, "Anomalies per data set.")
flags.DEFINE_list("fault_size", ["3", "5"], "Smallest and largest fault, in noise widths.")
flags.DEFINE_integer("gmm_max_components", 8, "Largest BIC mixture tried for the AUROC.")
FLAGS = flags.FLAGS

HIT_METHODS = ("chance", "global_z", "nearest_row", "oracle", "explain", "ig_component",
               "ig_component_abs", "grad_x_dev", "grad_x_dev_abs", "explain_paper")
AUROC_METHODS = ("mmocgan", "mmocgan_paper", "bic_gmm", "knn5")


def split(data, seed):
    """(train, held) row indices: 80% of the normal rows, and the rest plus every anomaly."""
    normal = np.random.default_rng(seed).permutation(np.flatnonzero(data.y == 0))
    cut = int(0.8 * len(normal))
    return normal[:cut], np.r_[normal[cut:], np.flatnonzero(data.y == 1)]


def fit_model(x_train, seed, **options):
    keras.utils.set_random_seed(seed)
    model = MMOCGAN(x_train.shape[1], seed=seed, **options)
    model.compile()
    model.fit(x_train, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, verbose=0)
    return model


def component_means(model, scaled, fallback):
    """The mean of each standardised row's most responsible mode: the model's mode mixture
    (its broad slot left out), or the fallback sklearn mixture where it has none."""
    mixture = model.reference.mode_mixture
    if mixture is None:
        return fallback.means_[fallback.predict(scaled)].astype(np.float32)
    logits, loc, scale_tril = (np.asarray(a)[:-1] for a in mixture.arrays)
    joint = mixtures.joint_log_probs(logits, loc, scale_tril, tf.constant(scaled))
    return loc[np.argmax(joint.numpy(), axis=0)]


def gradient_attributions(model, scaled, baseline):
    """(integrated gradients from baseline, gradient at the row x (row - baseline))."""
    def score(rows):
        return explanations.scaled_score(model, rows)

    rows, base = tf.constant(scaled), tf.constant(baseline)
    integrated = explanations.integrated_gradients(score, rows, base).numpy()
    with tf.GradientTape() as tape:
        tape.watch(rows)
        values = score(rows)
    gradient = tape.gradient(values, rows).numpy()
    return integrated, gradient * (scaled - baseline)


def bic_mixture(x_train, seed):
    with threadpool_limits(1):  # BLAS threads oversubscribe small fits
        fits = [GaussianMixture(k, covariance_type="full", random_state=seed).fit(x_train)
                for k in range(1, FLAGS.gmm_max_components + 1)]
    return min(fits, key=lambda gmm: gmm.bic(x_train))


def oracle_attributions(data, rows):
    """|conditional z| under each row's true type and covariance: the data's own limit."""
    attributions = []
    for row in rows:
        kind = data.kind[row]
        precision = np.linalg.inv(data.covariances[kind])
        residual = precision @ (data.x[row] - data.centers[kind])
        attributions.append(np.abs(residual) / np.sqrt(np.diag(precision)))
    return np.array(attributions)


def run_seed(seed):
    """({hit method: hit@k}, {auroc method: AUROC}, a one-line summary) of one seed."""
    start = time.perf_counter()
    data = make_sensor_faults(n_normal=FLAGS.n_normal, n_anomalies=FLAGS.n_anomalies,
                              fault_size=tuple(map(float, FLAGS.fault_size)), seed=seed)
    train, held = split(data, seed)
    anomalies = np.flatnonzero(data.y == 1)
    x_train, faulty = data.x[train], data.faulty[anomalies]
    d = data.x.shape[1]

    model = fit_model(x_train, seed, reference=FLAGS.reference)
    fit_s = time.perf_counter() - start
    standardize = model.standardizer
    scaled_train = standardize(x_train).numpy()
    scaled_held = standardize(data.x[held]).numpy()
    scaled = standardize(data.x[anomalies]).numpy()
    gmm = bic_mixture(scaled_train, seed)

    hits = {"chance": float(np.mean(faulty.sum(axis=1) / d))}
    hits["global_z"] = hit_at_k(np.abs(scaled), faulty)
    _, nearest = NearestNeighbors(n_neighbors=1).fit(scaled_train).kneighbors(scaled)
    hits["nearest_row"] = hit_at_k(np.abs(scaled - scaled_train[nearest[:, 0]]), faulty)
    hits["oracle"] = hit_at_k(oracle_attributions(data, anomalies), faulty)
    hits["explain"] = hit_at_k(model.explain(data.x[anomalies]), faulty)
    integrated, gradient_dev = gradient_attributions(
        model, scaled, component_means(model, scaled, gmm))
    hits["ig_component"] = hit_at_k(integrated, faulty)
    hits["ig_component_abs"] = hit_at_k(np.abs(integrated), faulty)
    hits["grad_x_dev"] = hit_at_k(gradient_dev, faulty)
    hits["grad_x_dev_abs"] = hit_at_k(np.abs(gradient_dev), faulty)

    y_held = data.y[held]
    aurocs = {"mmocgan": roc_auc_score(y_held, model.predict(data.x[held], verbose=0)["score"])}
    if FLAGS.paper:
        paper = fit_model(x_train, seed, reference="none")
        hits["explain_paper"] = hit_at_k(paper.explain(data.x[anomalies]), faulty)
        aurocs["mmocgan_paper"] = roc_auc_score(
            y_held, paper.predict(data.x[held], verbose=0)["score"])
    aurocs["bic_gmm"] = roc_auc_score(y_held, -gmm.score_samples(scaled_held))
    distances, _ = NearestNeighbors(n_neighbors=5).fit(scaled_train).kneighbors(scaled_held)
    aurocs["knn5"] = roc_auc_score(y_held, distances.mean(axis=1))

    summary = (f"seed={seed} rows={len(data.y)} features={d} train={len(train)} "
               f"held_normal={len(held) - len(anomalies)} anomalies={len(anomalies)} "
               f"bic_components={gmm.n_components} fit_s={fit_s:.0f} "
               f"total_s={time.perf_counter() - start:.0f}")
    return hits, aurocs, summary


def report(name, method, values):
    per_seed = ",".join(f"{v:.3f}" for v in values)
    print(f"{name}[{method}]={np.mean(values):.3f} per_seed={per_seed}", flush=True)


def main(argv):
    del argv
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv), flush=True)
    print(f"reference={FLAGS.reference} epochs={FLAGS.epochs} seeds={','.join(FLAGS.seeds)}",
          flush=True)
    hits, aurocs = {}, {}
    for seed in map(int, FLAGS.seeds):
        seed_hits, seed_aurocs, summary = run_seed(seed)
        print(summary, flush=True)
        for method, value in seed_hits.items():
            hits.setdefault(method, []).append(value)
        for method, value in seed_aurocs.items():
            aurocs.setdefault(method, []).append(value)
    for method in HIT_METHODS:
        if method in hits:
            report("hit_at_k", method, hits[method])
    for method in AUROC_METHODS:
        if method in aurocs:
            report("auroc", method, aurocs[method])


if __name__ == "__main__":
    app.run(main)
