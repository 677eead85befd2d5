"""A regular GAN's discriminator as the detector (the paper's "RGAN" baseline).

D is trained against an ordinary generator on the normal rows; the score is 1 - D(x).
The model is the RegularGAN that trains MMOC-GAN's target network T, with the same
networks.
"""

import random

import keras

from mmocgan_tf.config import ModelConfig
from mmocgan_tf.evaluation.baselines.base import KerasDetector, one_minus_d
from mmocgan_tf.model import networks
from mmocgan_tf.model.references.regular_gan import RegularGAN

_PAPER = ModelConfig()


class RGANDetector(KerasDetector):
    name = "rgan"
    is_gan = True

    def __init__(self, epochs=300, z_dim=_PAPER.z_dim, d_hidden=_PAPER.d_hidden,
                 g_hidden=_PAPER.g_hidden, learning_rate=1e-3, **kwargs):
        super().__init__(epochs=epochs, **kwargs)
        self.z_dim = int(z_dim)
        self.d_hidden = tuple(d_hidden)
        self.g_hidden = tuple(g_hidden)
        self.learning_rate = float(learning_rate)

    def build_model(self, num_features, seed):
        seeds = random.Random(seed)  # the initializers of a fresh model seeded with seed
        gan = RegularGAN(
            networks.build_discriminator(num_features, self.d_hidden, seeds=seeds),
            networks.build_generator(self.z_dim, self.g_hidden, num_features, seeds=seeds),
            z_dim=self.z_dim, seed=seed)
        gan.compile(keras.optimizers.Adam(self.learning_rate),
                    keras.optimizers.Adam(self.learning_rate),
                    steps_per_execution=self.steps_per_execution)
        return gan

    def anomaly_score(self, x):
        return one_minus_d(self.model_.predict(x, batch_size=4096, verbose=0))
