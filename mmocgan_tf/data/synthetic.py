"""Synthetic "production line" data: multimodal, curved, with local anomalies.

Why this exists: the paper's claim is about data where normal behaviour has
several modes of different size and shape and the anomalies are *local* (close
to one mode, yet off its usual shape). Public benchmarks rarely show that
cleanly, so this generator builds it on purpose, seeded and small enough to
train on in seconds.

The story: a line tests several product types. Each type (mode) has its own
nominal measurements and its own process spread; the process varies along two
hidden factors (think temperature and material batch) that move the
measurements along a smooth curved surface. The test gauges add the same small
noise to every product. A defect nudges a part slightly off its type's surface
by a few noise widths: not extreme in any single measurement, inside the range
of normal data, but inconsistent with how that type's measurements co-vary.

A density model that learns each type's covariance (a BIC Gaussian mixture)
separates these anomalies, while distance detectors, IsolationForest and
OneClassSVM stay near chance (docs/RESULTS.md). Distance detectors stay
weak because a defect's small off-surface shift is lost among the along-surface
gaps between neighbours; a density model that learns each type's covariance
sees it.

make_sensor_faults tells a second story on the same line, for explanations: which
gauge of an anomalous part is wrong (its docstring).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Design constants. They are fixed (not per seed) so every seed tells the same story.
_LATENT_DIM = 2            # hidden process factors per product type
_NUM_WAVES = 8             # smooth nonlinear terms that bend each surface
_WAVE_FREQUENCY = 0.7      # radians per latent unit: gentle, not wiggly, bends
_BEND_STRENGTH = 0.3       # size of the nonlinear part relative to the linear one
_CENTER_SCALE = 4.0        # spread of the nominal values between product types
_MIN_CENTER_GAP = 12.0     # nominal values of two types are at least this far apart
_SPREAD_RANGE = (0.3, 3.0)  # smallest and largest process spread across types
_GAUGE_NOISE = 0.03        # measurement noise, identical for every type
_DEFECT_SIZE = (4.0, 6.0)  # off-surface shift of a defect, in gauge-noise widths
_WEIGHT_DECAY = 0.8        # type i gets a share proportional to 1 / (i + 1) ** decay


class _Mode:
    """One product type: a curved 2-D surface in measurement space."""

    def __init__(self, rng: np.random.Generator, center: np.ndarray, spread: float):
        d = center.shape[0]
        self.center = center
        self.spread = spread
        self.linear = rng.normal(0.0, 1.0, (d, _LATENT_DIM)) / np.sqrt(_LATENT_DIM)
        self.freq = rng.normal(0.0, _WAVE_FREQUENCY, (_NUM_WAVES, _LATENT_DIM))
        self.phase = rng.uniform(0.0, 2.0 * np.pi, _NUM_WAVES)
        self.bend = rng.normal(0.0, _BEND_STRENGTH, (d, _NUM_WAVES)) / np.sqrt(_NUM_WAVES)

    def surface(self, t: np.ndarray) -> np.ndarray:
        """Noise-free measurements for latent factors t [n, latent]."""
        waves = np.sin(t @ self.freq.T + self.phase)
        return self.center + self.spread * (t @ self.linear.T + waves @ self.bend.T)

    def tangent(self, t: np.ndarray) -> np.ndarray:
        """Jacobian [d, latent] of the surface at one latent point t [latent]."""
        slope = np.cos(self.freq @ t + self.phase)
        return self.spread * (self.linear + (self.bend * slope) @ self.freq)


def _mode_counts(n: int, weights: np.ndarray) -> np.ndarray:
    """Split n rows by weights exactly (largest remainders), so counts do not depend on luck."""
    raw = weights * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(raw - counts)[::-1][: n - counts.sum()]:
        counts[i] += 1
    return counts


def _centers(rng: np.random.Generator, num_modes: int, d: int) -> np.ndarray:
    """Nominal values per type, redrawn until all types are well apart."""
    for _ in range(1000):
        centers = rng.normal(0.0, _CENTER_SCALE, (num_modes, d))
        gaps = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
        if num_modes == 1 or gaps[np.triu_indices(num_modes, 1)].min() >= _MIN_CENTER_GAP:
            return centers
    raise ValueError(f"cannot place {num_modes} well-separated modes in {d} features")


def make_production_line(
    n_normal: int = 3000,
    n_anomalies: int = 60,
    num_modes: int = 5,
    num_features: int = 12,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generates the production-line data set.

    Args:
        n_normal: Number of normal rows, split unequally over the modes.
        n_anomalies: Number of local anomalies (defects).
        num_modes: Number of product types.
        num_features: Number of measurements per row; at least 3, so a defect
            has a direction off the 2-D surface to move in.
        seed: Same seed gives identical arrays.

    Returns:
        (X, y): X float32 [n_normal + n_anomalies, num_features], y int32 with
        1 = anomaly, rows shuffled.

    Raises:
        ValueError: On sizes that cannot describe the data set.
    """
    if num_features <= _LATENT_DIM:
        raise ValueError(f"num_features must be at least {_LATENT_DIM + 1}, got {num_features}")
    if num_modes < 1 or n_normal < num_modes:
        raise ValueError(f"need 1 <= num_modes <= n_normal, got {num_modes} and {n_normal}")
    if n_anomalies < 0:
        raise ValueError(f"n_anomalies must be >= 0, got {n_anomalies}")

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_modes + 1) ** _WEIGHT_DECAY
    weights /= weights.sum()
    # Spread is shuffled so the largest type is not always the widest.
    spreads = rng.permutation(np.geomspace(*_SPREAD_RANGE, num_modes))
    centers = _centers(rng, num_modes, num_features)
    modes = [_Mode(rng, centers[m], float(spreads[m])) for m in range(num_modes)]

    normal = []
    for mode, count in zip(modes, _mode_counts(n_normal, weights), strict=True):
        t = rng.uniform(-1.0, 1.0, (count, _LATENT_DIM))
        normal.append(mode.surface(t) + rng.normal(0.0, _GAUGE_NOISE, (count, num_features)))
    x_normal = np.concatenate(normal)

    x_anomaly = _defects(rng, modes, weights, n_anomalies, x_normal)
    x = np.concatenate([x_normal, x_anomaly]).astype(np.float32)
    y = np.concatenate([np.zeros(len(x_normal)), np.ones(len(x_anomaly))]).astype(np.int32)
    order = rng.permutation(len(y))
    return x[order], y[order]


