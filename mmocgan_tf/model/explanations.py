"""Per-feature attributions of the anomaly score: which measurements make a row anomalous.

A row is anomalous relative to its own mode: the same value can be normal for one product
type and a fault for another, and a fault often shows only in how a feature fits the
row's other features. So with a mixture of the modes (every variant with a reference q;
the flow variant reads the mixture its flow refines), feature j's attribution is what
the row's score would lose, in nats, if x_j alone took the value the row's mode expects
given its other features: 0.5 z_j^2, where
z_j = (P r)_j / sqrt(P_jj) is the conditional z-score of x_j in the row's mode (the
mixture component most responsible for the row; r = the row minus that component's mean,
P its precision matrix). Each attribution stands alone: they are >= 0 and do not sum to
the score. This measured best of the alternatives (docs/RESULTS.md, "Explanations").

The paper's variant has no density of its modes: its attributions are integrated
gradients of its score 1 - D(x) along the straight path from the training mean to the
row. They sum to score(x) - score(mean), up to the integration's error, so they are
relative to the mean rather than the row's mode, and small where D saturates.

Everything runs in the TensorFlow graph on raw rows (the standardisation inside), with no
randomness, so the export's `explain` signature and `MMOCGAN.explain` agree.
"""

import weakref

import numpy as np
import tensorflow as tf

from mmocgan_tf.model.references import mixtures

IG_STEPS = 32  # midpoint steps of the integrated-gradients path
_TRACED = weakref.WeakKeyDictionary()  # model -> its traced explanation


def explanation(model, x):
    """{"attributions": [n, d], "mode": [n]} of raw rows x [n, d]; mode as in model(x)."""
    scaled = model.standardizer(x)
    mode = tf.argmax(model.discriminator(scaled)["q_logits"], axis=-1, output_type=tf.int32)
    mixture = model.reference.mode_mixture
    if mixture is not None:
        attributions = conditional_attributions(mixture.arrays, scaled)
    else:
        attributions = integrated_gradients(lambda rows: scaled_score(model, rows), scaled,
                                            tf.zeros_like(scaled))
    return {"attributions": attributions, "mode": mode}


def explain_rows(model, x, batch_size=1024):
    """The attributions [n, d] of raw rows x [n, d] (float32), in padded batches of one shape.

    One shape means one trace, and a row's attributions are its own, whatever is scored
    with it.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if model not in _TRACED:
        spec = tf.TensorSpec([None, model.num_features], tf.float32)
        _TRACED[model] = tf.function(lambda rows: explanation(model, rows)["attributions"],
                                     input_signature=[spec])
    traced, n = _TRACED[model], len(x)
    parts = []
    for start in range(0, n, batch_size):
        batch = x[start:start + batch_size]
        padded = np.pad(batch, [(0, batch_size - len(batch)), (0, 0)])
        parts.append(traced(padded).numpy()[:len(batch)])
    return np.concatenate(parts) if parts else np.zeros((0, model.num_features), np.float32)


def conditional_attributions(arrays, scaled):
    """0.5 z_j^2 of standardised rows [n, d] in their most responsible Gaussian (docstring).

    Args:
      arrays: a mixture's (logits, loc, scale_tril); its last slot, the broad Gaussian
        that only places negatives, is left out.
      scaled: standardised rows.
    """
    logits, loc, scale_tril = (a[:-1] for a in arrays)
    component = tf.argmax(mixtures.joint_log_probs(logits, loc, scale_tril, scaled), axis=0)
    inverse = tf.linalg.triangular_solve(
        scale_tril, tf.eye(tf.shape(loc)[1], batch_shape=[tf.shape(loc)[0]]), lower=True)
    precision = tf.matmul(inverse, inverse, transpose_a=True)  # [k, d, d]
    # P_k (x - mu_k) for every component k ([k, n, d], not [n, d, d]), then each row's own.
    residual = tf.einsum("kij,knj->nki", precision, scaled[None] - loc[:, None])
    residual = tf.gather(residual, component, batch_dims=1)
    z = residual / tf.sqrt(tf.gather(tf.linalg.diag_part(precision), component))
    return 0.5 * tf.square(z)


def integrated_gradients(score, scaled, baseline, steps=IG_STEPS):
    """Integrated gradients of score(rows) -> [n] at standardised rows, from baselines.

    The midpoint rule over `steps` points of each straight path; the attributions of a
    row sum to score(row) - score(baseline) up to its error. Gradients in standardised
    units times standardised differences equal raw gradients times raw differences.
    """
    d = tf.shape(scaled)[-1]
    delta = scaled - baseline
    alphas = (tf.range(steps, dtype=scaled.dtype) + 0.5) / steps
    path = tf.reshape(baseline[None] + alphas[:, None, None] * delta[None], [-1, d])
    with tf.GradientTape() as tape:
        tape.watch(path)
        values = score(path)
    gradients = tf.reshape(tape.gradient(values, path), [steps, -1, d])
    return delta * tf.reduce_mean(gradients, axis=0)


def scaled_score(model, scaled):
    """The model's anomaly score of standardised rows."""
    logit = model.discriminator(scaled)["logit"]
    return model.reference.score(model.reference.normality(scaled, logit))
