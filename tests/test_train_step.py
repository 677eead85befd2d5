"""train_step against an independent computation of its loss terms and gradients.

The per-term golden values live in test_losses.py; here the question is whether train_step
puts them together as docs/METHOD.md says: which inputs each term gets, which weight
multiplies it, the sign of every gradient, and the order of the two updates (D first, then
G against the updated D, on the same minibatch and the same noise). With plain SGD one step
moves a network by exactly -lr * sum_i w_i * grad term_i, so the test recomputes the terms
with mmocgan_tf.model.losses from the model's own networks and noise seeds, takes their gradients
with its own tape, and compares them with what the step did. The noise is the real noise:
the test draws it from a copy of the model's SeedGenerator state, so nothing is patched.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmocgan_tf import MMOCGAN
from mmocgan_tf.model import losses, replicas
from mmocgan_tf.model.references import mixtures

D_TERMS = {"d_real_fake": "weight_complement", "d_nce": "weight_nce",
           "d_entropy": "weight_d_entropy", "q_fake": "weight_q_fake",
           "q_real": "weight_q_real"}
G_TERMS = {"g_fm": "weight_fm", "g_pt": "weight_pt", "g_kl": "weight_kl",
           "g_mi": "weight_mi", "g_sigma": "weight_sigma"}
WEIGHTS = dict(zip([*D_TERMS.values(), *G_TERMS.values()],
                   [0.3, 0.7, 1.3, 0.45, 1.7, 0.6, 1.1, 0.85, 1.45, 2.3], strict=True))
D_LR, G_LR = 0.3, 0.2
VARIANTS = ("gmm", "none")  # noise-contrastive (the flow's step is this, q aside), the paper's


def rows(n=64, seed=0):
    """Two blobs of raw rows with different scales per column."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0]])
    x = centres[np.arange(n) % 2] + rng.normal(0, 0.5, size=(n, 3))
    return (x * [1.0, 5.0, 0.2] + 10).astype("float32")


def make_model(variant):
    """phi_mix, so that L_sigma is not 0; T untrained in the paper variant (it is fixed)."""
    keras.utils.set_random_seed(0)
    model = MMOCGAN(num_features=3, num_modes=3, z_dim=4, d_hidden=(8, 8), g_hidden=(8,),
                    prior="mix", target_epochs=0, reference=variant, **WEIGHTS)
    model.compile(d_optimizer=keras.optimizers.SGD(D_LR),
                  g_optimizer=keras.optimizers.SGD(G_LR))
    return model


@pytest.mark.parametrize("variant", VARIANTS)
def test_logged_losses_are_the_weighted_sums_of_the_logged_terms(variant):
    """One full-batch fit step: d_loss and g_loss are sum_i w_i * term_i, term by term."""
    model = make_model(variant)
    logs = {k: v[0] for k, v in model.fit(rows(), batch_size=64, verbose=0).history.items()}
    d_weights = {term: WEIGHTS[name] for term, name in D_TERMS.items()}
    if variant == "none":  # no reference q, no negatives: the NCE term is off
        assert logs["d_nce"] == 0.0
        d_weights["d_nce"] = 0.0
    terms = [t for t in [*D_TERMS, *G_TERMS] if t != "d_nce" or variant != "none"]
    assert all(abs(logs[t]) > 1e-3 for t in terms), logs  # every weight shows
    assert logs["d_loss"] == pytest.approx(
        sum(w * logs[t] for t, w in d_weights.items()), rel=1e-5)
    assert logs["g_loss"] == pytest.approx(
        sum(WEIGHTS[name] * logs[t] for t, name in G_TERMS.items()), rel=1e-5)


# === The independent computation ===


def discriminator_terms(model, scaled, seeds):
    """D's terms at D's current weights, their gradients, and the step's codes."""
    code_seed, z_seed, reference_seed = seeds
    d = model.discriminator
    with tf.GradientTape(persistent=True) as tape:
        real = d(scaled)
        codes = tf.random.stateless_categorical(  # c ~ Q(c|x), Q not trained through it
            tf.stop_gradient(real["q_logits"]), 1, code_seed, dtype=tf.int32)[:, 0]
        x_hat = model.generator(model.prior.sample(codes, z_seed))
        fake = d(x_hat)
        terms = {
            "d_real_fake": losses.real_fake_loss(real["logit"], fake["logit"]),
            "d_entropy": losses.binary_entropy(real["logit"]),
            "q_fake": losses.code_cross_entropy(fake["q_logits"], codes),
            "q_real": losses.mode_information_loss(real["q_logits"]),
        }
        if model.config.reference != "none":
            negatives = mixtures.sample(*model.reference.q.arrays, len(scaled), reference_seed)
            terms["d_nce"] = losses.real_fake_loss(real["logit"], d(negatives)["logit"])
    return terms, gradients(tape, terms, d.trainable_variables), codes


