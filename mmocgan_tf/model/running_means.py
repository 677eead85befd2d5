"""Running means of a train step's loss terms in one Keras metric.

A GAN step logs a dozen terms; one keras.metrics.Mean per term adds two variable updates
each to every step, a measurable share of a step this small. Here all terms share one
vector of totals and one count: two updates per step, the same logs.
"""

import keras
from keras import ops


class RunningMeans(keras.metrics.Metric):
    """Mean of each named scalar since the last reset; result() is a dict by name."""

    def __init__(self, names, name="running_means", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.names = tuple(names)
        self.total = self.add_variable(shape=(len(self.names),), initializer="zeros",
                                       dtype=self.dtype, name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype,
                                       name="count")

    def update_state(self, values):
        """values: {name: scalar} with every name of the metric."""
        self.total.assign_add(ops.stack([ops.cast(values[n], self.dtype) for n in self.names]))
        self.count.assign_add(ops.cast(1, self.dtype))

    def reset_state(self):
        self.total.assign(ops.zeros_like(self.total))
        self.count.assign(0)

    def result(self):
        means = ops.unstack(ops.divide_no_nan(self.total, self.count))
        return dict(zip(self.names, means, strict=True))

    def get_config(self):
        return {**super().get_config(), "names": list(self.names)}
