"""`python -m cli.export` in a clone runs mmocgan-export (mmocgan_tf/cli/export.py)."""

from mmocgan_tf.cli.export import define_flags, main, run

define_flags()  # as with any absl script, importing it defines its flags

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
