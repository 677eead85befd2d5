"""Compares MMOC-GAN variants (num_modes, prior, ...) on several data sets.

Uses the paper's protocol for one split per seed: train on 80% of the normal rows, test on
the other 20% plus all anomalies; labels only score the test part. Prints one line per
(data set, variant, seed) and a mean AUROC per variant. Used to choose MMOCGANDetector's
defaults; cli.evaluate will run the full 5-fold protocol.

  python benchmarks/compare_variants.py --data_dir=DIR --datasets=38_thyroid,40_vowels \
      --variants="paper:;m1:num_modes=1;mix:prior=mix" --seeds=0,1 --epochs=300
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from mmocgan_tf import MMOCGANDetector  # noqa: E402
from mmocgan_tf.data import loading as data  # noqa: E402
from mmocgan_tf.evaluation.baselines import parse_value  # noqa: E402
from mmocgan_tf.evaluation.metrics import detection_metrics  # noqa: E402

flags.DEFINE_string("data_dir", "", "Folder of ADBench-style .npz files (X, y).")
flags.DEFINE_list("datasets", ["bundled:thyroid", "synthetic:production_line"],
                  "Names of .npz files in --data_dir (without .npz) or data specs.")
flags.DEFINE_string("variants", "paper:", "name:key=value,key=value;... detector arguments.")
flags.DEFINE_list("seeds", ["0"], "Seeds; each gives its own split and training seed.")
flags.DEFINE_integer("epochs", 300, "Training epochs of every variant.")
FLAGS = flags.FLAGS


def parse_variants(text):
    variants = {}
    for item in filter(None, text.split(";")):
        name, _, args = item.partition(":")
        pairs = (a.split("=", 1) for a in filter(None, args.split(",")))
        variants[name] = {k: parse_value(v) for k, v in pairs}
    return variants


def main(argv):
    del argv
    results = {}
    for name in FLAGS.datasets:
        spec = os.path.join(FLAGS.data_dir, name + ".npz") if FLAGS.data_dir and ":" not in name \
            else name
        for seed in map(int, FLAGS.seeds):
            table = data.load_data(spec, seed=seed)
            x_train, x_test, y_test = data.split_normal_holdout(table, seed=seed)
            for variant, args in parse_variants(FLAGS.variants).items():
                start = time.perf_counter()
                detector = MMOCGANDetector(epochs=FLAGS.epochs, random_state=seed, **args)
                detector.fit(x_train)
                score = detector.anomaly_score(x_test)
                m = detection_metrics(y_test, score, detector.predict(x_test) == -1)
                seconds = time.perf_counter() - start
                results.setdefault(variant, []).append(m["auroc"])
                print(f"{name} {variant} seed={seed} auroc={m['auroc']:.3f} "
                      f"auprc={m['auprc']:.3f} normal_acc={m['normal_accuracy']:.3f} "
                      f"anomaly_acc={m['anomaly_accuracy']:.3f} fit_s={seconds:.0f}", flush=True)
    for variant, aurocs in results.items():
        print(f"mean_auroc {variant}: {np.mean(aurocs):.3f} over {len(aurocs)} runs")


if __name__ == "__main__":
    app.run(main)
