"""Shared by the tests that run the CLIs: the repository root and a tiny training config."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One flag per line, for flagfiles; seconds per fit on 2 cores.
TINY_FLAGS = """--epochs=2
--target_epochs=2
--batch_size=50
--num_modes=3
--z_dim=4
--d_hidden=16,16
--g_hidden=16
--steps_per_execution=4
--verbose=0
"""
TINY_ARGS = TINY_FLAGS.split()
