"""The networks of the paper's appendix as small functional Keras models."""

import keras


def build_discriminator(num_features, hidden, num_modes=0, name="discriminator"):
    """Shared hidden layers f(x), a real/fake logit head and, if num_modes > 0, the Q head.

    Returns a model mapping standardised x [N, d] to a dict: "logit" [N] (D(x) =
    sigmoid(logit) = P(real normal)), "features" [N, hidden[-1]] (f(x), used by feature
    matching and pull-away) and, with modes, "q_logits" [N, m] (Q(c|x) = softmax).
    """
    x = keras.Input((num_features,), name="x")
    h = x
    for i, width in enumerate(hidden):
        h = keras.layers.Dense(int(width), activation="relu", name=f"hidden_{i}")(h)
    outputs = {
        "logit": keras.layers.Reshape((), name="logit")(keras.layers.Dense(1, name="real_fake")(h)),
        "features": h,
    }
    if num_modes:
        outputs["q_logits"] = keras.layers.Dense(num_modes, name="q")(h)
    return keras.Model(x, outputs, name=name)


def build_generator(input_dim, hidden, num_features, name="generator"):
    """phi(z, c) -> ReLU hidden layers -> linear output in standardised feature space."""
    latent = keras.Input((input_dim,), name="latent")
    h = latent
    for i, width in enumerate(hidden):
        h = keras.layers.Dense(int(width), activation="relu", name=f"hidden_{i}")(h)
    return keras.Model(latent, keras.layers.Dense(num_features, name="x_hat")(h), name=name)