def _defects(
    rng: np.random.Generator,
    modes: list[_Mode],
    weights: np.ndarray,
    count: int,
    x_normal: np.ndarray,
) -> np.ndarray:
    """Draws parts off their type's surface, keeping them within the normal per-feature range.

    The range check is what keeps defects from being trivially extreme in one
    measurement; a defect failing it is redrawn.
    """
    d = x_normal.shape[1]
    low, high = x_normal.min(axis=0), x_normal.max(axis=0)
    out = np.empty((count, d))
    made = 0
    for _ in range(1000 * max(count, 1)):
        if made == count:
            break
        mode = modes[rng.choice(len(modes), p=weights)]
        t = rng.uniform(-1.0, 1.0, _LATENT_DIM)
        basis, _ = np.linalg.qr(mode.tangent(t))
        direction = rng.normal(size=d)
        direction -= basis @ (basis.T @ direction)  # keep only the off-surface part
        direction /= np.linalg.norm(direction)
        shift = rng.uniform(*_DEFECT_SIZE) * _GAUGE_NOISE
        point = mode.surface(t[None])[0] + shift * direction + rng.normal(0.0, _GAUGE_NOISE, d)
        if np.all((point > low) & (point < high)):
            out[made] = point
            made += 1
    if made < count:
        raise ValueError("could not place anomalies inside the normal range; use more normal rows")
    return out


# === Sensor faults: which gauge is wrong? ===
#
# Design constants of make_sensor_faults, fixed (not per seed) like the ones above.
_SENSOR_CENTER_SCALE = 2.0    # spread of the nominal values between product types
_SENSOR_MIN_CENTER_GAP = 6.0  # nominal values of two types are at least this far apart
_SENSOR_SPREAD = 1.5          # process spread along a type's manifold, per measurement
_SENSOR_NOISE = (0.05, 0.15)  # each gauge's own noise width (the same on every type)
_SENSOR_FAULTS = (1, 3)       # faulty readings per anomaly, fewest and most
_SENSOR_WEIGHT_DECAY = 0.5    # type i gets a share proportional to 1 / (i + 1) ** decay


@dataclasses.dataclass(frozen=True)
class SensorFaults:
    """make_sensor_faults's rows, with the truth about each of them.

    Attributes:
      x: float32 [n, d] measurements.
      y: int32 [n], 1 = anomaly (a row with faulty readings).
      faulty: bool [n, d], True exactly at the shifted readings of anomalies.
      kind: int32 [n], the product type of each row (anomalies included).
      noise: float32 [d], each gauge's noise width, in raw units.
      centers, covariances: float64 [types, d] and [types, d, d], each type's true normal
        distribution (what an explanation could at best know).
    """

    x: np.ndarray
    y: np.ndarray
    faulty: np.ndarray
    kind: np.ndarray
    noise: np.ndarray
    centers: np.ndarray
    covariances: np.ndarray


