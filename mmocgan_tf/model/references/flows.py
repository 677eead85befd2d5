"""A masked autoregressive flow (TFP bijectors) as model weights: the flow variant's density.

The flow maps a base density (N(0, I), or the BIC mixture) to the standardised rows
through FLOW_LAYERS MaskedAutoregressiveFlow bijectors (Papamakarios et al. 2017) with the
column order reversed between them; each layer's shift and log-scale come from a MADE
network (Germain et al. 2015), written here as Keras 3 layers because TFP's
AutoregressiveNetwork is a Keras 2 layer. log p(x) is one pass of every network; sampling
runs d passes per layer, so the variant samples once, after the fit, into a pool its
negatives are drawn from.

Robust to discrete and constant columns: the fit adds Gaussian dequantisation noise scaled
to each column's resolution, so the density cannot collapse onto repeated values, and
every log-scale is bounded, so log p stays finite for finite rows (LOWEST_LOG_DENSITY
stands in where a row is too far out for float32).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from mmocgan_tf.data import pipeline
from mmocgan_tf.model import replicas
from mmocgan_tf.model.networks import seeded

tfb = tfp.bijectors

# The flow's shape and fit: those of the prototype it was built from (its issue's lead).
FLOW_LAYERS = 5
FLOW_HIDDEN = (64, 64)
FLOW_BATCH = 256
FLOW_LEARNING_RATE = 1e-3
# Dequantisation: a column's noise std is DEQUANTISATION_SHARE of its resolution (the
# median gap between its distinct values; about a uniform's spread over one gap), and at
# least DEQUANTISATION_FLOOR standard deviations (a constant column). The floor must stay
# far below the finest spread of the normal rows: at 0.05 it blurred the production line's
# thin surfaces and the flow lost its anomalies (docs/RESULTS.md).
DEQUANTISATION_SHARE = 0.3
DEQUANTISATION_FLOOR = 1e-3
# The fit holds out VALIDATION_SHARE of the rows and stops once their likelihood has not
# improved for PATIENCE evaluations, EVALUATE_EVERY steps apart, keeping the best weights:
# a flow overfits small sets within its step budget (docs/RESULTS.md).
VALIDATION_SHARE = 0.1
MIN_VALIDATION_ROWS = 20
EVALUATE_EVERY = 250
PATIENCE = 2
# Each MADE sees its inputs clipped to +-CONDITIONER_RANGE standard deviations (the layer
# stays a bijection: only the functions giving shift and scale change), so a row far out in
# a heavy tail does not extrapolate them into huge values; without it shuttle's fit diverged.
CONDITIONER_RANGE = 10.0
LOG_SCALE_BOUND = 5.0  # |log-scale| of every layer, soft-clipped: a bounded Jacobian
LOWEST_LOG_DENSITY = -1e30
POOL_ROWS = 8192  # samples of the flow that the variant's negatives are drawn from


class FlowFitError(ValueError):
    """The flow could not be fitted to the rows (its loss diverged); one line."""


def dequantisation_noise(rows):
    """Per-column noise std [d] for the fit: scaled to each column's resolution."""
    noise = np.full(rows.shape[1], DEQUANTISATION_FLOOR)
    for j, column in enumerate(np.asarray(rows, np.float64).T):
        gaps = np.diff(np.unique(column))
        if len(gaps):
            noise[j] = max(DEQUANTISATION_FLOOR, DEQUANTISATION_SHARE * np.median(gaps))
    return noise.astype(np.float32)


class MaskedDense(keras.layers.Layer):
    """A dense layer whose kernel is multiplied by a fixed 0/1 mask (MADE's connectivity)."""

    def __init__(self, mask, kernel_initializer, **kwargs):
        super().__init__(**kwargs)
        self.mask = np.asarray(mask, np.float32)
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=self.mask.shape,
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=self.mask.shape[1:],
                                    initializer="zeros")

    def call(self, x):
        return tf.matmul(x, self.kernel * self.mask) + self.bias


