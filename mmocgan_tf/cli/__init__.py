"""The commands: one module per console script, each thin over one library call.

train, evaluate, benchmark, export, score, predict and plot are the mmocgan-* scripts
(also `python -m mmocgan_tf.cli.NAME`); app is what they share (quiet TensorFlow, logging,
bad input as one `error:` line and its exit status); flags turns the config dataclasses
into flags; presets reads the flagfiles shipped in configs/. Nothing is imported here,
so `python -m` runs a command module only once.
"""
