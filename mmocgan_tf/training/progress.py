"""The training progress line: epoch i/N, the two main losses, time elapsed and left.

Keras's own bar draws one bar per epoch (hundreds for a full run) and floods logs; this
callback drives one mmocgan_tf.progress.Progress line over the whole fit instead.
"""

import keras

from mmocgan_tf.progress import Progress

SHOWN = ("d_loss", "g_loss")  # the discriminator's and generator's weighted losses


class EpochProgress(keras.callbacks.Callback):
    """One progress line over a fit, updated at every epoch's end."""

    def __init__(self, stream=None, enabled=True, clock=None, initial_epoch=0):
        """initial_epoch: the epochs a resumed fit starts after (the line starts there)."""
        super().__init__()
        self.initial_epoch = initial_epoch
        self._options = dict(stream=stream, enabled=enabled)
        if clock is not None:
            self._options["clock"] = clock
        self.progress = None

    def on_train_begin(self, logs=None):
        self.progress = Progress(self.params.get("epochs"), "epochs", **self._options)
        self.progress.update(self.initial_epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.progress.update(epoch + 1, **{k: logs[k] for k in SHOWN if k in logs})

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Ends the line; safe to call again, e.g. after a fit that raised."""
        if self.progress is not None:
            self.progress.close()