class MADE(keras.layers.Layer):
    """Shift and bounded log-scale [n, d] of column k from columns < k only (ReLU layers),
    of the inputs clipped to +-CONDITIONER_RANGE.

    identity_start zeroes the output layer, so the flow starts as the identity map.
    """

    def __init__(self, num_features, hidden, seeds, identity_start=False, **kwargs):
        super().__init__(**kwargs)
        d = int(num_features)
        degrees = [np.arange(1, d + 1)]
        degrees += [np.arange(width) % max(d - 1, 1) + 1 for width in hidden]
        self.hidden = [
            MaskedDense(degrees[i + 1][None, :] >= degrees[i][:, None],
                        seeded(keras.initializers.GlorotUniform, seeds), name=f"hidden_{i}")
            for i in range(len(hidden))]
        output_degrees = np.concatenate([degrees[0], degrees[0]])  # shift, then log-scale
        self.out = MaskedDense(output_degrees[None, :] > degrees[-1][:, None],
                               "zeros" if identity_start
                               else seeded(keras.initializers.GlorotUniform, seeds),
                               name="shift_and_log_scale")

    def build(self, input_shape):
        shape = input_shape
        for layer in self.hidden:
            layer.build(shape)
            shape = (None, layer.mask.shape[1])
        self.out.build(shape)

    def call(self, x):
        h = tf.clip_by_value(x, -CONDITIONER_RANGE, CONDITIONER_RANGE)
        for layer in self.hidden:
            h = tf.nn.relu(layer(h))
        shift, raw = tf.split(self.out(h), 2, axis=-1)
        return shift, LOG_SCALE_BOUND * tf.tanh(raw / LOG_SCALE_BOUND)


class Flow(keras.layers.Layer):
    """The flow's networks, and `pool`: POOL_ROWS samples of it, drawn after the fit.

    Args:
      num_features: d.
      seeds: a random.Random drawing the initializers' seeds.
      identity_start: start as the identity map (for a base that already fits the rows).
    """

    def __init__(self, num_features, seeds, identity_start=False, **kwargs):
        super().__init__(**kwargs)
        d = int(num_features)
        self.made = [MADE(d, FLOW_HIDDEN, seeds, identity_start, name=f"made_{i}")
                     for i in range(FLOW_LAYERS)]

    def build(self, input_shape):
        d = int(input_shape[-1])
        for made in self.made:
            made.build((None, d))
        self.pool = self.add_weight(name="pool", shape=(POOL_ROWS, d), initializer="zeros",
                                    trainable=False)

    def bijector(self):
        """The map from the base's space to the rows; built per call, so it reads the weights."""
        d = self.pool.shape[1]
        bijectors = []
        for i, made in enumerate(self.made):
            if i:
                bijectors.append(tfb.Permute(np.arange(d)[::-1]))
            bijectors.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))
        return tfb.Chain(bijectors[::-1])

    def raw_log_prob(self, x, base=None):
        """log p(x) [n] of the flow over `base` (a Mixture; None: N(0, I))."""
        bijector = self.bijector()
        z = bijector.inverse(x)
        return (_base_log_prob(base, z)
                + bijector.inverse_log_det_jacobian(x, event_ndims=1))

    def log_prob(self, x, base=None):
        """log p(x) [n], finite for every finite row."""
        log_p = self.raw_log_prob(x, base)
        return tf.where(tf.math.is_finite(log_p), log_p, LOWEST_LOG_DENSITY)

    def sample(self, n, seed, base=None):
        d = self.pool.shape[1]
        z = (tf.random.stateless_normal([n, d], seed) if base is None
             else base.sample(n, seed))
        return self.bijector().forward(z)

    def negatives(self, n, seed):
        """n rows drawn from the pool, uniformly, from an int32 [2] stateless seed."""
        index = tf.random.stateless_uniform([n], seed, 0, POOL_ROWS, dtype=tf.int32)
        return tf.gather(self.pool, index)

    def fit(self, rows, seed, steps, base=None, steps_per_execution=1, strategy=None):
        """At most `steps` of maximum likelihood on dequantised rows, then the pool.

        Stops early on the held-out rows' likelihood (VALIDATION_SHARE) and returns Keras's
        History. Raises FlowFitError if the fit diverges.
        """
        rows = np.asarray(rows, np.float32)
        noise = dequantisation_noise(rows)
        rng = np.random.default_rng([seed, 3])
        order = rng.permutation(len(rows))
        held = int(len(rows) * VALIDATION_SHARE)
        held = held if held >= MIN_VALIDATION_ROWS else 0  # too few rows: the whole budget
        train, validation, callbacks = rows[order[held:]], None, []
        if held:
            dequantised = rows[order[:held]] + noise * rng.standard_normal((held, len(noise)))
            validation = pipeline.shard_by_data(tf.data.Dataset.from_tensor_slices(
                dequantised.astype(np.float32)).batch(4096))
            callbacks = [keras.callbacks.EarlyStopping("val_loss", patience=PATIENCE,
                                                       restore_best_weights=True)]
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            trainer = FlowTrainer(self, noise, seed, base)
            trainer.compile(
                keras.optimizers.Adam(FLOW_LEARNING_RATE),
                steps_per_execution=replicas.steps_per_execution(steps_per_execution,
                                                                 strategy))
        every = min(int(steps), EVALUATE_EVERY)
        batches = pipeline.array_batches(train, FLOW_BATCH, [seed, 1]).repeat()
        history = trainer.fit(batches, epochs=max(1, round(steps / every)),
                              steps_per_epoch=every, validation_data=validation,
                              callbacks=callbacks, verbose=0, shuffle=False)
        # Early stopping keeps the best epoch's weights, which may predate a divergence.
        losses = history.history.get("val_loss", history.history["loss"])
        if not (np.isfinite(losses).any()
                and all(np.isfinite(w).all() for w in self.get_weights())):
            raise FlowFitError(f"the flow's fit diverged (loss {losses[-1]}); "
                               "use reference=gmm")
        self.pool.assign(self.sample(POOL_ROWS, tf.constant([seed, 2], tf.int32), base))
        return history


