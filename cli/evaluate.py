"""`python -m cli.evaluate` in a clone runs mmocgan-evaluate (mmocgan_tf/cli/evaluate.py)."""

from mmocgan_tf.cli.evaluate import define_flags, main, run

define_flags()  # as with any absl script, importing it defines its flags

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
