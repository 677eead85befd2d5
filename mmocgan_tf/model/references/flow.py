"""The flow variant: q is a normalizing flow (flows.py), alone or mixed with the BIC mixture.

A few Gaussians are too coarse where the normal class is curved or many-featured, and
neighbour methods win there; a flow follows such shapes, and D's noise-contrastive
correction works on top of it as on a mixture. The flow's base is N(0, I), with the broad
Gaussian beside it (share b), or the BIC mixture, which the flow then starts from and
refines (the mixture has its own broad component). With reference_flow_share = s < 1,

    q = s flow_part + (1 - s) mixture,

the mixture being the gmm variant's q, so modes that stand apart keep their Gaussians.
L_KL, eps_T and the explanations read that mixture.
"""

import numpy as np
import tensorflow as tf

from mmocgan_tf.model.references import flows, mixtures
from mmocgan_tf.model.references.base import first_rows
from mmocgan_tf.model.references.gmm import MixtureReference


class FlowReference(MixtureReference):
    """q = the flow part, shared with the mixture by reference_flow_share; see the module."""

    def __init__(self, config, num_features, seeds, **kwargs):
        super().__init__(config, num_features, seeds, **kwargs)
        self.over_mixture = config.reference_flow_base == "mixture"
        self.flow = flows.Flow(num_features, seeds, identity_start=self.over_mixture,
                               name="flow")
        self.share = float(config.reference_flow_share)
        # The broad Gaussian beside a flow over N(0, I); a mixture base has its own.
        self.broad_weight = 0.0 if self.over_mixture else float(config.reference_broad_weight)
        self.broad_scale = float(config.reference_broad_scale)

    def build(self, input_shape):
        super().build(input_shape)
        self.flow.build(input_shape)

    @property
    def base(self):
        """The flow's base density: the mixture q, or None for N(0, I)."""
        return self.q if self.over_mixture else None

    def fit_density(self, scaled, config, batch_size, steps_per_execution, strategy=None):
        rows = first_rows(scaled, mixtures.MAX_FIT_ROWS)  # one read of a dataset for both
        self.fit_mixtures(rows, config)
        self.flow.fit(np.asarray(rows, np.float32), config.seed, config.reference_flow_steps,
                      self.base, steps_per_execution, strategy)

    def log_q(self, scaled):
        terms = [np.log(self.share * (1 - self.broad_weight))
                 + self.flow.log_prob(scaled, self.base)]
        if self.broad_weight:
            terms.append(np.log(self.share * self.broad_weight)
                         + flows.normal_log_prob(scaled, self.broad_scale))
        if self.share < 1:
            terms.append(np.log1p(-self.share) + super().log_q(scaled))
        return terms[0] if len(terms) == 1 else tf.reduce_logsumexp(tf.stack(terms), axis=0)

    def negatives(self, n, seed):
        """Rows of q: each from the flow's pool, the broad Gaussian or the mixture.

        Only the parts with a share are sampled (the default flow has one part).
        """
        pick_seed, flow_seed, broad_seed, mixture_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4))
        d = self.flow.pool.shape[1]
        parts = [(self.share * (1 - self.broad_weight),
                  lambda: self.flow.negatives(n, flow_seed)),
                 (self.share * self.broad_weight,
                  lambda: self.broad_scale * tf.random.stateless_normal([n, d], broad_seed)),
                 (1 - self.share, lambda: super(FlowReference, self).negatives(n, mixture_seed))]
        parts = [(share, draw) for share, draw in parts if share > 0]
        if len(parts) == 1:
            return parts[0][1]()
        candidates = tf.stack([draw() for _, draw in parts], axis=1)  # [n, parts, d]
        logits = np.log([share for share, _ in parts]).astype(np.float32)
        source = tf.random.stateless_categorical(logits[None], n, pick_seed)[0]
        return tf.gather(candidates, source, batch_dims=1)
