"""Typed configuration: one dataclass for the model, one for a training run.

Field names are the MMOCGAN constructor's argument names and the CLI's flag names, so a
flagfile, a config.json and Python code all speak the same words.
"""

import dataclasses
import json

PRIORS = ("cat", "mix")
REFERENCES = ("none", "gmm", "local", "flow")
FLOW_BASES = ("normal", "mixture")
CODE_SAMPLING = ("sample", "argmax")
THRESHOLD_RULES = ("quantile", "half")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


class ConfigError(ValueError):
    """A configuration value is out of range; the message is one line naming the field."""


@dataclasses.dataclass
class ModelConfig:
    """Hyper-parameters of MMOCGAN: the paper's values, plus the default reference="flow".

    reference="none" gives the paper's method exactly (configs/paper.flags).

    Attributes:
      num_modes: m, the number of latent modes of the normal class.
      prior: "cat" (phi_cat = concat(z, one_hot(c))) or "mix" (phi_mix = mu_c + sigma_c z).
      z_dim: size of the noise vector z.
      d_hidden: widths of the discriminator's shared hidden layers (the last is f(x)).
      g_hidden: widths of the generator's hidden layers.
      target_epochs: epochs of the regular GAN whose discriminator becomes the target T.
      target_learning_rate: Adam learning rate of that regular GAN.
      code_sampling: draw c_x ~ Q(c|x) ("sample") or take its argmax.
      weight_d_entropy: w_ent of D's binary entropy on real data (OCAN's 1.85).
      weight_q_fake: Q's cross-entropy on generated samples (InfoGAN).
      weight_q_real: Q's -I(x; c) term on real data (the paper's "+H(c_x)").
      weight_fm: the generator's feature matching L_fm.
      weight_pt: the generator's pull-away term L_pt.
      weight_kl: the generator's low-density term L_KL (uses T and eps_T).
      weight_mi: the generator's code term L_MI = CE(Q(c|x_hat), c).
      weight_sigma: lambda of L_sigma (phi_mix only).
      density_quantile: q; eps_T is the q-quantile of T (or of log q) on the training data.
      threshold_rule: "quantile" (score above its training quantile) or "half" (D(x) < 0.5).
      threshold_quantile: quantile of the training scores used by the "quantile" rule.
      reference: "gmm" trains D noise-contrastively against a reference density q (a BIC
        Gaussian mixture of at most num_modes components plus a broad Gaussian, see
        mmocgan_tf/model/references/) and scores -(logit D(x) + log q(x)); log q also
        replaces T in L_KL, so no target network is trained. "flow" (the default) does
        the same with q a masked autoregressive flow (TFP bijectors) over that mixture,
        shared with it by reference_flow_share; L_KL keeps the mixture. "local" does the
        same with a q of many local Gaussians (each the spread of one neighbourhood of
        training rows), while L_KL keeps the BIC mixture's log density. "none" is the
        paper's method (score 1 - D(x)).
      reference_broad_weight: the broad Gaussian's share of q (the "local" variant as
        measured uses 0).
      reference_broad_scale: its standard deviation, in standardised units.
      reference_flow_share: the flow's share of q with reference="flow" (the rest is the
        BIC mixture).
      reference_flow_steps: Adam steps of the flow's maximum-likelihood fit.
      reference_flow_base: the flow's base density: "mixture" (the BIC mixture, which the
        flow then starts from and refines) or "normal" (N(0, I)).
      weight_nce: D's noise-contrastive loss against samples of q (not with "none").
      weight_complement: D's loss on the generator's complementary samples (the paper's
        real/fake term, weight 1 in the paper).
      seed: seeds the training noise, and the weights where the CLI or estimator builds them.

    Every weight_* is a loss weight (formulas in losses.py); 0 switches the term off.
    """

    num_modes: int = 10
    prior: str = "cat"
    z_dim: int = 50
    d_hidden: tuple = (128, 128)
    g_hidden: tuple = (128,)
    target_epochs: int = 100
    target_learning_rate: float = 1e-3
    code_sampling: str = "sample"
    weight_d_entropy: float = 1.85
    weight_q_fake: float = 1.0
    weight_q_real: float = 1.0
    weight_fm: float = 1.0
    weight_pt: float = 1.0
    weight_kl: float = 1.0
    weight_mi: float = 1.0
    weight_sigma: float = 0.03
    density_quantile: float = 0.005
    threshold_rule: str = "quantile"
    threshold_quantile: float = 0.995
    reference: str = "flow"
    reference_broad_weight: float = 0.1
    reference_broad_scale: float = 2.0
    reference_flow_share: float = 1.0
    reference_flow_steps: int = 3000
    reference_flow_base: str = "mixture"
    weight_nce: float = 1.0
    weight_complement: float = 1.0
    seed: int = 0

    def validate(self):
        _check(self.num_modes >= 1, "num_modes", self.num_modes, "must be >= 1")
        _check(self.prior in PRIORS, "prior", self.prior, f"must be one of {PRIORS}")
        _check(self.z_dim >= 1, "z_dim", self.z_dim, "must be >= 1")
        for name in ("d_hidden", "g_hidden"):
            widths = tuple(getattr(self, name))
            _check(len(widths) >= 1 and all(int(w) >= 1 for w in widths), name, widths,
                   "must be one or more positive widths")
        _check(self.target_epochs >= 0, "target_epochs", self.target_epochs, "must be >= 0")
        _check(self.target_learning_rate > 0, "target_learning_rate",
               self.target_learning_rate, "must be > 0")
        _check(self.code_sampling in CODE_SAMPLING, "code_sampling", self.code_sampling,
               f"must be one of {CODE_SAMPLING}")
        for field in dataclasses.fields(self):
            if field.name.startswith("weight_"):
                value = getattr(self, field.name)
                _check(value >= 0, field.name, value, "must be >= 0")
        _check(0 < self.density_quantile < 1, "density_quantile", self.density_quantile,
               "must be in (0, 1)")
        _check(self.threshold_rule in THRESHOLD_RULES, "threshold_rule",
               self.threshold_rule, f"must be one of {THRESHOLD_RULES}")
        _check(0 < self.threshold_quantile < 1, "threshold_quantile",
               self.threshold_quantile, "must be in (0, 1)")
        _check(self.reference in REFERENCES, "reference", self.reference,
               f"must be one of {REFERENCES}")
        _check(0 <= self.reference_broad_weight < 1, "reference_broad_weight",
               self.reference_broad_weight, "must be in [0, 1)")
        _check(self.reference_broad_scale > 0, "reference_broad_scale",
               self.reference_broad_scale, "must be > 0")
        _check(0 < self.reference_flow_share <= 1, "reference_flow_share",
               self.reference_flow_share, "must be in (0, 1]")
        _check(self.reference_flow_steps >= 1, "reference_flow_steps",
               self.reference_flow_steps, "must be >= 1")
        _check(self.reference_flow_base in FLOW_BASES, "reference_flow_base",
               self.reference_flow_base, f"must be one of {FLOW_BASES}")
        return self


