"""The density references of MMOC-GAN's variants, one object per variant.

ModelConfig.reference names the variant; make_reference is the one place that reads it.
"""

from mmocgan_tf.config import ConfigError
from mmocgan_tf.model.references.base import Reference
from mmocgan_tf.model.references.flow import FlowReference
from mmocgan_tf.model.references.gmm import BICMixture
from mmocgan_tf.model.references.local import LocalMixture
from mmocgan_tf.model.references.paper import TargetNetwork

__all__ = ["Reference", "BICMixture", "FlowReference", "LocalMixture", "TargetNetwork",
           "VARIANTS", "make_reference", "reference_class"]


VARIANTS = {"none": TargetNetwork, "gmm": BICMixture, "local": LocalMixture,
            "flow": FlowReference}


def reference_class(name):
    """The Reference class of a ModelConfig.reference value."""
    return VARIANTS[name]


def make_reference(config, num_features, seeds):
    """The Reference layer of config.reference: "gmm", "local", "flow" or "none" (T).

    Args:
      config: a validated ModelConfig.
      num_features: d.
      seeds: a random.Random for the initializers of any network the variant owns.

    Raises:
      ConfigError: threshold_rule="half" for a variant whose score is no probability.
    """
    reference = reference_class(config.reference)(config, num_features, seeds,
                                                  name="reference")
    if config.threshold_rule == "half" and not reference.score_is_probability:
        raise ConfigError("threshold_rule='half' needs reference=\"none\" (D(x) < 0.5 is no "
                          "rule for a log density)")
    return reference
