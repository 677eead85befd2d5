"""Any PyOD detector as a benchmark method: --methods pyod:KNN, pyod:IForest, ...

The detector is PyOD's class with PyOD's defaults (random_state = the fit's seed where the
class takes one). It is fitted on the normal training rows; its score is PyOD's
decision_function (higher = more abnormal, by PyOD's convention) and the training scores
for the quantile threshold are PyOD's own decision_scores_ (computed in fit, leaving each
row out of its own neighbourhood for KNN, LOF and friends: decision_function on the
training rows would count every row as its own nearest neighbour).

Orientation check: PyOD's GAAL detectors (SO_GAAL, MO_GAAL) return the discriminator's
D(x) = P(normal), i.e. higher = MORE normal, against PyOD's convention. After fitting,
far-away probe rows (well outside the training data, in many directions) are scored and
ranked among the training scores; probes that rank low mean reversed scores. The
detector then says so in orientation_note (which the evaluation writes into its results)
and keeps PyOD's scores as they are.
"""

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import io
import sys

import numpy as np

from mmocgan_tf.evaluation.baselines.base import Detector

# PyOD class name -> module under pyod.models (the detectors for tabular rows).
MODULES = {
    "ABOD": "abod", "ALAD": "alad", "AnoGAN": "anogan", "AutoEncoder": "auto_encoder",
    "CBLOF": "cblof", "COF": "cof", "COPOD": "copod", "DeepSVDD": "deep_svdd", "DIF": "dif",
    "ECOD": "ecod", "FeatureBagging": "feature_bagging", "GMM": "gmm", "HBOS": "hbos",
    "HDBSCAN": "hdbscan", "IForest": "iforest", "INNE": "inne", "KDE": "kde", "KNN": "knn",
    "KPCA": "kpca", "LMDD": "lmdd", "LOCI": "loci", "LODA": "loda", "LOF": "lof",
    "LUNAR": "lunar", "MCD": "mcd", "MO_GAAL": "mo_gaal", "OCSVM": "ocsvm", "PCA": "pca",
    "QMCD": "qmcd", "RGraph": "rgraph", "ROD": "rod", "Sampling": "sampling",
    "SO_GAAL": "so_gaal", "SOD": "sod", "SOS": "sos", "SUOD": "suod", "VAE": "vae",
}
# The probe check runs for these by default: PyOD's GAN-based detectors, whose score is a
# discriminator's output (D(x) = P(normal) in recent releases). It is not a rule for every
# detector: on three 4-d blobs LOCI and SOS rank far rows near 0.5 (QMCD, RGraph near 0).
GAAL = ("SO_GAAL", "MO_GAAL")
_INSTALL = {"sklearn": "scikit-learn"}  # pip names that differ from the module's


class PyODDetector(Detector):
    """A PyOD detector by its class name, e.g. PyODDetector("KNN", n_neighbors=10).

    Args:
      detector_name: PyOD's class name ("KNN", "IForest", "ECOD", "SO_GAAL", ...).
      check_orientation: run the far-away probe check after fit (None: GAAL only).
      **kwargs: the PyOD class's constructor arguments (PyOD's defaults otherwise).

    Attributes:
      orientation_note: None, or one line saying the scores look reversed (set by fit).
      orientation_rank_: mean rank (0..1) of the probes among the training scores, or None.

    Raises ValueError (one line) for an unknown name, or a missing PyOD or dependency.
    """

    is_gan = False

    def __init__(self, detector_name, check_orientation=None, **kwargs):
        self.detector_name = str(detector_name)
        self.kwargs = dict(kwargs)
        self.detector_class = resolve(self.detector_name)
        self.name = f"pyod:{self.detector_name}"  # as spelled in --methods
        self.check_orientation = (self.detector_class.__name__ in GAAL
                                  if check_orientation is None
                                  else bool(check_orientation))
        parameters = inspect.signature(self.detector_class).parameters
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            raise ValueError(f"{self.name} has no option(s) {unknown}")
        self._takes_random_state = "random_state" in parameters
        self.orientation_note = None
        self.orientation_rank_ = None
        self.detector_ = None

    def fit(self, x, seed=0):
        x = np.asarray(x, np.float32)
        kwargs = dict(self.kwargs)
        if self._takes_random_state:
            kwargs.setdefault("random_state", int(seed))
        else:  # e.g. the GAAL detectors draw from NumPy's and torch's global generators
            _seed_globals(seed)
        self.detector_ = self.detector_class(**kwargs).fit(x)
        self._train_digest = _digest(x)
        self.orientation_note, self.orientation_rank_ = None, None
        if self.check_orientation:
            self.orientation_rank_ = probe_rank(
                self.detector_.decision_function, x, self.detector_.decision_scores_, seed)
            self.orientation_note = orientation_note(self.name, self.orientation_rank_)
        return self

    def anomaly_score(self, x):
        return np.asarray(self.detector_.decision_function(np.asarray(x, np.float32)),
                          np.float64).ravel()

    def training_scores(self, x):
        """PyOD's decision_scores_ when x is the training data, else decision_function."""
        x = np.asarray(x, np.float32)
        if _digest(x) == self._train_digest:
            return np.asarray(self.detector_.decision_scores_, np.float64).ravel()
        return self.anomaly_score(x)


