"""RunInference's model handler for an mmocgan_tf SavedModel export.

Why not Beam's TensorFlow handler (apache_beam.ml.inference.tensorflow_inference): it
loads models with tf.keras.models.load_model, which in Keras 3 reads only .keras files,
not a SavedModel; it calls the model itself, not a named signature with a dict output;
and importing it needs tensorflow_hub.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from mmocgan_tf.deploy.beam.blocks import RowBlock
from mmocgan_tf.deploy.serving.contract import DEFAULT_SIGNATURE, EXPLAIN_SIGNATURE, INPUT_NAME

OUTPUT_COLUMNS = ("score", "is_anomaly", "mode")
DEFAULT_BATCH_SIZE = 4096


class SavedModelHandler(ModelHandler):
    """RowBlocks in, PredictionResults out, through `serving_default` (and `explain`).

    A batch of blocks is concatenated into one `features` tensor; each block comes back
    as a PredictionResult whose inference is a dict of numpy arrays: score, is_anomaly,
    mode (and attributions). RunInference keeps the loaded SavedModel in a shared handle,
    so it is loaded once per worker process.
    """

    def __init__(self, version_dir: str, *, explain: bool = False,
                 max_batch_rows: int = DEFAULT_BATCH_SIZE):
        # A batch is weighed in rows (element_size_fn); min = max keeps BatchElements'
        # adaptive target at max_batch_rows, so a block never exceeds it alone. (Beam
        # 2.77's max_batch_weight is not accepted by its own BatchElements.)
        rows = int(max_batch_rows)
        super().__init__(min_batch_size=rows, max_batch_size=rows, element_size_fn=len)
        self.version_dir = version_dir
        self.explain = bool(explain)

    def load_model(self):
        import tensorflow as tf

        return tf.saved_model.load(self.version_dir)

    def run_inference(self, batch: Sequence[RowBlock], model, inference_args=None
                      ) -> Iterable[PredictionResult]:
        import tensorflow as tf

        batch = [block for block in batch if len(block)]
        if not batch:
            return
        features = {INPUT_NAME: tf.constant(np.concatenate([b.features for b in batch]))}
        result = model.signatures[DEFAULT_SIGNATURE](**features)
        outputs = {name: result[name].numpy() for name in OUTPUT_COLUMNS}
        if self.explain:
            explained = model.signatures[EXPLAIN_SIGNATURE](**features)
            outputs["attributions"] = explained["attributions"].numpy()
        start = 0
        for block in batch:
            stop = start + len(block)
            scored = dataclasses.replace(block, features=None)  # not needed downstream
            yield PredictionResult(scored, {k: v[start:stop] for k, v in outputs.items()},
                                   model_id=self.version_dir)
            start = stop

    def get_num_bytes(self, batch: Sequence[RowBlock]) -> int:
        return sum(block.features.nbytes for block in batch)

    def get_metrics_namespace(self) -> str:
        return "mmocgan_tf"
