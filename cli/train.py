"""`python -m cli.train` in a clone runs mmocgan-train (mmocgan_tf/cli/train.py)."""

from mmocgan_tf.cli.train import define_flags, main, run

define_flags()  # as with any absl script, importing it defines its flags

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