@dataclasses.dataclass
class TrainConfig:
    """One training run of the CLI: data, optimisation and where results go.

    Attributes:
      data: a CSV/.npz/.npy/.parquet path, "bundled:thyroid" or "synthetic:production_line".
      workdir: folder for config.json, model.keras, metrics.json and TensorBoard logs.
      export_dir: if set, also export a SavedModel version there (e.g. saved_models/NAME).
      feature_columns: CSV/Parquet columns to use, in order (empty = all but the label).
      label_column: optional column of labels; rows != normal_label are held out.
      normal_label: the label value of normal rows.
      holdout_fraction: share of normal rows held out for evaluation when labels exist.
      epochs: training epochs of the MMOC-GAN (the paper uses 1000).
      batch_size: minibatch size (the paper uses 100).
      d_learning_rate: Adam learning rate of the discriminator and Q head.
      g_learning_rate: Adam learning rate of the generator (and phi_mix's mu, sigma).
      steps_per_execution: training steps per compiled call (removes per-step overhead).
      verbose: progress output (0 quiet, 1 one live progress line, 2 Keras's line per epoch).
      strategy: auto (mirrored if > 1 GPU), one_device, mirrored or multi_worker (TF_CONFIG).
      cpu_replicas: N >= 2 logical CPUs to mirror over (strategy=mirrored, no GPU); 0 = off.
      cluster_timeout: seconds a multi_worker task waits for all TF_CONFIG tasks to join.
      intra_op_threads: threads one TensorFlow op may use (0 = TensorFlow's choice, one
        per core); this model's products are too small to gain from splitting (see
        docs/PERFORMANCE.md). Applied in a process that has not run TensorFlow yet.
      streaming: stream CSV/Parquet/TFRecord data with tf.data instead of loading it whole.
      shuffle_buffer: rows in the streaming shuffle buffer (seeded alike on every worker).
      model: the model's hyper-parameters.
    """

    data: str = "bundled:thyroid"
    workdir: str = "runs/demo"
    export_dir: str = ""
    feature_columns: tuple = ()
    label_column: str = ""
    normal_label: str = "0"
    holdout_fraction: float = 0.2
    epochs: int = 300
    batch_size: int = 100
    d_learning_rate: float = 1e-3
    g_learning_rate: float = 1e-3
    steps_per_execution: int = 16
    verbose: int = 1
    strategy: str = "auto"
    cpu_replicas: int = 0
    cluster_timeout: float = 120.0
    intra_op_threads: int = 1
    streaming: bool = False
    shuffle_buffer: int = 100_000
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)

    def validate(self):
        _check(bool(self.data), "data", self.data, "must name a data source")
        _check(bool(self.workdir), "workdir", self.workdir, "must name a folder")
        _check(0 < self.holdout_fraction < 1, "holdout_fraction", self.holdout_fraction,
               "must be in (0, 1)")
        _check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _check(self.batch_size >= 2, "batch_size", self.batch_size, "must be >= 2")
        for name in ("d_learning_rate", "g_learning_rate"):
            _check(getattr(self, name) > 0, name, getattr(self, name), "must be > 0")
        _check(self.steps_per_execution >= 1, "steps_per_execution",
               self.steps_per_execution, "must be >= 1")
        _check(self.verbose in (0, 1, 2), "verbose", self.verbose, "must be 0, 1 or 2")
        _check(self.strategy in STRATEGIES, "strategy", self.strategy,
               f"must be one of {STRATEGIES}")
        _check(self.cpu_replicas == 0 or self.cpu_replicas >= 2, "cpu_replicas",
               self.cpu_replicas, "must be 0 (off) or >= 2")
        _check(not self.cpu_replicas or self.strategy == "mirrored", "cpu_replicas",
               self.cpu_replicas, f"applies to strategy='mirrored' only, not {self.strategy!r}")
        _check(self.cluster_timeout > 0, "cluster_timeout", self.cluster_timeout, "must be > 0")
        _check(self.intra_op_threads >= 0, "intra_op_threads", self.intra_op_threads,
               "must be >= 0")
        _check(self.shuffle_buffer >= 1, "shuffle_buffer", self.shuffle_buffer, "must be >= 1")
        _check(not (self.streaming and self.label_column), "label_column", self.label_column,
               "is not supported with streaming (it trains on every row: stream normal rows "
               "only, or drop --streaming for labels and hold-out evaluation)")
        self.model.validate()
        return self

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        model = ModelConfig(**values.pop("model", {}))
        return cls(model=model, **values)


def _check(ok, name, value, requirement):
    if not ok:
        raise ConfigError(f"{name}={value!r} {requirement}")
