"""The networks of the paper's appendix as small functional Keras models.

Every builder takes `seeds`, a random.Random that draws one seed per kernel initializer
in construction order. Keras draws the same numbers from Python's global random for
unseeded initializers after keras.utils.set_random_seed(s), so MMOCGAN(seed=s) gets the
weights it had when its callers seeded the globals, without touching any global state.
"""

import keras
import tensorflow as tf


def seeded(initializer, seeds, **kwargs):
    """`initializer` class with a seed drawn as Keras draws an unseeded one's."""
    return initializer(seed=seeds.randint(1, int(1e9)), **kwargs)


def _dense(width, seeds, **kwargs):
    return keras.layers.Dense(
        int(width), kernel_initializer=seeded(keras.initializers.GlorotUniform, seeds),
        **kwargs)


def build_discriminator(num_features, hidden, num_modes=0, name="discriminator", *, seeds):
    """Shared hidden layers f(x), a real/fake logit head and, if num_modes > 0, the Q head.

    Returns a model mapping standardised x [N, d] to a dict: "logit" [N] (D(x) =
    sigmoid(logit) = P(real normal)), "features" [N, hidden[-1]] (f(x), used by feature
    matching and pull-away) and, with modes, "q_logits" [N, m] (Q(c|x) = softmax).
    """
    x = keras.Input((num_features,), name="x")
    h = x
    for i, width in enumerate(hidden):
        h = _dense(width, seeds, activation="relu", name=f"hidden_{i}")(h)
    outputs = {
        "logit": keras.layers.Reshape((), name="logit")(_dense(1, seeds, name="real_fake")(h)),
        "features": h,
    }
    if num_modes:
        outputs["q_logits"] = _dense(num_modes, seeds, name="q")(h)
    return keras.Model(x, outputs, name=name)


def build_generator(input_dim, hidden, num_features, name="generator", *, seeds):
    """phi(z, c) -> ReLU hidden layers -> linear output in standardised feature space."""
    latent = keras.Input((input_dim,), name="latent")
    h = latent
    for i, width in enumerate(hidden):
        h = _dense(width, seeds, activation="relu", name=f"hidden_{i}")(h)
    return keras.Model(latent, _dense(num_features, seeds, name="x_hat")(h), name=name)


def split_batches(outputs, parts):
    """A network's dict of outputs on `parts` equal batches stacked, as one dict per batch.

    One pass over stacked batches runs fewer, larger matrix products than one per batch."""
    pieces = {name: tf.split(value, parts) for name, value in outputs.items()}
    return [{name: piece[i] for name, piece in pieces.items()} for i in range(parts)]