def resolve(name):
    """The PyOD class called `name` (exact or any case); one-line ValueError otherwise."""
    label = f"pyod:{name}"
    if importlib.util.find_spec("pyod") is None:
        raise ValueError(f"{label} needs PyOD; pip install 'mmocgan-tf[bench]' (or pyod)")
    by_lower = {k.lower(): k for k in MODULES}
    name = by_lower.get(name.lower(), name)
    module_name = MODULES.get(name, name.lower())
    if importlib.util.find_spec(f"pyod.models.{module_name}") is None:
        raise ValueError(f"unknown PyOD detector {name!r}; known: "
                         f"{', '.join(sorted(MODULES, key=str.lower))}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # LUNAR prints its torch hint
            module = importlib.import_module(f"pyod.models.{module_name}")
    except ImportError as error:
        missing = _missing_module(error)
        if missing is None:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(f"{label} could not be imported: {reason}") from None
        raise ValueError(f"{label} needs {missing}; pip install "
                         f"{_INSTALL.get(missing, missing)}") from None
    detector_class = getattr(module, name, None)
    if not inspect.isclass(detector_class):
        raise ValueError(f"unknown PyOD detector {name!r}; known: "
                         f"{', '.join(sorted(MODULES, key=str.lower))}")
    return detector_class


def probe_rank(score_fn, x_train, train_scores, seed=0, num_probes=32):
    """Mean rank (0..1) of far-away probe rows' scores among the training scores.

    Probes lie at 3 and 10 times the largest distance of a training row from the data's
    median, along +-axis directions and random ones. Any detector that scores higher for
    more abnormal rows ranks them near 1; one that scores higher for more normal rows
    (the GAAL detectors' D(x)) ranks them near 0. Ties count half. Uses no labels.
    """
    x_train = np.asarray(x_train, np.float64)
    num_features = x_train.shape[1]
    rng = np.random.default_rng(seed)
    center = np.median(x_train, axis=0)
    radius = max(float(np.max(np.linalg.norm(x_train - center, axis=1))), 1.0)
    axes = np.concatenate([np.eye(num_features), -np.eye(num_features)])
    axes = axes[rng.permutation(len(axes))[:num_probes // 2]]
    random = rng.normal(size=(num_probes - len(axes), num_features))
    directions = np.concatenate([axes, random / np.linalg.norm(random, axis=1, keepdims=True)])
    probes = np.concatenate([center + factor * radius * directions for factor in (3.0, 10.0)])
    probe_scores = np.asarray(score_fn(probes.astype(np.float32)), np.float64).ravel()
    train_scores = np.sort(np.asarray(train_scores, np.float64).ravel())
    below = np.searchsorted(train_scores, probe_scores, side="left")
    not_above = np.searchsorted(train_scores, probe_scores, side="right")
    return float(np.mean((below + not_above) / 2.0) / len(train_scores))


def orientation_note(label, rank):
    """One line for a probe rank below 0.5 (reversed or inconclusive scores), else None."""
    if rank >= 0.5:
        return None
    if rank < 0.25:
        verdict = "look reversed (higher = more normal)"
    else:
        verdict = "have an unclear orientation"
    return (f"{label} scores {verdict}: far-away probe rows rank {rank:.2f} among the "
            f"training scores (1 = above all); scores kept as PyOD returns them")


def _missing_module(error):
    """The top-level name of the module whose absence caused an ImportError chain."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name:
            return error.name.split(".")[0]
        if "torch" in str(error).lower():
            return "torch"
        error = error.__cause__ or error.__context__
    return None


def _seed_globals(seed):
    np.random.seed(int(seed) % 2**32)
    torch = sys.modules.get("torch")  # imported by the detector's module if it uses torch
    if torch is not None:
        torch.manual_seed(int(seed))


def _digest(x):
    return x.shape, hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest()
