"""Scores of small fixed fits, to check that a refactoring left the numbers alone.

Fits the mixture variant (reference="gmm") and the paper variant (reference="none") on the
bundled thyroid rows with fixed seeds and tiny epochs, scores the same rows, and writes the
scores, logits and modes to an .npz; with --compare it prints the largest difference to an
earlier file. It uses only the public API (MMOCGAN, compile, fit, predict), so it runs
unchanged on an older checkout: record there, compare here.

  PYTHONPATH=OLD_CHECKOUT python benchmarks/score_fingerprint.py --output=/tmp/before.npz
  PYTHONPATH=. python benchmarks/score_fingerprint.py --output=/tmp/after.npz \
      --compare=/tmp/before.npz
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import mmocgan_tf  # noqa: E402
from mmocgan_tf.data.loading import load_data  # noqa: E402

flags.DEFINE_string("output", None, "Where to write the scores (.npz).")
flags.DEFINE_string("compare", None, "An earlier output to compare with.")
flags.DEFINE_integer("seed", 0, "Seed of weights, noise and batch orders.")
flags.mark_flag_as_required("output")
FLAGS = flags.FLAGS

VARIANTS = {"gmm": {"reference": "gmm"}, "paper": {"reference": "none", "target_epochs": 3}}
# Earlier files name outputs as they were then: "default" for the mixture variant (the
# default until the flow) and "logit" for normality (before the renovation).
OUTPUTS = ("score", "normality", "mode")
RENAMED = {"gmm_": "default_", "normality": "logit"}


def fingerprint(x, seed):
    """{variant_output: array} of one small fit per variant."""
    result = {}
    for name, options in VARIANTS.items():
        keras.utils.set_random_seed(seed)
        model = mmocgan_tf.MMOCGAN(num_features=x.shape[1], num_modes=4, z_dim=8,
                                   d_hidden=(32, 32), g_hidden=(32,), seed=seed, **options)
        model.compile(steps_per_execution=8)
        model.fit(x, epochs=3, batch_size=100, verbose=0)
        out = model.predict(x, batch_size=1000, verbose=0)
        result.update({f"{name}_{key}": np.asarray(out[key] if key in out else out["logit"])
                       for key in OUTPUTS})
    return result


def main(argv):
    del argv
    x = load_data("bundled:thyroid").x[:1000]
    result = fingerprint(x, FLAGS.seed)
    np.savez(FLAGS.output, **result)
    print(f"wrote {FLAGS.output}")
    if FLAGS.compare:
        before = np.load(FLAGS.compare)
        for key in sorted(result):
            old = key
            for new_name, old_name in RENAMED.items():
                if old not in before:
                    old = old.replace(new_name, old_name)
            diff = np.max(np.abs(result[key].astype(np.float64) - before[old]))
            print(f"{key}_max_abs_diff: {diff:.3g}")


if __name__ == "__main__":
    app.run(main)
