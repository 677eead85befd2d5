"""Reset a compiled Keras model in place, so its traced train function is reused.

Tracing a GAN's train step costs seconds; a k-fold evaluation that builds k fresh models
pays it k times. Assigning a fresh model's initial values to the existing variables, and
zeroing the optimizer's state, gives the same starting point without a new trace.
"""

import dataclasses

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


def reinitialize_mmocgan(model, seed):
    """Returns a compiled MMOCGAN to the untrained state of MMOCGAN(seed=seed).

    Weights, optimizer states, noise and batch orders become those of a fresh model of the
    same config with this seed (which seeds its own initializers), and so does the regular
    GAN that trains the paper's T, if the model has one; the traced steps are kept, so a
    k-fold evaluation traces once, not k times.
    """
    if not model.compiled:
        raise ValueError("Call compile() before reinitializing.")
    model.config = dataclasses.replace(model.config, seed=int(seed))
    fresh = type(model)(model.num_features, model.feature_names,
                        **dataclasses.asdict(model.config))
    fresh.build((None, model.num_features))
    copy_variables(model, fresh)
    for optimizer in (model.d_optimizer, model.g_optimizer):
        reset_optimizer(optimizer)
    trainer = model.reference.trainer
    if trainer is not None:
        copy_variables(trainer, fresh.reference.make_trainer(
            fresh.config, model.steps_per_execution_requested))
        for optimizer in (trainer.d_optimizer, trainer.g_optimizer):
            reset_optimizer(optimizer)
        model.reference.target.trainable = False
