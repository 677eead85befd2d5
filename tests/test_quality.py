"""Detection quality that only a trained discriminator D can deliver.

Why these tests exist: the earlier quality floors were cleared without D. On the production
line the reference mixture q alone scores above the floor, and anomalies far from every mode
are separated by log q alone, so an untrained, sign-flipped or useless D passed. Each test
here is built so that the score's other parts fail it:

- the mixture variant (reference="gmm") on a ring: q, a Gaussian mixture of few components,
  cannot follow the curve and puts its peak in the ring's empty hole, so -log q ranks
  anomalies in the hole as the most normal rows. Only D's correction (trained against q's
  samples and against G's complementary ones) turns that round; tests/test_train_step.py
  pins each of D's terms (the default flow q follows the ring itself);
- the paper variant (reference="none"), whose score is 1 - D(x) alone, on anomalies in the
  gaps between compact modes, against the same model before its GAN training (T trained, D
  at its initialisation).

The floors are loose, below the AUROC range measured over seeds 0-4. Labels are used only
to measure the AUROC, never for training or thresholds.
"""

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mmocgan_tf import MMOCGAN


def ring_with_anomalies_in_its_hole(seed, n=600, n_normal=200, n_anomalies=50):
    """Rows on a ring (radius 2, width 0.25) in two features plus a Gaussian third feature;
    anomalies near the ring's centre, where there is no data. Returns (train, test, labels)."""
    rng = np.random.default_rng(seed)

    def rows(plane):
        return np.concatenate([plane, rng.normal(0, 0.3, (len(plane), 1))], axis=1)

    def ring(count):
        angle, radius = rng.uniform(0, 2 * np.pi, count), rng.normal(2.0, 0.25, count)
        return rows(radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1))

    train = ring(n)
    test = np.concatenate([ring(n_normal), rows(rng.normal(0, 0.4, (n_anomalies, 2)))])
    return (train.astype("float32"), test.astype("float32"),
            np.r_[np.zeros(n_normal), np.ones(n_anomalies)])


def between_modes(seed, n=800, d=4):
    """Four compact modes on the corners of a square; anomalies halfway between neighbours.

    The anomalies lie inside the data's hull, in the low-density gaps where the paper's
    complementary samples teach D its boundary. Returns (train, test, labels).
    """
    rng = np.random.default_rng(seed)
    corners = np.array([[a, b] for a in (-4, 4) for b in (-4, 4)], float)
    centres = np.concatenate([corners, rng.normal(0, 1, size=(4, d - 2))], axis=1)
    x = centres[rng.integers(0, 4, n)] + rng.normal(0, 0.6, size=(n, d))
    normal = centres[rng.integers(0, 4, 200)] + rng.normal(0, 0.6, size=(200, d))
    midpoints = np.array([(centres[a] + centres[b]) / 2
                          for a, b in ((0, 1), (0, 2), (1, 3), (2, 3))])
    anomalies = midpoints[rng.integers(0, 4, 40)] + rng.normal(0, 0.6, size=(40, d))
    test = np.concatenate([normal, anomalies]).astype("float32")
    return x.astype("float32"), test, np.r_[np.zeros(200), np.ones(40)]


def model_for(train, seed, **options):
    keras.utils.set_random_seed(seed)
    model = MMOCGAN(num_features=train.shape[1], z_dim=4, seed=seed, **options)
    model.compile(steps_per_execution=16)
    return model


def auroc(labels, score):
    return float(roc_auc_score(labels, np.asarray(score)))


@pytest.mark.parametrize("seed", [0, 1])
def test_d_moves_the_density_out_of_the_hole_that_q_fills(seed):
    train, test, labels = ring_with_anomalies_in_its_hole(seed)
    model = model_for(train, seed, reference="gmm", num_modes=1, d_hidden=(64, 64),
                      g_hidden=(16,))
    model.fit(train, epochs=80, batch_size=50, verbose=0)
    q_alone = auroc(labels, -model.reference.log_q(model.standardizer(test)))
    detected = auroc(labels, model(test)["score"])
    assert q_alone < 0.3  # the premise: q alone takes the hole for the most normal place
    assert detected > max(0.9, q_alone + 0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_paper_variants_d_learns_the_gaps_between_modes(seed):
    train, test, labels = between_modes(seed)
    model = model_for(train, seed, reference="none", num_modes=4, d_hidden=(32, 32),
                      g_hidden=(32,), target_epochs=10)
    model.prepare(train, batch_size=50)  # T trained and frozen; D not yet trained
    untrained = auroc(labels, model(test)["score"])
    model.fit(train, epochs=30, batch_size=50, verbose=0)
    trained = auroc(labels, model(test)["score"])
    assert trained > max(0.7, untrained + 0.15)
