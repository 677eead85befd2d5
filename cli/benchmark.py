"""`python -m cli.benchmark` in a clone runs mmocgan-benchmark (mmocgan_tf/cli/benchmark.py)."""

from mmocgan_tf.cli.benchmark import define_flags, main, run

define_flags()  # as with any absl script, importing it defines its flags

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
