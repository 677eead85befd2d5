"""`python -m cli.predict` in a clone runs mmocgan-predict (mmocgan_tf/cli/predict.py)."""

from mmocgan_tf.cli.predict import define_flags, main, run

define_flags()  # as with any absl script, importing it defines its flags

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
