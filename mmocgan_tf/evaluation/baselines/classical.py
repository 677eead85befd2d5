"""The scikit-learn detectors of Table 1: neighbour distance, one-class SVM, BIC-chosen GMM."""

from sklearn.neighbors import NearestNeighbors
from sklearn.svm import OneClassSVM

from mmocgan_tf.evaluation.baselines.base import Detector
from mmocgan_tf.model.references.mixtures import fit_bic_mixture


class NeighborDetector(Detector):
    """The paper's OCNN neighbor: mean distance to the k nearest training rows."""

    name = "ocnn_neighbor"

    def __init__(self, k=5):
        self.k = int(k)

    def fit(self, x, seed=0):
        self.neighbors_ = NearestNeighbors(n_neighbors=min(self.k, len(x))).fit(x)
        return self

    def anomaly_score(self, x):
        distances, _ = self.neighbors_.kneighbors(x)
        return distances.mean(axis=1)

    def training_scores(self, x):
        """Scores of the training rows themselves, leaving each row out of its own k."""
        k = min(self.k + 1, len(x))
        distances, _ = self.neighbors_.kneighbors(x, n_neighbors=k)
        return distances[:, 1:].mean(axis=1)


class OCSVMDetector(Detector):
    """One-class SVM (Schoelkopf et al. 2001), RBF kernel, scikit-learn's defaults."""

    name = "ocsvm"

    def __init__(self, nu=0.5, gamma="scale"):
        self.nu = nu
        self.gamma = gamma

    def fit(self, x, seed=0):
        self.svm_ = OneClassSVM(kernel="rbf", nu=self.nu, gamma=self.gamma).fit(x)
        return self

    def anomaly_score(self, x):
        return -self.svm_.decision_function(x)


class GMMDetector(Detector):
    """Full-covariance Gaussian mixture, 1..max_components chosen by BIC; -log density."""

    name = "gmm"

    def __init__(self, max_components=10):
        self.max_components = int(max_components)

    def fit(self, x, seed=0):
        self.gmm_ = fit_bic_mixture(x, self.max_components, seed)
        return self

    def anomaly_score(self, x):
        return -self.gmm_.score_samples(x)  # scikit-learn's log density, higher = more normal

    @property
    def n_components_(self):
        return int(self.gmm_.n_components) if hasattr(self, "gmm_") else None


