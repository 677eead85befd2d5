"""`python -m cli.plot` in a clone runs mmocgan-plot (mmocgan_tf/cli/plot.py)."""

from mmocgan_tf.cli.plot import define_flags, main, run

define_flags()  # as with any absl script, importing it defines its flags

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
