"""OC-NN (Chalapathy, Menon & Chawla 2018, "Anomaly Detection using One-Class Neural Networks").

A one-class objective on a one-hidden-layer network, y_hat(x) = <w, g(V e(x))>, where e is
the encoder of an autoencoder pretrained on the normal rows (the paper's two stages: the
encoder is copied into OC-NN and trained further with the OC-NN objective, not frozen):

    min_{w, V, r}  0.5 ||w||^2 + 0.5 ||V||_F^2 + (1 / nu) mean_n max(0, r - y_hat(x_n)) - r.

Training alternates as in the paper's Algorithm 1: one epoch of backpropagation on the
network with r fixed, then r <- the nu-quantile of y_hat over all training rows, the exact
minimiser of the objective in r. r is a non-trainable variable set by a callback at the
start of training and after every epoch (one predict pass over the training rows). The
anomaly score is r - y_hat (the paper's decision value y_hat - r, negated): > 0 for the
nu fraction of training rows the hyperplane leaves out.

Defaults: h = 32 hidden units (the authors' code), g = sigmoid (the paper reports linear
and sigmoid; with linear g, y_hat is linear in the code and sees a single direction),
nu = 0.1 (the authors' code uses 0.04 on its synthetic data). The paper does not fix the
autoencoder or the optimiser for tabular data: here a ReLU encoder (64 units, a code of half
the features) mirrored by the decoder, Adam(1e-3), and half of the epoch budget for the
pretraining. V and w have no biases, as in the objective; the encoder is not regularised.

Nothing in the objective lowers y_hat away from the training rows (a hyperplane in
features that saturate, unlike the OC-SVM's RBF features that vanish far away): on
standardised blobs, rows 8 standard deviations away in most directions get a higher
y_hat, i.e. look more normal, than the training rows.
"""

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf.evaluation import reinit
from mmocgan_tf.evaluation.baselines.base import KerasDetector, fit_passes
from mmocgan_tf.model import replicas


class OneClassNetwork(keras.Model):
    """y_hat = head(encoder(x)), trained with the OC-NN objective; r is a model variable.

    Args:
      encoder: maps x [N, d] to the code [N, c]; shared with `autoencoder`.
      head: maps the code to y_hat [N] (layers "V" and "w", no biases).
      autoencoder: encoder + decoder, compiled separately for the pretraining.
      nu: the fraction of training rows allowed below r.
    """

    def __init__(self, encoder, head, autoencoder, nu, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head
        self.autoencoder = autoencoder
        self.nu = float(nu)
        self.r = self.add_weight(shape=(), initializer="zeros", trainable=False, name="r")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def compile(self, optimizer, steps_per_execution=1, **kwargs):
        steps_per_execution = replicas.steps_per_execution(
            steps_per_execution, self.distribute_strategy)
        super().compile(optimizer=optimizer, steps_per_execution=steps_per_execution, **kwargs)
        # Slots now, so the first trace of train_step is the only one.
        optimizer.build(self._trained_variables())

    def _trained_variables(self):
        return self.encoder.trainable_variables + self.head.trainable_variables

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, x, training=False):
        return self.head(self.encoder(x, training=training), training=training)

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            (y_hat,) = replicas.gather(self(x, training=True))
            norms = sum(0.5 * tf.reduce_sum(tf.square(v)) for v in self.head.trainable_variables)
            loss = norms + tf.reduce_mean(tf.nn.relu(self.r - y_hat)) / self.nu - self.r
            scaled = loss * replicas.loss_scale()
        variables = self._trained_variables()
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        return replicas.step_logs({"loss": self.loss_tracker.result()})


class _SetR(keras.callbacks.Callback):
    """r <- the nu-quantile of y_hat over the training rows, before training and per epoch."""

    def __init__(self, x, batch_size):
        super().__init__()
        self.x = x
        self.batch_size = batch_size

    def on_train_begin(self, logs=None):
        self._set_r()

    def on_epoch_end(self, epoch, logs=None):
        self._set_r()

    def _set_r(self):
        y_hat = self.model.predict(self.x, batch_size=self.batch_size, verbose=0)
        self.model.r.assign(np.quantile(y_hat.astype(np.float64), self.model.nu))