def make_sensor_faults(
    n_normal: int = 3000,
    n_anomalies: int = 150,
    num_types: int = 4,
    num_features: int = 14,
    rank: int = 3,
    fault_size: tuple[float, float] = (3.0, 5.0),
    seed: int = 0,
) -> SensorFaults:
    """Generates sensor-fault data: rows whose faulty readings show only within their type.

    Why this exists: an explanation of an anomaly should name the measurements that make it
    anomalous, and a test of that needs data where the truth is known and where the easy
    answer (the most extreme value) is wrong. Here it is as good as chance.

    The story: a production line measures every part with the same `num_features` gauges.
    Each product type (several types are made) has its own nominal values, and its process
    varies along a few hidden factors (`rank` of them, far fewer than the gauges: think
    temperature, material batch, tool wear) that move all its measurements together, along
    a flat manifold of that type: centre_t + A_t u, u ~ N(0, I). Every gauge adds its own
    small noise, the same on every type. A fault is a gauge that misreads: 1 to 3 gauges of
    a part (chosen at random) are off by `fault_size` of their own noise widths (drawn
    uniformly between its two values; the larger, the easier to say which gauge). The
    faulty value is kept within that gauge's range over all normal parts (its sign flipped,
    or the part redrawn, when it is not; a part is redrawn too if any other reading falls
    outside), and the types overlap in every single gauge, so a faulty value is
    unremarkable on its own. It shows only against how the part's type's measurements
    co-vary: given the other gauges, the type's manifold says what it should have read.

    Args:
        n_normal: Number of normal rows, split unequally over the types.
        n_anomalies: Number of rows with faulty readings, their types drawn in the same
            shares.
        num_types: Number of product types.
        num_features: Number of gauges; more than `rank` + 3, so a fault has a direction
            off the manifold and the other gauges tell what it should have read.
        rank: Hidden factors per type (the manifold's dimension), at least 1.
        fault_size: (smallest, largest) shift of a faulty reading, in noise widths.
        seed: Seeds numpy's default_rng; the same arguments give identical arrays.

    Returns:
        A SensorFaults of n_normal + n_anomalies rows, shuffled.

    Raises:
        ValueError: On sizes that cannot describe the data set.
    """
    if rank < 1 or num_features <= rank + _SENSOR_FAULTS[1]:
        raise ValueError(f"need 1 <= rank and num_features > rank + {_SENSOR_FAULTS[1]}, "
                         f"got rank={rank} and num_features={num_features}")
    if num_types < 1 or n_normal < num_types:
        raise ValueError(f"need 1 <= num_types <= n_normal, got {num_types} and {n_normal}")
    if n_anomalies < 0:
        raise ValueError(f"n_anomalies must be >= 0, got {n_anomalies}")

    rng = np.random.default_rng(seed)
    d = num_features
    weights = 1.0 / np.arange(1, num_types + 1) ** _SENSOR_WEIGHT_DECAY
    weights /= weights.sum()
    centers = _separated(rng, num_types, d, _SENSOR_CENTER_SCALE, _SENSOR_MIN_CENTER_GAP)
    loadings = rng.normal(0.0, _SENSOR_SPREAD / np.sqrt(rank), (num_types, d, rank))
    noise = rng.uniform(*_SENSOR_NOISE, d)

    def parts(kind):
        u = rng.normal(size=(len(kind), rank))
        return (centers[kind] + np.einsum("ndr,nr->nd", loadings[kind], u)
                + rng.normal(size=(len(kind), d)) * noise)

    normal_kind = np.repeat(np.arange(num_types), _mode_counts(n_normal, weights))
    x_normal = parts(normal_kind).astype(np.float32)
    low, high = x_normal.min(axis=0), x_normal.max(axis=0)

    anomaly_kind = rng.choice(num_types, size=n_anomalies, p=weights)
    x_anomaly = np.empty((n_anomalies, d))
    faulty_anomaly = np.zeros((n_anomalies, d), bool)
    for i, kind in enumerate(anomaly_kind):
        for _ in range(1000):
            point = parts(np.array([kind]))[0]
            count = rng.integers(_SENSOR_FAULTS[0], _SENSOR_FAULTS[1] + 1)
            features = rng.choice(d, size=count, replace=False)
            shift = rng.uniform(*fault_size, count) * noise[features]
            shift *= rng.choice([-1.0, 1.0], size=count)
            value = point[features] + shift
            outside = (value <= low[features]) | (value >= high[features])
            value[outside] = point[features][outside] - shift[outside]  # the other side
            point[features] = value
            # The whole part inside the normal range (as float32), not only its faults.
            if np.all((point.astype(np.float32) > low) & (point.astype(np.float32) < high)):
                x_anomaly[i] = point
                faulty_anomaly[i, features] = True
                break
        else:
            raise ValueError("could not place a fault inside the normal range; "
                             "use more normal rows")

    x = np.concatenate([x_normal, x_anomaly]).astype(np.float32)
    y = np.r_[np.zeros(n_normal, np.int32), np.ones(n_anomalies, np.int32)]
    faulty = np.concatenate([np.zeros((n_normal, d), bool), faulty_anomaly])
    kind = np.r_[normal_kind, anomaly_kind].astype(np.int32)
    order = rng.permutation(len(y))
    covariances = loadings @ loadings.transpose(0, 2, 1) + np.diag(noise ** 2)
    return SensorFaults(x[order], y[order], faulty[order], kind[order],
                        noise.astype(np.float32), centers, covariances)


def _separated(rng, count, d, scale, min_gap):
    """count points N(0, scale^2 I) in d dimensions, redrawn until all are min_gap apart."""
    for _ in range(1000):
        points = rng.normal(0.0, scale, (count, d))
        gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
        if count == 1 or gaps[np.triu_indices(count, 1)].min() >= min_gap:
            return points
    raise ValueError(f"cannot place {count} well-separated types in {d} features")
