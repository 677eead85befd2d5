"""The detectors of the paper's Table 1, by their --methods names.

make_detector("gmm") and friends return a base.Detector. Modules are imported on first
use, so an optional dependency (PyOD for "pyod:NAME") is needed only by the methods that
use it.
"""

import importlib

from mmocgan_tf.evaluation.baselines.base import Detector

# name -> (module under mmocgan_tf.evaluation.baselines, class); deep ones accept epochs=.
_METHODS = {
    "ocnn_neighbor": ("classical", "NeighborDetector"),
    "ocsvm": ("classical", "OCSVMDetector"),
    "gmm": ("classical", "GMMDetector"),
    "ocnn_network": ("ocnn_network", "OCNNDetector"),
    "dagmm": ("dagmm", "DAGMMDetector"),
    "rda": ("rda", "RDADetector"),
    "anogan": ("anogan", "AnoGANDetector"),
    "rgan": ("rgan", "RGANDetector"),
    "ocan": ("ocan", "OCANDetector"),
    "mmocgan": ("mmocgan", "MMOCGANMethod"),
    "mmocgan_cat": ("mmocgan", "MMOCGANMethod"),
    "mmocgan_mix": ("mmocgan", "MMOCGANMethod"),
}
METHODS = tuple(_METHODS)
DEEP = ("ocnn_network", "dagmm", "rda", "anogan", "rgan", "ocan", "mmocgan", "mmocgan_cat",
        "mmocgan_mix")
# The paper's method (no reference density), with either prior; "mmocgan" is the default.
PAPER_VARIANTS = {"mmocgan_cat": dict(prior="cat", reference="none"),
                  "mmocgan_mix": dict(prior="mix", reference="none")}
PYOD_PREFIX = "pyod:"
# The noise-contrastive variant with the local mixture as q, as measured (docs/RESULTS.md).
LOCAL_VARIANT = "mmocgan/reference=local/reference_broad_weight=0"
# Table 2 and the ablations of the default variant, as method specs (see split_spec).
ABLATIONS = {
    "modes": tuple(f"mmocgan/num_modes={m}" for m in (1, 5, 10, 20)),
    "losses": tuple(f"mmocgan/weight_{term}=0"
                    for term in ("complement", "fm", "pt", "kl", "mi", "d_entropy", "q_real")),
    "reference": ("mmocgan", "mmocgan/reference=gmm",
                  "mmocgan/reference=gmm/reference_broad_weight=0", LOCAL_VARIANT,
                  "mmocgan/weight_complement=0/weight_d_entropy=0", "mmocgan_cat"),
    "prior": ("mmocgan", "mmocgan/prior=mix"),
}


class UnknownMethodError(ValueError):
    """A --methods name that is neither a known method nor pyod:NAME; one line."""


def split_spec(spec):
    """"mmocgan_cat/num_modes=5/weight_fm=0" -> ("mmocgan_cat", {"num_modes": 5, ...}).

    A method name may carry MMOCGAN option overrides after slashes (ablations, Table 2).
    """
    name, *pairs = spec.split("/")
    overrides = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UnknownMethodError(f"{spec!r}: expected NAME/option=value/..., got {pair!r}")
        overrides[key] = parse_value(text)
    if overrides and not name.startswith("mmocgan"):
        raise UnknownMethodError(f"{spec!r}: option overrides apply to mmocgan* methods only")
    return name, overrides


def parse_value(text):
    """An option value from text: int, else float, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_method(spec):
    """Raises UnknownMethodError (listing the known names) unless `spec` is runnable."""
    name, _ = split_spec(spec)
    if name in _METHODS or (name.startswith(PYOD_PREFIX) and len(name) > len(PYOD_PREFIX)):
        return
    raise UnknownMethodError(f"unknown method {name!r}; known: {', '.join(METHODS)}, "
                             f"or {PYOD_PREFIX}NAME for a PyOD detector (e.g. pyod:KNN)")


def make_detector(spec, epochs=None, model_options=None, train_steps=None) -> Detector:
    """A new detector for `spec` (a method name, see split_spec).

    Args:
      epochs: training epochs of the deep methods (None: each method's own default).
      train_steps: if set, deep methods train about this many steps per fit instead
        (epochs follow from the training rows), the same budget on every data set.
      model_options: MMOCGAN ModelConfig fields for mmocgan (the default variant),
        mmocgan_cat / mmocgan_mix (the paper's: prior set by the name, no reference) and
        ocan (its mode terms stay off).
    """
    check_method(spec)
    name, overrides = split_spec(spec)
    if name.startswith(PYOD_PREFIX):
        from mmocgan_tf.evaluation.baselines.pyod_adapter import PyODDetector
        return PyODDetector(name[len(PYOD_PREFIX):])
    module, cls = _METHODS[name]
    detector_class = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    kwargs = {}
    if name in DEEP:
        kwargs.update({} if epochs is None else {"epochs": int(epochs)},
                      **({} if train_steps is None else {"train_steps": int(train_steps)}))
    if name == "ocan":
        kwargs.update(model_options or {})
    if cls == "MMOCGANMethod":
        kwargs.update({**(model_options or {}), **PAPER_VARIANTS.get(name, {}), **overrides})
    try:
        detector = detector_class(**kwargs)
    except TypeError as err:  # an option the method does not have
        raise UnknownMethodError(f"{spec}: {err}") from None
    detector.name = spec
    return detector