def normal_log_prob(x, scale=1.0):
    """log N(x; 0, scale^2 I) of rows x [n, d]."""
    d = x.shape[-1]
    return (-0.5 * tf.reduce_sum(tf.square(x / scale), axis=-1)
            - d * np.log(scale) - 0.5 * d * np.log(2 * np.pi))


def _base_log_prob(base, z):
    """log density of z under the flow's base: the mixture `base`, or N(0, I) if None."""
    return normal_log_prob(z) if base is None else base.log_prob(z)


class FlowTrainer(keras.Model):
    """Fits a Flow: the mean negative log-likelihood of rows plus dequantisation noise."""

    def __init__(self, flow, noise, seed, base=None, **kwargs):
        super().__init__(**kwargs)
        self.flow = flow
        object.__setattr__(self, "base", base)  # the model's, not this trainer's, to track
        self.noise = tf.constant(noise)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True  # the flow's weights exist; fit under a strategy needs none built

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        (seed,) = replicas.replica_seeds(self.seed_generator, 1)
        x = data + self.noise * tf.random.stateless_normal(tf.shape(data), seed)
        with tf.GradientTape() as tape:
            (log_p,) = replicas.gather(self.flow.raw_log_prob(x, self.base))
            loss = -tf.reduce_mean(log_p)
            scaled = loss * replicas.loss_scale()
        variables = self.flow.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        return replicas.step_logs({"loss": self.loss_tracker.result()})

    def test_step(self, data):
        """The held-out rows' mean negative log-likelihood (they come dequantised)."""
        (log_p,) = replicas.gather(self.flow.raw_log_prob(data, self.base))
        self.loss_tracker.update_state(-tf.reduce_mean(log_p))
        return replicas.step_logs({"loss": self.loss_tracker.result()})
