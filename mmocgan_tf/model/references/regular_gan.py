"""A regular GAN, whose trained discriminator is MMOC-GAN's target network T.

T estimates where the normal data lie: OCAN's complementary generator is pushed out of the
region where T is at least eps_T. The paper trains T as an ordinary GAN's discriminator on
the normal data and then freezes it (trained for many epochs, not OCAN's single step).
"""

import keras
import tensorflow as tf

from mmocgan_tf.model import replicas


class RegularGAN(keras.Model):
    """Non-saturating GAN (Goodfellow et al. 2014) on standardised data.

    Args:
      discriminator: model from networks.build_discriminator (its "logit" output is used).
      generator: model from networks.build_generator taking z of size z_dim.
      z_dim: size of the generator's noise input.
      seed: seeds the noise.
    """

    def __init__(self, discriminator, generator, z_dim, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.generator = generator
        self.z_dim = z_dim
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, steps_per_execution=1, **kwargs):
        steps_per_execution = replicas.steps_per_execution(
            steps_per_execution, self.distribute_strategy)
        super().compile(optimizer=None, steps_per_execution=steps_per_execution, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Slots now, so the first trace of train_step is the only one.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, x):
        return self.discriminator(x)["logit"]

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        n = tf.shape(x)[0]
        d_seed, g_seed = replicas.replica_seeds(self.seed_generator, 2)
        scale = replicas.loss_scale()

        with tf.GradientTape() as tape:
            x_hat = self.generator(tf.random.stateless_normal([n, self.z_dim], seed=d_seed))
            logits = self.discriminator(tf.concat([x, x_hat], 0), training=True)["logit"]
            # The global batch's means (no-op on one device), see replicas.gather.
            real, fake = replicas.gather(logits[:n], logits[n:])
            d_loss = tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))
            scaled = d_loss * scale
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled, variables), variables)

        with tf.GradientTape() as tape:
            x_hat = self.generator(tf.random.stateless_normal([n, self.z_dim], seed=g_seed),
                                   training=True)
            (fake,) = replicas.gather(self.discriminator(x_hat)["logit"])
            g_loss = tf.reduce_mean(tf.nn.softplus(-fake))
            scaled = g_loss * scale
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return replicas.step_logs({m.name: m.result() for m in self.metrics})
