"""The mixture variant: D learns noise-contrastively against a BIC Gaussian mixture q.

D, trained to tell real rows from samples of q, estimates log p(x) - log q(x) (Gutmann &
Hyvarinen 2010), so logit D(x) + log q(x) is a log-density estimate that stays meaningful
far from the data, where D alone extrapolates. q's modes replace T in L_KL.
"""

from mmocgan_tf.model.references import mixtures
from mmocgan_tf.model.references.base import Reference, first_rows


class MixtureReference(Reference):
    """q = a fitted mixture; normality = logit D(x) + log q(x) (a log density); score = -it.

    Args (all variants'): config (a ModelConfig; its num_modes bounds the modes' mixture),
      num_features, seeds (unused: a mixture has no network).
    """

    def __init__(self, config, num_features, seeds, **kwargs):
        super().__init__(**kwargs)
        self.num_modes = int(config.num_modes)
        self.q = mixtures.Mixture(self.q_slots(), name="q")

    def q_slots(self):
        return self.num_modes

    def fit_q(self, rows, config):
        """q's arrays fitted to standardised rows."""
        return mixtures.fit_bic_arrays(rows, config.num_modes, config.reference_broad_weight,
                                       config.reference_broad_scale, config.seed)

    def build(self, input_shape):
        super().build(input_shape)
        self.q.build(input_shape)

    def fit_density(self, scaled, config, batch_size, steps_per_execution, strategy=None):
        rows = first_rows(scaled, mixtures.MAX_FIT_ROWS)
        self.fit_mixtures(rows, config)

    def fit_mixtures(self, rows, config):
        self.q.assign(self.fit_q(rows, config))

    def log_density(self, scaled):
        return self.q.log_prob(scaled)

    @property
    def mode_mixture(self):
        return self.q

    def log_q(self, scaled):
        """log q(x) of standardised rows, in chunks that bound memory for any q."""
        return self.q.log_prob_in_chunks(scaled)

    def negatives(self, n, seed):
        return self.q.sample(n, seed)

    def normality(self, scaled, d_logit):
        return d_logit + self.log_q(scaled)

    def score(self, normality):
        return -normality

    def normality_at_score(self, score):
        return -float(score)


class BICMixture(MixtureReference):
    """q = a full-covariance GMM of 1..num_modes components chosen by BIC, plus the broad one."""
