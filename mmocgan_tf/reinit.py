"""Reset a compiled Keras model in place, so its traced train function is reused.

Tracing a GAN's train step costs seconds; a k-fold evaluation that builds k fresh models
pays it k times. Assigning a fresh model's initial values to the existing variables, and
zeroing the optimizer's state, gives the same starting point without a new trace.
"""

import keras


def copy_variables(model, fresh):
    """Assigns every variable of `fresh` (same architecture) to the matching one of `model`."""
    mine, theirs = model.variables, fresh.variables
    if len(mine) != len(theirs):
        raise ValueError(f"{len(theirs)} fresh variables for {len(mine)} in the model")
    for variable, value in zip(mine, theirs, strict=True):
        variable.assign(value)


def reset_optimizer(optimizer):
    """Zeroes the step count and the slots (Adam's moments); the learning rate is kept."""
    for variable in optimizer.variables:
        if not variable.path.endswith("learning_rate"):
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