class OCNNDetector(KerasDetector):
    """OC-NN on an autoencoder's code; score r - y_hat.

    Args (besides KerasDetector's epochs, batch_size, steps_per_execution):
      epochs: all epochs: the autoencoder's pretraining plus OC-NN's.
      nu: the paper's nu, in (0, 1].
      hidden_units: h, the width of the hidden layer g(V .).
      activation: g, "sigmoid" or "linear" (the paper's two).
      encoder_hidden: widths of the autoencoder's ReLU layers before the code.
      code_size: width of the code (None: half the features, at least 1).
      pretrain_fraction: share of the epochs spent pretraining the autoencoder (0: none,
        OC-NN then trains the randomly initialised encoder directly).
      learning_rate: Adam's, for both stages.
    """

    name = "ocnn_network"

    def __init__(self, epochs=200, nu=0.1, hidden_units=32, activation="sigmoid",
                 encoder_hidden=(64,), code_size=None, pretrain_fraction=0.5,
                 learning_rate=1e-3, **kwargs):
        super().__init__(epochs=epochs, **kwargs)
        if not 0.0 < float(nu) <= 1.0:
            raise ValueError(f"nu must be in (0, 1], got {nu}")
        if activation not in ("sigmoid", "linear"):
            raise ValueError(f"activation must be 'sigmoid' or 'linear', got {activation!r}")
        if not 0.0 <= float(pretrain_fraction) < 1.0:
            raise ValueError(f"pretrain_fraction must be in [0, 1), got {pretrain_fraction}")
        self.nu = float(nu)
        self.hidden_units = int(hidden_units)
        self.activation = activation
        self.encoder_hidden = tuple(int(w) for w in encoder_hidden)
        self.code_size = None if code_size is None else int(code_size)
        self.pretrain_fraction = float(pretrain_fraction)
        self.learning_rate = float(learning_rate)

    def build_model(self, num_features, seed):
        code_size = self.code_size or max(1, num_features // 2)
        x = keras.Input((num_features,))
        h = x
        for width in self.encoder_hidden:
            h = keras.layers.Dense(width, activation="relu")(h)
        encoder = keras.Model(x, keras.layers.Dense(code_size)(h), name="encoder")

        code = keras.Input((code_size,))
        h = code
        for width in reversed(self.encoder_hidden):
            h = keras.layers.Dense(width, activation="relu")(h)
        decoder = keras.Model(code, keras.layers.Dense(num_features)(h), name="decoder")

        autoencoder = keras.Model(x, decoder(encoder(x)), name="autoencoder")
        autoencoder.compile(keras.optimizers.Adam(self.learning_rate), loss="mse",
                            steps_per_execution=replicas.steps_per_execution(
                                self.steps_per_execution, autoencoder.distribute_strategy))

        hidden = keras.layers.Dense(self.hidden_units, activation=self.activation,
                                    use_bias=False, name="V")(code)
        y_hat = keras.layers.Reshape(())(keras.layers.Dense(1, use_bias=False, name="w")(hidden))
        head = keras.Model(code, y_hat, name="head")

        model = OneClassNetwork(encoder, head, autoencoder, nu=self.nu)
        model.compile(keras.optimizers.Adam(self.learning_rate),
                      steps_per_execution=self.steps_per_execution)
        return model

    def fit(self, x, seed=0):
        self.start_fit(x.shape[1], seed)
        model = self.model_
        reinit.reset_optimizer(model.autoencoder.optimizer)  # start_fit resets model_'s only
        epochs = self.epochs_for(len(x))
        pretrain_epochs = min(int(round(epochs * self.pretrain_fraction)), epochs - 1)
        if pretrain_epochs:
            fit_passes(model.autoencoder, x, pretrain_epochs, self.batch_size, y=x)
        fit_passes(model, x, epochs - pretrain_epochs, self.batch_size,
                   callbacks=[_SetR(x, batch_size=4096)])
        return self

    def anomaly_score(self, x):
        y_hat = self.model_.predict(x, batch_size=4096, verbose=0).astype(np.float64)
        return float(self.model_.r.numpy()) - y_hat
