"""MMOC-GAN itself as a benchmark method (mmocgan_cat, mmocgan_mix)."""

import dataclasses

import keras

from mmocgan_tf.config import ModelConfig
from mmocgan_tf.evaluation import reinit
from mmocgan_tf.evaluation.baselines.base import KerasDetector, passes_per_epoch, tiled
from mmocgan_tf.model.mmocgan import MMOCGAN
from mmocgan_tf.model.references import reference_class

_OPTIONS = set(ModelConfig.__dataclass_fields__) - {"seed"}


class MMOCGANMethod(KerasDetector):
    """MMOCGAN with the given ModelConfig fields; later fits reuse the traced model.

    The score is the model's own (MMOCGAN's "score" output). With train_steps, the target
    network's phase gets the same step budget.
    """

    name = "mmocgan"

    def __init__(self, epochs=300, batch_size=100, steps_per_execution=16, train_steps=None,
                 **model_options):
        super().__init__(epochs, batch_size, steps_per_execution, train_steps)
        unknown = sorted(set(model_options) - _OPTIONS)
        if unknown:
            raise TypeError(f"unknown MMOCGAN option(s) {unknown}")
        config = ModelConfig(**model_options).validate()  # one-line error before training
        self.model_options = model_options
        # A score 1 - D(x): the "half" rule applies, and T trains on the tiled rows.
        self.is_gan = reference_class(config.reference).score_is_probability

    def fit(self, x, seed=0):
        batch_size = min(self.batch_size, len(x))
        if self.model_ is None or self.model_.num_features != x.shape[1]:
            keras.utils.set_random_seed(seed)
            self.model_ = MMOCGAN(num_features=x.shape[1],
                                  **{**self.model_options, "seed": seed})
            self.model_.compile(steps_per_execution=self.steps_per_execution)
        else:
            reinit.reinitialize_mmocgan(self.model_, seed)
        # Passes grouped into longer epochs (base.fit_passes), for T's phase too: with
        # train_steps, T gets the same budget as the GAN.
        epochs = self.epochs_for(len(x))
        target_epochs = self.model_options.get("target_epochs", ModelConfig.target_epochs)
        if self.train_steps is not None and target_epochs:
            target_epochs = epochs
        group = passes_per_epoch(len(x), batch_size)
        target_epochs = target_epochs and max(1, round(target_epochs / group))
        self.model_.config = dataclasses.replace(self.model_.config, target_epochs=target_epochs)
        if not self.is_gan:
            # q on the rows themselves: its BIC would take the tiled copies for more data
            # (a smaller penalty per component), and EM would pay for every copy.
            self.model_.prepare(x, batch_size=batch_size)
        self.model_.fit(tiled(x, group), epochs=max(1, round(epochs / group)),
                        batch_size=batch_size, verbose=0, threshold_x=x)
        return self

    def anomaly_score(self, x):
        return self.model_.predict(x, batch_size=4096, verbose=0)["score"].astype("float64")
