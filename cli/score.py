"""`python -m cli.score` in a clone runs mmocgan-score (mmocgan_tf/cli/score.py)."""

from mmocgan_tf.cli.score import define_flags, main, run

define_flags()  # as with any absl script, importing it defines its flags

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
