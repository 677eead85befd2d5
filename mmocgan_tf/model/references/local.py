"""The local variant: q of many small Gaussians, one per neighbourhood of training rows.

Such a q follows curved modes and the uneven spread of rows within a mode, where a few
Gaussians are too coarse. L_KL and eps_T keep the mixture variant's density, the BIC
mixture of the modes.
"""

from mmocgan_tf.model.references import mixtures
from mmocgan_tf.model.references.gmm import MixtureReference


class LocalMixture(MixtureReference):
    """q = the local mixture; L_KL and eps_T read `modes`, a BIC mixture of num_modes."""

    def __init__(self, config, num_features, seeds, **kwargs):
        super().__init__(config, num_features, seeds, **kwargs)
        self.modes = mixtures.Mixture(self.num_modes, name="modes")

    def build(self, input_shape):
        super().build(input_shape)
        self.modes.build(input_shape)

    def q_slots(self):
        return mixtures.LOCAL_COMPONENTS

    def fit_q(self, rows, config):
        return mixtures.fit_local_arrays(rows, config.reference_broad_weight,
                                         config.reference_broad_scale, config.seed)

    def fit_mixtures(self, rows, config):
        super().fit_mixtures(rows, config)
        self.modes.assign(super().fit_q(rows, config))  # the mixture variant's q

    def log_density(self, scaled):
        return self.modes.log_prob(scaled)

    @property
    def mode_mixture(self):
        return self.modes