def generator_terms(model, scaled, codes, z_seed):
    """G's terms (against D's current weights) and their gradients for G and the prior."""
    d = model.discriminator
    with tf.GradientTape(persistent=True) as tape:
        x_hat = model.generator(model.prior.sample(codes, z_seed))
        fake = d(x_hat)
        if model.config.reference == "none":  # the paper: log T(x_hat)
            log_density = tf.math.log_sigmoid(model.reference.target(x_hat)["logit"])
        else:  # log q of the modes (the gmm reference itself)
            log_density = mixtures.log_prob(*model.reference.q.arrays, x_hat)
        terms = {
            "g_fm": losses.feature_matching_loss(fake["features"], d(scaled)["features"]),
            "g_pt": losses.pull_away_loss(fake["features"]),
            "g_kl": losses.low_density_loss(log_density, model.reference.density_threshold),
            "g_mi": losses.code_cross_entropy(fake["q_logits"], codes),
            "g_sigma": losses.sigma_regularizer(model.prior.sigma.value),
        }
    return terms, gradients(tape, terms, g_variables(model))


def gradients(tape, terms, variables):
    """{term: its gradient, flattened over `variables` (zero where it does not reach)}."""
    return {name: flat([tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                        for g, v in zip(tape.gradient(t, variables), variables, strict=True)])
            for name, t in terms.items()}


def g_variables(model):
    return model.generator.trainable_variables + model.prior.trainable_variables


def flat(tensors):
    return np.concatenate([np.ravel(t) for t in tensors])


def values(variables):
    return [v.numpy() for v in variables]


# === One SGD step against it ===


def one_step(model, x, weights):
    """Runs train_step once with these weights (0 = off) and recomputes it independently.

    Returns (logs, expected, got): `expected` holds the independent term values and the
    updates of D and of G (with the prior) that SGD makes from them; `got` what the step
    logged and did.
    """
    model.config = dataclasses.replace(model.config, **weights)
    copy = keras.random.SeedGenerator(0)
    copy.state.assign(model.seed_generator.state.value)
    seeds = replicas.replica_seeds(copy, 3)  # what the step draws from the same state
    scaled = model.standardizer(x)
    d_vars, g_vars = model.discriminator.trainable_variables, g_variables(model)
    d_before, g_before = values(d_vars), values(g_vars)

    d_terms, d_grads, codes = discriminator_terms(model, scaled, seeds)
    model.reset_metrics()
    logs = {k: float(v) for k, v in model.train_step(x).items()}
    d_after, g_after = values(d_vars), values(g_vars)
    # G's gradient is taken at G's old weights but against the updated D.
    for v, value in zip(g_vars, g_before, strict=True):
        v.assign(value)
    g_terms, g_grads = generator_terms(model, scaled, codes, seeds[1])

    def update(terms, grads, lr):
        return -lr * sum(weights[name] * grads[t] for t, name in terms.items() if t in grads)

    expected = {"terms": {k: float(v) for k, v in {**d_terms, **g_terms}.items()},
                "d_update": update(D_TERMS, d_grads, D_LR),
                "g_update": update(G_TERMS, g_grads, G_LR)}
    got = {"d_update": flat(d_after) - flat(d_before), "g_update": flat(g_after) - flat(g_before)}
    return logs, expected, got


def off_but(*names):
    return {name: WEIGHTS[name] if name in names else 0.0 for name in WEIGHTS}


# Every weight on, then each term alone (a D term and a G term per step, since a network
# without any loss has no gradient to apply).
CASES = {
    "all": WEIGHTS,
    "real_fake+fm": off_but("weight_complement", "weight_fm"),
    "nce+pt": off_but("weight_nce", "weight_pt"),
    "entropy+kl": off_but("weight_d_entropy", "weight_kl"),
    "q_fake+mi": off_but("weight_q_fake", "weight_mi"),
    "q_real+sigma": off_but("weight_q_real", "weight_sigma"),
}


@pytest.fixture(scope="module", params=VARIANTS)
def prepared(request):
    """A compiled model with its standardisation and reference (or T) set, and its weights."""
    model = make_model(request.param)
    x = rows()
    model.prepare(x)
    return model, x, model.get_weights()


# A network with one term alone: Keras warns about the layers that term does not reach.
@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables")
@pytest.mark.parametrize("case", CASES)
def test_one_sgd_step_moves_d_then_g_down_the_weighted_gradients_of_their_terms(
        prepared, case):
    model, x, initial = prepared
    weights = CASES[case]
    if case == "nce+pt" and model.config.reference == "none":  # the paper has no NCE term
        weights = off_but("weight_complement", "weight_pt")
    model.set_weights(initial)
    logs, expected, got = one_step(model, x, weights)
    for name, value in expected["terms"].items():  # the step's inputs of every term
        assert logs[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    for network in ("d_update", "g_update"):
        want, have = expected[network], got[network]
        assert np.linalg.norm(want) > 1e-4, network  # the case does move this network
        error = np.linalg.norm(have - want) / np.linalg.norm(want)
        assert error < 1e-4, (network, error)
