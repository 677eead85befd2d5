"""Streaming moments: the standardisation's statistics from batches, in O(d) memory."""

import numpy as np


class Moments:
    """Row count, mean and variance of a stream of batches [n_i, d], in O(d) memory.

    Batches are merged with the parallel update of Chan, Golub and LeVeque (1979) in
    float64: unlike sum-of-squares minus squared mean, it keeps its precision when a
    feature's mean is large against its spread.

    Attributes:
      count: rows seen.
      mean: float64 [d] mean of the rows (None before the first row).
      variance: float64 [d] population variance (divides by count, as np.var).
    """

    def __init__(self):
        self.count = 0
        self.mean = None
        self._m2 = None  # sum of squared deviations from the mean

    def update(self, batch):
        batch = np.asarray(batch, np.float64)
        n = len(batch)
        if not n:
            return
        mean = batch.mean(axis=0)
        m2 = np.square(batch - mean).sum(axis=0)
        if not self.count:
            self.count, self.mean, self._m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self._m2 = self._m2 + m2 + np.square(delta) * (self.count * n / total)
        self.count = total

    @property
    def variance(self):
        return None if self._m2 is None else self._m2 / self.count
