"""What every detector of the benchmark is: fit on normal rows, score new rows.

The evaluation protocol standardises the data (statistics of the training rows only)
before a detector sees it, so detectors work on standardised features.

Orientation: Detector.anomaly_score is higher for more anomalous rows (PyOD's convention,
and that of MMOCGANDetector.anomaly_score). The name score_samples is left to
scikit-learn's convention (higher = more normal, as MMOCGANDetector.score_samples), so no
method name means both. GAN detectors, whose score is 1 - D(x) of a discriminator, also
have the paper's second decision rule D(x) < 0.5, i.e. score > 0.5.
"""

import keras
import numpy as np

from mmocgan_tf.evaluation import reinit

# Keras has a fixed cost per epoch (callbacks, a new iterator); on a small data set (a few
# steps per pass) that dwarfs the training itself, so fits group passes into epochs of this
# many steps.
MIN_STEPS_PER_EPOCH = 64


class Detector:
    """Base of all benchmark detectors.

    Attributes:
      name: the --methods name.
      is_gan: the score is 1 - D(x), so the "half" rule applies besides the quantile rule.
    """

    name = ""
    is_gan = False

    def fit(self, x, seed=0):
        """Trains on normal rows x [n, d] (float32, standardised); returns self."""
        raise NotImplementedError

    def anomaly_score(self, x):
        """Anomaly scores of rows.

        Args:
          x: rows [n, d] (float32, standardised like the training rows).

        Returns:
          Scores [n], higher = more anomalous (PyOD's orientation, the opposite of
          scikit-learn's score_samples).
        """
        raise NotImplementedError

    def training_scores(self, x):
        """Scores of the training rows, from which the quantile rule's threshold is set.

        Same orientation as anomaly_score; a detector overrides it where scoring its own
        training rows is biased (a row among its own nearest neighbours).
        """
        return self.anomaly_score(x)


class KerasDetector(Detector):
    """A detector around a compiled Keras model; later fits reuse its traced train step.

    Subclasses implement build_model(num_features, seed) (a new, built and compiled model;
    its weights come from the global Keras seed, which fit sets to seed) and
    anomaly_score. fit seeds Keras, then either keeps that new model or, when one of the
    same width exists, copies the new model's initial weights into the existing one and
    zeroes its optimizers, so k folds trace once.
    """

    def __init__(self, epochs=100, batch_size=100, steps_per_execution=16, train_steps=None):
        self.epochs = int(epochs)
        self.train_steps = None if train_steps is None else int(train_steps)
        self.batch_size = int(batch_size)
        self.steps_per_execution = int(steps_per_execution)
        self.model_ = None
        self.num_features_ = None

    def build_model(self, num_features, seed):
        raise NotImplementedError

    def epochs_for(self, rows):
        """Epochs of a fit on `rows` rows: `epochs`, or about `train_steps` steps when set
        (a budget that treats data sets of every size alike in a benchmark)."""
        if self.train_steps is None:
            return self.epochs
        steps_per_epoch = -(-rows // min(self.batch_size, rows))
        return max(1, round(self.train_steps / steps_per_epoch))

    def fit(self, x, seed=0):
        self.start_fit(x.shape[1], seed)
        fit_passes(self.model_, x, self.epochs_for(len(x)), self.batch_size)
        return self

    def start_fit(self, num_features, seed):
        """Makes model_ a freshly initialised model for this fit (seeded).

        Subclasses with their own fit call it first, so they reuse the traced model too.

        Args:
          num_features: width d of the rows this fit trains on.
          seed: the fit's seed (Keras's global seed and build_model's).
        """
        keras.utils.set_random_seed(seed)
        fresh = self.build_model(num_features, seed)
        if self.model_ is None or self.num_features_ != num_features:
            self.model_, self.num_features_ = fresh, num_features
            return
        reinit.copy_variables(self.model_, fresh)
        for optimizer in optimizers_of(self.model_):
            reinit.reset_optimizer(optimizer)


def one_minus_d(logit):
    """1 - D(x) = sigmoid(-logit) in float64, so very normal rows do not tie at 0."""
    return 1.0 / (1.0 + np.exp(np.asarray(logit, np.float64)))


def passes_per_epoch(rows, batch_size):
    """How many passes over `rows` rows one Keras epoch holds (see MIN_STEPS_PER_EPOCH)."""
    steps = -(-rows // min(batch_size, rows))
    return max(1, -(-MIN_STEPS_PER_EPOCH // steps))


def fit_passes(model, x, passes, batch_size, y=None, **kwargs):
    """model.fit for about `passes` shuffled passes over x (and y), in epochs of at least
    MIN_STEPS_PER_EPOCH steps: x is tiled `group` times per epoch, a shuffled epoch over
    the copies being `group` passes."""
    batch_size = min(batch_size, len(x))
    group = min(passes, passes_per_epoch(len(x), batch_size))
    return model.fit(tiled(x, group), tiled(y, group), epochs=max(1, round(passes / group)),
                     batch_size=batch_size, shuffle=True, verbose=0, **kwargs)


def tiled(a, copies):
    """`copies` copies of the rows of a, one after another (a itself for 1 or None)."""
    return a if a is None or copies == 1 else np.tile(a, (copies,) + (1,) * (a.ndim - 1))


def optimizers_of(model):
    """The optimizers a model trains with (compile's `optimizer`, or a GAN's two)."""
    names = ("optimizer", "d_optimizer", "g_optimizer")
    return [opt for opt in (getattr(model, n, None) for n in names) if opt is not None]
