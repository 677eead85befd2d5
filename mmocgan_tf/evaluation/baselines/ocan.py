"""OCAN (Zheng et al. 2018): the one-class complementary GAN, i.e. MMOC-GAN without modes.

OCAN's discriminator (real/fake with the entropy term) and its complementary generator
(feature matching, pull-away, low density under a regular GAN's discriminator T) are
exactly MMOC-GAN's with a single mode and the mode terms (Q on real and generated data,
L_MI) switched off, so it runs on the same model and training step.
"""

from mmocgan_tf.evaluation.baselines.mmocgan import MMOCGANMethod

NO_MODES = dict(num_modes=1, weight_q_fake=0.0, weight_q_real=0.0, weight_mi=0.0,
                reference="none")


class OCANDetector(MMOCGANMethod):
    name = "ocan"

    def __init__(self, epochs=300, **options):
        options = {k: v for k, v in options.items() if k != "prior"}
        super().__init__(epochs=epochs, prior="cat", **{**options, **NO_MODES})
