"""MMOCGAN: the multimodal one-class GAN as a Keras 3 model with a custom train_step.

`fit(x)` on normal data does the whole method: it learns the standardisation, trains the
target network T (a regular GAN's discriminator) and freezes it, derives eps_T, runs the
complementary GAN training of D, Q and G, and finally sets the decision threshold. The
model's output is the detector: an anomaly score, the decision and the learned mode.
"""

import dataclasses
import random

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf import losses, networks, noise, priors, reference, reinit, replicas, streaming
from mmocgan_tf.config import ModelConfig
from mmocgan_tf.preprocessing import Standardizer
from mmocgan_tf.running_means import RunningMeans
from mmocgan_tf.target import RegularGAN

_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
_LOGGED = ("d_loss", "g_loss", "d_real_fake", "d_nce", "d_entropy", "q_fake", "q_real",
           "g_fm", "g_pt", "g_kl", "g_mi", "g_sigma")


def _adam(learning_rate):
    return keras.optimizers.Adam(learning_rate)


@keras.saving.register_keras_serializable(package="mmocgan_tf")
class MMOCGAN(keras.Model):
    """Multimodal one-class GAN for anomaly detection on tabular data.

    Train it on normal rows only. Its output for raw (unscaled) rows x is a dict:
      logit: higher = more normal (scikit-learn's orientation). With a reference q ("gmm",
        the default, or "local") it is the log-density estimate logit D(x) + log q(x)
        (reference.py); with reference="none" (the paper) it is D's real/fake logit;
      score: higher = more anomalous: -logit with a reference; the paper's 1 - D(x) in
        [0, 1] without (computed as sigmoid(-logit), so float32 does not tie very normal
        rows at 0);
      is_anomaly: the decision of the configured rule (logit below threshold_logit);
      mode: argmax_c Q(c|x), the learned mode of the row;
      mode_probs: Q(c|x) [N, num_modes].

    Distributed training: build and compile the model inside `strategy.scope()`; fit may
    be called outside it. Each replica draws its own noise, and every loss term is computed
    over the global batch (all replicas' rows), so a batch means what it means on one
    device. With several replicas, steps_per_execution is 1 (a Keras limitation) and the
    first batch must split evenly over them.

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

        # === Layers ===
        self.standardizer = Standardizer(name="standardizer")
        self.prior = priors.make_prior(cfg.prior, cfg.num_modes, cfg.z_dim)
        self.generator = networks.build_generator(
            self.prior.output_dim, cfg.g_hidden, self.num_features)
        self.discriminator = networks.build_discriminator(
            self.num_features, cfg.d_hidden, cfg.num_modes)
        # The paper's target network T; the reference variant uses log q instead.
        self.target = None
        if cfg.reference == "none":
            self.target = networks.build_discriminator(
                self.num_features, cfg.d_hidden, name="target")
            self.target.trainable = False

        self.seed_generator = keras.random.SeedGenerator(cfg.seed)
        object.__setattr__(self, "_target_trainer", None)  # the regular GAN training T
        self._loss_means = RunningMeans(_LOGGED, name="loss_means")

    def build(self, input_shape=None):
        self.standardizer.build((None, self.num_features))
        cfg = self.config
        if cfg.reference != "none":
            # Mixture arrays (reference.py), set by prepare(): q, and with the local q also
            # the modes (the BIC mixture), whose density L_KL reads.
            self.reference_arrays = self._mixture_weights(
                "reference", reference.slots(cfg.reference, cfg.num_modes))
            if cfg.reference == "local":
                self.modes_arrays = self._mixture_weights("modes", cfg.num_modes)
        # eps_T (in T's logit, or in the modes' log density) and the decision threshold on the
        # "logit" output; a 0/1 flag once fit has prepared T or q.
        self.target_threshold_logit = self.add_weight(
            name="target_threshold_logit", shape=(), initializer="zeros", trainable=False)
        self.threshold_logit = self.add_weight(
            name="threshold_logit", shape=(), initializer="zeros", trainable=False)
        self.prepared = self.add_weight(
            name="prepared", shape=(), initializer="zeros", trainable=False)
        self.built = True

    def _mixture_weights(self, name, slots):
        m, d = slots + 1, self.num_features
        return (
            self.add_weight(name=f"{name}_logits", shape=(m,), initializer="zeros",
                            trainable=False),
            self.add_weight(name=f"{name}_loc", shape=(m, d), initializer="zeros",
                            trainable=False),
            self.add_weight(name=f"{name}_scale_tril", shape=(m, d, d), trainable=False,
                            initializer=lambda shape, dtype=None: tf.eye(
                                d, batch_shape=[m], dtype=dtype)))

    # === Keras plumbing ===

    def compile(self, d_optimizer=None, g_optimizer=None, steps_per_execution=16,
                jit_compile=False, **kwargs):
        """Args: one optimizer for D and Q, one for G and the prior (Adam 1e-3 each).

        steps_per_execution > 1 runs several training steps per compiled call (ignored, i.e.
        1, under a strategy with several replicas, where Keras cannot run it); XLA is off by
        default because it is slower than plain graphs on CPU at these sizes.
        """
        super().compile(optimizer=None, jit_compile=jit_compile, **kwargs,
                        steps_per_execution=replicas.steps_per_execution(
                            steps_per_execution, self.distribute_strategy))
        if not self.built:
            self.build((None, self.num_features))
        self.d_optimizer = d_optimizer or _adam(1e-3)
        self.g_optimizer = g_optimizer or _adam(1e-3)
        # Slots now, not in the first trace (which would then trace twice), and so that a
        # loaded model's saved optimizer state has somewhere to go.
        self.d_optimizer.build(self._d_variables())
        self.g_optimizer.build(self._g_variables())
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

    def get_config(self):
        config = super().get_config()
        config.update(num_features=self.num_features, feature_names=list(self.feature_names),
                      **dataclasses.asdict(self.config))
        return config

    @property
    def metrics(self):
        return [self._loss_means]

    def _d_variables(self):
        variables = self.discriminator.trainable_variables
        if not (self.config.weight_q_fake or self.config.weight_q_real):  # Q head unused
            unused = {id(v) for v in self.discriminator.get_layer("q").trainable_variables}
            variables = [v for v in variables if id(v) not in unused]
        return variables

    def _g_variables(self):
        return self.generator.trainable_variables + self.prior.trainable_variables

    # === Detection ===

    def call(self, x):
        scaled = self.standardizer(x)
        out = self.discriminator(scaled)
        logit = self._normality(scaled, out["logit"])
        score = tf.sigmoid(-logit) if self.config.reference == "none" else -logit
        return {
            "score": score,
            "logit": logit,
            "is_anomaly": logit < self.threshold_logit,
            "mode": tf.argmax(out["q_logits"], axis=-1, output_type=tf.int32),
            "mode_probs": tf.nn.softmax(out["q_logits"]),
        }

    # === Training ===

    def fit(self, x=None, y=None, batch_size=100, epochs=1, verbose="auto", threshold_x=None,
            **kwargs):
        """Trains on normal rows x (array [n, d] or a dataset of batches of raw rows).

        The first fit also learns the standardisation and trains and freezes the target
        network; later fits continue the GAN training. Labels are refused: MMOC-GAN is
        trained on normal data only. The threshold is set after training from threshold_x
        (default x; pass the rows themselves when x repeats them, since scoring the local
        q costs per row). The batch size defaults to the paper's 100.
        """
        if y is not None:
            raise ValueError("MMOCGAN trains on normal rows only; call fit(x) without labels.")
        if not self.compiled:
            raise ValueError("Call compile() before fit().")
        if _is_dataset(x):
            batch_size, data = None, x  # a dataset brings its own batches, shuffled or not
            kwargs.setdefault("shuffle", False)
        else:
            x = np.asarray(x, np.float32)
            first = min(batch_size, len(x))
            count = self.distribute_strategy.num_replicas_in_sync
            if first % count:
                # Keras cannot split an uneven first batch (its symbolic build adds up the
                # replicas' batches); later partial batches are fine.
                raise ValueError(f"a first batch of {first} rows cannot be split evenly over "
                                 f"{count} replicas; use a batch size divisible by {count}")
            # Seeded orders (a later fit continues them) from one pipeline: measured about
            # a fifth faster per step than Keras's own pipeline for arrays.
            data = streaming.array_batches(
                x, batch_size, [self.config.seed, int(self.d_optimizer.iterations.numpy())],
                shuffle=kwargs.pop("shuffle", True))
            kwargs["shuffle"] = False
        if not bool(self.prepared.numpy()):
            self.prepare(x, batch_size=batch_size)
        history = super().fit(data, epochs=epochs, verbose=verbose, **kwargs)
        self.set_threshold(x if threshold_x is None else threshold_x)
        return history

    def prepare(self, x, batch_size=100):
        """Learns the standardisation, fits q or trains the target network T, sets eps_T."""
        self.standardizer.adapt(x)
        scaled = self._standardize(x)
        cfg = self.config
        if cfg.reference != "none":
            rows = _rows(scaled, reference.MAX_FIT_ROWS)
            kinds = {"reference_arrays": cfg.reference, "modes_arrays": "gmm"}
            for name, kind in kinds.items():
                if hasattr(self, name):
                    arrays = reference.fit_reference(
                        rows, cfg.num_modes, cfg.reference_broad_weight,
                        cfg.reference_broad_scale, cfg.seed, kind)
                    for variable, value in zip(getattr(self, name), arrays, strict=True):
                        variable.assign(value)
            density = _logits(self._modes_log_density, scaled)
        else:
            if cfg.target_epochs:
                self.target.trainable = True
                gan = self._target_gan()
                batches = scaled if _is_dataset(scaled) else streaming.array_batches(
                    scaled, batch_size, cfg.seed + 1)
                gan.fit(batches, epochs=cfg.target_epochs, verbose=0, shuffle=False)
                self.target.trainable = False
            density = _logits(self._target_log_density, scaled)
        self.target_threshold_logit.assign(np.quantile(density, cfg.density_quantile))
        self.prepared.assign(1.0)

    def log_reference(self, scaled):
        """log q(x) of standardised rows under the reference mixture (any reference)."""
        return reference.log_prob_in_chunks(*self.reference_arrays, scaled)

    def _modes_log_density(self, scaled):
        """log q of the modes, the BIC mixture: L_KL's density and eps_T's."""
        return reference.log_prob(*getattr(self, "modes_arrays", self.reference_arrays), scaled)

    def _normality(self, scaled, d_logit):
        """The "logit" output: D's logit, or with a reference logit D + log q (log p)."""
        if self.config.reference == "none":
            return d_logit
        return d_logit + self.log_reference(scaled)

    def _target_log_density(self, scaled):
        """log T(x): the paper's density proxy for L_KL (reference="none")."""
        return -tf.nn.softplus(-self.target(scaled)["logit"])

    def _target_gan(self):
        """The regular GAN that trains T, built once so later fits reuse its traced step."""
        if self._target_trainer is None:
            cfg = self.config
            # It trains T's (possibly distributed) variables, so it is built under the
            # strategy this model was built under, wherever fit is called.
            with self.distribute_strategy.scope():
                gan = RegularGAN(
                    self.target,
                    networks.build_generator(cfg.z_dim, cfg.g_hidden, self.num_features),
                    z_dim=cfg.z_dim, seed=cfg.seed + 1)
                gan.compile(_adam(cfg.target_learning_rate), _adam(cfg.target_learning_rate),
                            steps_per_execution=self._compile_args["steps_per_execution"])
            # Not a sublayer: it is training machinery, never saved with the model.
            object.__setattr__(self, "_target_trainer", gan)
        return self._target_trainer

    def reinitialize(self, seed=None):
        """Returns the model to its untrained state, keeping its traced training steps.

        Weights, optimizer states, noise and batch orders become those of a fresh model built
        with `seed` (default: the configured seed) right after keras.utils.set_random_seed
        (seed), so a k-fold evaluation traces once, not k times.
        """
        if not self.compiled:
            raise ValueError("Call compile() before reinitialize().")
        seed = self.config.seed if seed is None else int(seed)
        # Keras seeds unseeded initializers from Python's random, as after
        # keras.utils.set_random_seed(seed); TensorFlow's global seed is left alone (nothing
        # here draws from it, and setting it clears the traced functions' caches).
        random.seed(seed)
        self.config = dataclasses.replace(self.config, seed=seed)
        fresh = MMOCGAN(self.num_features, self.feature_names, **dataclasses.asdict(self.config))
        fresh.build((None, self.num_features))
        reinit.copy_variables(self, fresh)
        for optimizer in (self.d_optimizer, self.g_optimizer):
            reinit.reset_optimizer(optimizer)
        if self._target_trainer is not None:
            fresh._compile_args = self._compile_args
            reinit.copy_variables(self._target_trainer, fresh._target_gan())
            for optimizer in (self._target_trainer.d_optimizer, self._target_trainer.g_optimizer):
                reinit.reset_optimizer(optimizer)
        if self.target is not None:
            self.target.trainable = False

    def set_threshold(self, x=None, rule=None, quantile=None, score=None):
        """Sets the decision threshold; no retraining needed.

        Args:
          x: normal training rows (never labelled anomalies), for the "quantile" rule.
          rule, quantile: override the configured threshold_rule / threshold_quantile.
          score: an explicit score threshold (in (0, 1) for the paper's 1 - D): rows scoring
            above it are anomalies.
        """
        if score is not None:
            if self.config.reference != "none":  # score = -logit
                self.threshold_logit.assign(-float(score))
                return
            if not 0.0 < score < 1.0:
                raise ValueError(f"score threshold {score} is not in (0, 1)")
            # score > s  <=>  sigmoid(-logit) > s  <=>  logit < log((1 - s) / s).
            self.threshold_logit.assign(float(np.log((1.0 - score) / score)))
            return
        rule = rule or self.config.threshold_rule
        quantile = self.config.threshold_quantile if quantile is None else quantile
        if rule == "half":
            self.threshold_logit.assign(0.0)
            return
        logits = _logits(lambda rows: self._normality(rows, self.discriminator(rows)["logit"]),
                         self._standardize(x))
        # score > its q-quantile  <=>  logit < its (1 - q)-quantile.
        self.threshold_logit.assign(np.quantile(logits, 1.0 - quantile))

    def generate(self, x, seed=0):
        """Complementary samples in raw feature units, one per row of x, with c ~ Q(c|x).

        They show where G puts its low-density samples around each mode (the paper's
        Figure 4); training draws them the same way.
        """
        q_logits = self.discriminator(self.standardizer(x))["q_logits"]
        code_seed, z_seed = tf.unstack(tf.constant([[seed, 0], [seed, 1]], tf.int32))
        codes = self._draw_codes(q_logits, code_seed)
        x_hat = self.generator(self.prior.sample(codes, z_seed))
        return (x_hat * self.standardizer.scale + self.standardizer.mean).numpy()

    def _standardize(self, x):
        if _is_dataset(x):
            return x.map(self.standardizer)
        return self.standardizer(x).numpy()

    def _draw_codes(self, q_logits, seed):
        if self.config.code_sampling == "argmax":
            return tf.argmax(q_logits, axis=-1, output_type=tf.int32)
        codes = tf.random.stateless_categorical(q_logits, 1, seed=seed, dtype=tf.int32)
        return codes[:, 0]

    def train_step(self, data):
        cfg = self.config
        x = data[0] if isinstance(data, (tuple, list)) else data
        x = self.standardizer(x)
        n = tf.shape(x)[0]
        code_seed, z_seed, reference_seed = noise.replica_seeds(self.seed_generator, 3)
        with_reference = cfg.reference != "none"
        scale = noise.loss_scale()

        # The generator's forward pass is shared by both updates: G is unchanged until its
        # own update, so x_hat is computed once under the generator's tape. Under
        # tf.distribute every loss term sees the global batch (replicas.gather; a no-op on
        # one device) and is scaled by 1 / replicas, as the optimizer sums replica gradients.
        with tf.GradientTape() as g_tape:
            # Discriminator and Q head.
            with tf.GradientTape() as d_tape:
                real = self.discriminator(x, training=True)
                codes = self._draw_codes(tf.stop_gradient(real["q_logits"]), code_seed)
                x_hat = self.generator(self.prior.sample(codes, z_seed), training=True)
                fake = self.discriminator(x_hat, training=True)
                (all_codes,) = replicas.gather(codes)
                real_logit, real_q, fake_logit, fake_q = replicas.gather(
                    real["logit"], real["q_logits"], fake["logit"], fake["q_logits"])
                d_nce = tf.constant(0.0)
                if with_reference:  # negatives drawn from q: logit D -> log p - log q
                    negatives = reference.sample(*self.reference_arrays, n, reference_seed)
                    (negative_logit,) = replicas.gather(
                        self.discriminator(negatives, training=True)["logit"])
                    d_nce = losses.real_fake_loss(real_logit, negative_logit)
                d_terms = {
                    "d_real_fake": losses.real_fake_loss(real_logit, fake_logit),
                    "d_nce": d_nce,
                    "d_entropy": losses.binary_entropy(real_logit),
                    "q_fake": losses.code_cross_entropy(fake_q, all_codes),
                    "q_real": losses.mode_information_loss(real_q),
                }
                d_loss = _weighted_sum(d_terms, {
                    "d_real_fake": cfg.weight_complement,
                    "d_nce": cfg.weight_nce * with_reference, "d_entropy": cfg.weight_d_entropy,
                    "q_fake": cfg.weight_q_fake, "q_real": cfg.weight_q_real})
                d_scaled = d_loss * scale
            with g_tape.stop_recording():
                variables = self._d_variables()
                self.d_optimizer.apply(d_tape.gradient(d_scaled, variables), variables)

            # Generator (and the mixture prior's mu, sigma), against the updated D.
            both = self.discriminator(tf.concat([x, x_hat], 0))
            # L_KL's density: log q with a reference, else the paper's log T.
            density = (self._modes_log_density(x_hat) if with_reference
                       else self._target_log_density(x_hat))
            real_features, fake_features, fake_q, fake_density = replicas.gather(
                tf.stop_gradient(both["features"][:n]), both["features"][n:],
                both["q_logits"][n:], density)
            g_terms = {
                "g_fm": losses.feature_matching_loss(fake_features, real_features),
                "g_pt": losses.pull_away_loss(fake_features),
                "g_kl": losses.low_density_loss(fake_density, self.target_threshold_logit),
                "g_mi": losses.code_cross_entropy(fake_q, all_codes),
                "g_sigma": self.prior.regularization(),
            }
            g_loss = _weighted_sum(g_terms, {
                "g_fm": cfg.weight_fm, "g_pt": cfg.weight_pt, "g_kl": cfg.weight_kl,
                "g_mi": cfg.weight_mi, "g_sigma": cfg.weight_sigma})
            g_scaled = g_loss * scale
        variables = self._g_variables()
        self.g_optimizer.apply(g_tape.gradient(g_scaled, variables), variables)

        self._loss_means.update_state({"d_loss": d_loss, "g_loss": g_loss, **d_terms, **g_terms})
        return replicas.step_logs(self._loss_means.result())


def _is_dataset(x):
    return isinstance(x, tf.data.Dataset)


def _logits(function, scaled, chunk=8192):
    """function(rows) for standardised rows (array or dataset), eagerly in chunks.

    Eager calls avoid tracing a predict function for every new input size.
    """
    if not _is_dataset(scaled):
        scaled = [scaled[i:i + chunk] for i in range(0, len(scaled), chunk)]
    return np.concatenate([function(batch).numpy() for batch in scaled])


def _rows(scaled, limit):
    """The rows of an array, or up to `limit` rows from the batches of a dataset."""
    if not _is_dataset(scaled):
        return scaled
    parts, count = [], 0
    for batch in scaled.as_numpy_iterator():
        parts.append(batch)
        count += len(batch)
        if count >= limit:
            break
    return np.concatenate(parts)


def _weighted_sum(terms, weights):
    """Sum of weight * term over the terms whose weight is not 0 (0 switches a term off)."""
    total = tf.constant(0.0)
    for name, value in terms.items():
        if weights[name]:
            total += weights[name] * value
    return total
