"""MMOCGAN: the multimodal one-class GAN as a Keras 3 model with a custom train_step.

`fit(x)` on normal data does the whole method: it learns the standardisation, fits the
reference (the paper's target network T, or a mixture q; see references/), runs the
complementary GAN training of D, Q and G, and sets the decision threshold. The model's
output is the detector: an anomaly score, the normality it comes from, the decision and
the learned mode.
"""

import dataclasses
import random

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf.config import ModelConfig
from mmocgan_tf.data import pipeline
from mmocgan_tf.model import explanations, losses, networks, priors, replicas, terms
from mmocgan_tf.model.references import make_reference
from mmocgan_tf.model.references.base import eager_in_chunks, is_dataset
from mmocgan_tf.model.running_means import RunningMeans
from mmocgan_tf.model.standardizer import Standardizer

_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
EVAL_STREAM = 1 << 20  # test_step's noise: a stream apart from any training step's
SEED_STATE = "seed_generator_state"  # its key among the saved variables


@keras.saving.register_keras_serializable(package="mmocgan_tf")
class MMOCGAN(keras.Model):
    """Multimodal one-class GAN for anomaly detection on tabular data.

    Train it on normal rows only. Its output for raw (unscaled) rows x is a dict:
      score: higher = more anomalous (PyOD's orientation). With a reference q ("flow", the
        default, "gmm" or "local") it is -log p(x), the negative log-density estimate, in nats;
        with reference="none" (the paper) it is 1 - D(x) in (0, 1).
      normality: higher = more normal (scikit-learn's orientation), the quantity the
        threshold is set on; score decreases with it. With a reference it is log p(x) =
        logit D(x) + log q(x); with reference="none" it is D's logit, log-odds of D(x).
      is_anomaly: normality below the threshold (normality_threshold).
      mode: argmax_c Q(c|x), the learned mode of the row.
      mode_probs: Q(c|x) [N, num_modes].

    Weights, noise and batch orders all come from `seed`: no global seeding.

    Distributed training: build and compile inside `strategy.scope()`. Each replica draws
    its own noise and every loss term sees the global batch; with several replicas,
    steps_per_execution is 1 (Keras) and the first batch must split evenly over them.

    Args:
      num_features: d, the number of input columns.
      feature_names: names of the d columns in input order (default f0, f1, ...); exports
        carry them so clients can map table columns by name.
      **kwargs: any field of ModelConfig (num_modes, prior, z_dim, loss weights, ...), the
        rest goes to keras.Model.
    """

    def __init__(self, num_features, feature_names=None, **kwargs):
        hyper = {k: kwargs.pop(k) for k in list(kwargs) if k in _MODEL_FIELDS}
        super().__init__(**kwargs)
        self.num_features = int(num_features)
        self.feature_names = tuple(feature_names or (f"f{i}" for i in range(num_features)))
        if len(self.feature_names) != self.num_features:
            raise ValueError(f"{len(self.feature_names)} feature_names for "
                             f"{self.num_features} features")
        self.config = ModelConfig(**hyper).validate()
        cfg = self.config
        terms.check_something_trains(cfg)
        seeds = random.Random(cfg.seed)  # the initializers' seeds, in construction order

        # === Layers ===
        self.standardizer = Standardizer(name="standardizer")
        self.prior = priors.make_prior(cfg.prior, cfg.num_modes, cfg.z_dim, seeds)
        self.generator = networks.build_generator(
            self.prior.output_dim, cfg.g_hidden, self.num_features, seeds=seeds)
        self.discriminator = networks.build_discriminator(
            self.num_features, cfg.d_hidden, cfg.num_modes, seeds=seeds)
        self.reference = make_reference(cfg, self.num_features, seeds)

        self.seed_generator = keras.random.SeedGenerator(cfg.seed)
        self._loss_means = RunningMeans(terms.LOGGED, name="loss_means")
        self._flagged = keras.metrics.Mean(name="flagged")  # evaluate's share of anomalies

    def build(self, input_shape=None):
        shape = (None, self.num_features)
        self.standardizer.build(shape)
        self.reference.build(shape)
        self.normality_threshold = self.add_weight(
            name="normality_threshold", shape=(), initializer="zeros", trainable=False)
        # 1 once fit has learned the standardisation and fitted the reference.
        self.prepared = self.add_weight(
            name="prepared", shape=(), initializer="zeros", trainable=False)
        self.built = True

    # === Keras plumbing ===

    def compile(self, d_optimizer=None, g_optimizer=None, steps_per_execution=16,
                jit_compile=False, **kwargs):
        """Args: one optimizer for D and Q, one for G and the prior (Adam 1e-3 each).

        steps_per_execution > 1 runs several steps per compiled call (1 under several
        replicas, where Keras cannot); XLA is off by default: on CPU at these sizes it was
        no faster and adds compile time (docs/HISTORY.md).
        """
        super().compile(optimizer=None, jit_compile=jit_compile, **kwargs,
                        steps_per_execution=replicas.steps_per_execution(
                            steps_per_execution, self.distribute_strategy))
        if not self.built:
            self.build((None, self.num_features))
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(1e-3)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(1e-3)
        # Slots now, not in the first trace (which would then trace twice), and so that a
        # loaded model's saved optimizer state has somewhere to go.
        self.d_optimizer.build(self.d_variables())
        self.g_optimizer.build(self.g_variables())
        self._compile_args = dict(steps_per_execution=steps_per_execution,
                                  jit_compile=jit_compile, **kwargs)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return {"d_optimizer": keras.optimizers.serialize(self.d_optimizer),
                "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
                **self._compile_args}

    def compile_from_config(self, config):
        config = dict(config)
        optimizers = {name: keras.optimizers.deserialize(config.pop(name))
                      for name in ("d_optimizer", "g_optimizer") if name in config}
        self.compile(**optimizers, **config)

    def save_own_variables(self, store):
        # The noise stream's state too, so a restored backup (BackupAndRestore) continues
        # the noise where it stopped; Keras leaves seed generators out of saved weights.
        super().save_own_variables(store)
        store[SEED_STATE] = self.seed_generator.state

    def load_own_variables(self, store):
        if SEED_STATE in store.keys():  # files saved without it keep the fresh state
            self.seed_generator.state.assign(store[SEED_STATE])
        super().load_own_variables({k: store[k] for k in store.keys() if k != SEED_STATE})

    def get_config(self):
        config = super().get_config()
        config.update(num_features=self.num_features, feature_names=list(self.feature_names),
                      **dataclasses.asdict(self.config))
        return config

    @property
    def metrics(self):
        return [self._loss_means, self._flagged]

    @property
    def steps_per_execution_requested(self):
        """compile's steps_per_execution, before any strategy lowered it."""
        return self._compile_args["steps_per_execution"]

    def d_variables(self):
        """What the D optimizer trains: D, and its Q head unless both Q terms are off."""
        variables = self.discriminator.trainable_variables
        if not (self.config.weight_q_fake or self.config.weight_q_real):  # Q head unused
            unused = {id(v) for v in self.discriminator.get_layer("q").trainable_variables}
            variables = [v for v in variables if id(v) not in unused]
        return variables

    def g_variables(self):
        """What the G optimizer trains: G and the mixture prior's mu and sigma."""
        return self.generator.trainable_variables + self.prior.trainable_variables

    # === Detection ===

    def call(self, x):
        scaled = self.standardizer(x)
        out = self.discriminator(scaled)
        normality = self.reference.normality(scaled, out["logit"])
        return {
            "score": self.reference.score(normality),
            "normality": normality,
            "is_anomaly": normality < self.normality_threshold,
            "mode": tf.argmax(out["q_logits"], axis=-1, output_type=tf.int32),
            "mode_probs": tf.nn.softmax(out["q_logits"]),
        }

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """Keras's predict, refusing an unfitted model and rows of the wrong width."""
        self._check_fitted()
        if not is_dataset(x):
            x = self._checked_rows(x)
            if not len(x):
                return {name: value.numpy() for name, value in self(x).items()}
        return super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)

    def explain(self, x, batch_size=1024):
        """Per-feature attributions [n, d] of the anomaly score of raw rows x.

        Higher = this feature makes the row more anomalous, relative to the row's mode.
        model/explanations.py says what they are, and what they sum to, for each variant.
        """
        self._check_fitted()
        return explanations.explain_rows(self, self._checked_rows(x), batch_size)

    def _check_fitted(self):  # an unfitted model's outputs would be meaningless
        if not self.built or not bool(self.prepared.numpy()):
            raise ValueError("this MMOCGAN is not fitted yet: call fit(x) on normal rows "
                             "first, or load a trained model")

    def _checked_rows(self, x):
        """x as float32 [n, num_features], or a ValueError that says what is wrong."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected rows of {self.num_features} features "
                             f"({', '.join(self.feature_names)}), got an array of shape "
                             f"{x.shape}")
        return x

    def generate(self, x, seed=0):
        """Complementary samples in raw units, one per row of x, c ~ Q(c|x) as in training.

        They show where G puts its low-density samples around each mode (Figure 4)."""
        q_logits = self.discriminator(self.standardizer(x))["q_logits"]
        code_seed, z_seed = tf.unstack(tf.constant([[seed, 0], [seed, 1]], tf.int32))
        codes = priors.draw_codes(q_logits, code_seed, self.config.code_sampling)
        x_hat = self.generator(self.prior.sample(codes, z_seed))
        return (x_hat * self.standardizer.scale + self.standardizer.mean).numpy()

    def set_threshold(self, x=None, rule=None, quantile=None, score=None):
        """Sets the decision threshold; no retraining needed.

        Args:
          x: normal training rows (never labelled anomalies), for the "quantile" rule.
          rule, quantile: override the configured threshold_rule / threshold_quantile.
          score: an explicit score threshold: rows scoring above it are anomalies.
        """
        if score is not None:
            self.normality_threshold.assign(self.reference.normality_at_score(score))
            return
        rule = rule or self.config.threshold_rule
        quantile = self.config.threshold_quantile if quantile is None else quantile
        if rule == "half":
            if not self.reference.score_is_probability:
                raise ValueError('the "half" rule needs the paper variant (reference="none")')
            self.normality_threshold.assign(0.0)  # D(x) < 0.5
            return
        normality = eager_in_chunks(self._normality_of_scaled, self._standardize(x))
        # score > its q-quantile  <=>  normality < its (1 - q)-quantile.
        self.normality_threshold.assign(np.quantile(normality, 1.0 - quantile))

    def infer_threshold(self, x_normal, fpr=0.005):
        """Sets the threshold so that a share fpr of held-out normal rows is flagged.

        Args:
          x_normal: normal rows the model was not trained on (never labelled anomalies).
          fpr: the false-positive rate wanted on rows like them, in (0, 1).
        """
        if not 0.0 < fpr < 1.0:
            raise ValueError(f"fpr must be in (0, 1), got {fpr}")
        self.set_threshold(x_normal, rule="quantile", quantile=1.0 - fpr)

    def _normality_of_scaled(self, scaled):
        return self.reference.normality(scaled, self.discriminator(scaled)["logit"])

    # === Training ===

    def fit(self, x=None, y=None, batch_size=100, epochs=1, verbose="auto", threshold_x=None,
            **kwargs):
        """Trains on normal rows x (array [n, d] or a dataset of batches of raw rows).

        The first fit also learns the standardisation and fits the reference; later fits
        continue the GAN training. Labels are refused. The threshold is then set from
        threshold_x (default x; pass the rows themselves when x repeats them). Arrays are
        batched in seeded orders that a later fit continues (data/pipeline.py).
        """
        if y is not None:
            raise ValueError("MMOCGAN trains on normal rows only; call fit(x) without labels.")
        if not self.compiled:
            raise ValueError("Call compile() before fit().")
        if is_dataset(x):
            batch_size, data = None, x  # a dataset brings its own batches, shuffled or not
            kwargs.setdefault("shuffle", False)
        else:
            x = self._checked_rows(x)
            if not len(x):
                raise ValueError("fit needs at least one row")
            if int(batch_size) < 1:
                raise ValueError(f"batch_size must be >= 1, got {batch_size}")
            first = min(batch_size, len(x))
            count = self.distribute_strategy.num_replicas_in_sync
            if first % count:
                # Keras cannot split an uneven first batch (its symbolic build adds up the
                # replicas' batches); later partial batches are fine.
                raise ValueError(f"a first batch of {first} rows cannot be split evenly over "
                                 f"{count} replicas; use a batch size divisible by {count}")
            data = pipeline.array_batches(
                x, batch_size, [self.config.seed, int(self.d_optimizer.iterations.numpy())],
                shuffle=kwargs.pop("shuffle", True))
            kwargs["shuffle"] = False
        if not bool(self.prepared.numpy()):
            self.prepare(x, batch_size=batch_size)
        history = super().fit(data, epochs=epochs, verbose=verbose, **kwargs)
        self.set_threshold(x if threshold_x is None else threshold_x)
        return history

    def prepare(self, x, batch_size=100):
        """Learns the standardisation and fits the reference (q, or T and eps_T) to x."""
        self.standardizer.adapt(x)
        self.reference.fit(self._standardize(x), self.config, batch_size=batch_size,
                           steps_per_execution=self.steps_per_execution_requested,
                           strategy=self.distribute_strategy)
        self.prepared.assign(1.0)

    def _standardize(self, x):
        if is_dataset(x):
            return x.map(self.standardizer)
        return self.standardizer(x).numpy()

    def train_step(self, data):
        x = self.standardizer(data[0] if isinstance(data, (tuple, list)) else data)
        seeds = replicas.replica_seeds(self.seed_generator, 3)
        # G's tape also records D's part: x_hat is generated once and shared by both
        # updates (G is unchanged until its own update). Under tf.distribute every term
        # sees the global batch (replicas.gather; a no-op on one device).
        # Losses are scaled by 1 / replicas, as Keras sums the replicas' gradients.
        scale = replicas.loss_scale()
        with tf.GradientTape() as g_tape:
            with tf.GradientTape() as d_tape:
                x_hat, codes, d_terms = self.discriminator_terms(x, seeds)
                d_loss = terms.weighted_sum(d_terms, self.config)
                d_scaled = d_loss * scale
            with g_tape.stop_recording():
                variables = self.d_variables()
                self.d_optimizer.apply(d_tape.gradient(d_scaled, variables), variables)
            g_terms = self.generator_terms(x, x_hat, codes)  # against the updated D
            g_loss = terms.weighted_sum(g_terms, self.config)
            g_scaled = g_loss * scale
        variables = self.g_variables()
        self.g_optimizer.apply(g_tape.gradient(g_scaled, variables), variables)
        self._loss_means.update_state({"d_loss": d_loss, "g_loss": g_loss, **d_terms, **g_terms})
        return replicas.step_logs(self._loss_means.result())

    def test_step(self, data):
        """The loss terms on the given rows, nothing updated, and the share flagged.

        What `evaluate` and `fit(validation_data=...)` report, plus `flagged`, the share
        below the threshold. Fixed seeds: repeatable, and training's stream is untouched.
        """
        raw = data[0] if isinstance(data, (tuple, list)) else data
        x = self.standardizer(raw)
        seeds = [tf.constant([self.config.seed, EVAL_STREAM + i], tf.int32) for i in range(3)]
        x_hat, codes, d_terms = self.discriminator_terms(x, seeds)
        g_terms = self.generator_terms(x, x_hat, codes)
        self._loss_means.update_state({"d_loss": terms.weighted_sum(d_terms, self.config),
                                       "g_loss": terms.weighted_sum(g_terms, self.config),
                                       **d_terms, **g_terms})
        normality = self._normality_of_scaled(x)
        self._flagged.update_state(tf.cast(normality < self.normality_threshold, tf.float32))
        return replicas.step_logs({**self._loss_means.result(),
                                   "flagged": self._flagged.result()})

    def discriminator_terms(self, x, seeds):
        """D's and Q's loss terms on standardised rows x; returns (x_hat, codes, terms)."""
        code_seed, z_seed, negative_seed = seeds
        # Negatives from q (none in the paper) share the real rows' pass; G needs its codes.
        negatives = self.reference.negatives(tf.shape(x)[0], negative_seed)
        batches = [x] if negatives is None else [x, negatives]
        real, *negative = networks.split_batches(
            self.discriminator(tf.concat(batches, 0), training=True), len(batches))
        codes = priors.draw_codes(tf.stop_gradient(real["q_logits"]), code_seed,
                                  self.config.code_sampling)
        x_hat = self.generator(self.prior.sample(codes, z_seed), training=True)
        fake = self.discriminator(x_hat, training=True)
        (all_codes,) = replicas.gather(codes)
        real_logit, real_q, fake_logit, fake_q = replicas.gather(
            real["logit"], real["q_logits"], fake["logit"], fake["q_logits"])
        d_nce = tf.constant(0.0)  # against negatives: logit D -> log p - log q
        if negative:
            (negative_logit,) = replicas.gather(negative[0]["logit"])
            d_nce = losses.real_fake_loss(real_logit, negative_logit)
        return x_hat, all_codes, {
            "d_real_fake": losses.real_fake_loss(real_logit, fake_logit),
            "d_nce": d_nce,
            "d_entropy": losses.binary_entropy(real_logit),
            "q_fake": losses.code_cross_entropy(fake_q, all_codes),
            "q_real": losses.mode_information_loss(real_q),
        }

    def generator_terms(self, x, x_hat, codes):
        """G's (and the prior's) loss terms for its samples x_hat of the global `codes`."""
        real, fake = networks.split_batches(self.discriminator(tf.concat([x, x_hat], 0)), 2)
        real_features, fake_features, fake_q, fake_density = replicas.gather(
            tf.stop_gradient(real["features"]), fake["features"], fake["q_logits"],
            self.reference.log_density(x_hat))
        return {
            "g_fm": losses.feature_matching_loss(fake_features, real_features),
            "g_pt": losses.pull_away_loss(fake_features),
            "g_kl": losses.low_density_loss(fake_density, self.reference.density_threshold),
            "g_mi": losses.code_cross_entropy(fake_q, codes),
            "g_sigma": self.prior.regularization(),
        }

