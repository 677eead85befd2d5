"""The paper's variant: a target network T, the discriminator of a regular GAN.

T estimates where the normal data lie: OCAN's complementary generator is pushed out of the
region where T is at least eps_T. The paper trains T as an ordinary GAN's discriminator on
the normal data and then freezes it. D learns from G's samples only, and the score is the
paper's 1 - D(x).
"""

import keras
import numpy as np
import tensorflow as tf

from mmocgan_tf.data import pipeline
from mmocgan_tf.model import networks
from mmocgan_tf.model.references.base import Reference, is_dataset
from mmocgan_tf.model.references.regular_gan import RegularGAN


class TargetNetwork(Reference):
    """log T(x) is the density; normality = D's logit; score = 1 - D(x) = sigmoid(-logit).

    The score is computed as sigmoid(-logit), so float32 does not tie very normal rows at 0.

    Args:
      config, num_features: T's shape is D's (config.d_hidden), without the Q head.
      seeds: a random.Random drawing the initializers' seeds (networks.py); its state goes
        on to the regular GAN's generator when fit first builds it.
    """

    score_is_probability = True

    def __init__(self, config, num_features, seeds, **kwargs):
        super().__init__(**kwargs)
        self.target = networks.build_discriminator(num_features, config.d_hidden,
                                                   name="target", seeds=seeds)
        self.target.trainable = False
        # Training machinery, never saved with the model: set with object.__setattr__ so
        # Keras does not track it.
        object.__setattr__(self, "_seeds", seeds)
        object.__setattr__(self, "_trainer", None)

    @property
    def trainer(self):
        return self._trainer

    def fit_density(self, scaled, config, batch_size, steps_per_execution, strategy=None):
        if not config.target_epochs:
            return
        self.target.trainable = True
        gan = self.make_trainer(config, steps_per_execution, strategy)
        batches = scaled if is_dataset(scaled) else pipeline.array_batches(
            scaled, batch_size, config.seed + 1)
        gan.fit(batches, epochs=config.target_epochs, verbose=0, shuffle=False)
        self.target.trainable = False

    def make_trainer(self, config, steps_per_execution=1, strategy=None):
        """The regular GAN that trains T, built once so later fits reuse its traced step.

        It trains T's (possibly distributed) variables, so it is built under the strategy
        the model was built under.
        """
        if self._trainer is None:
            strategy = strategy or tf.distribute.get_strategy()
            with strategy.scope():
                num_features = self.target.input_shape[-1]
                generator = networks.build_generator(config.z_dim, config.g_hidden, num_features,
                                                     seeds=self._seeds)
                gan = RegularGAN(self.target, generator, z_dim=config.z_dim, seed=config.seed + 1)
                gan.compile(keras.optimizers.Adam(config.target_learning_rate),
                            keras.optimizers.Adam(config.target_learning_rate),
                            steps_per_execution=steps_per_execution)
            object.__setattr__(self, "_trainer", gan)
        return self._trainer

    def log_density(self, scaled):
        return -tf.nn.softplus(-self.target(scaled)["logit"])

    def normality(self, scaled, d_logit):
        return d_logit

    def score(self, normality):
        return tf.sigmoid(-normality)

    def normality_at_score(self, score):
        if not 0.0 < score < 1.0:
            raise ValueError(f"score threshold {score} is not in (0, 1)")
        # score > s  <=>  sigmoid(-logit) > s  <=>  logit < log((1 - s) / s).
        return float(np.log((1.0 - score) / score))
