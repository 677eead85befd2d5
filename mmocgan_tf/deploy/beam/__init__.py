"""Offline batch scoring on Apache Beam: file shards in, RunInference, sharded scores out.

    summary = score_with_beam("saved_models/NAME", "data/part-*.csv", "out/scores",
                              id_columns=["id"], pipeline_args=["--direct_num_workers=2"])
    print(summary_line(summary))

`mmocgan-score --runner=...` (cli/score.py) runs the same. The modules, in pipeline order:

  reading.py    the files matching the pattern (CSV with a header, Parquet, TFRecord of
                tf.train.Example), one file per task, read record by record;
  blocks.py     good rows into RowBlocks of at most batch_size rows of one file, bad rows
                into error records {"kind": "row" | "file", "file", "line", "row",
                "reason"}: nothing is dropped without one;
  inference.py  SavedModelHandler, RunInference's handler for the export's signatures;
  writing.py    PREFIX-SSSSS-of-NNNNN.csv|.parquet, PREFIX-errors-*.jsonl and
                PREFIX-counts.json, which the driver reads back into the summary;
  pipeline.py   ScoreShards (paths -> scores and errors) and score_with_beam;
  summary.py    BeamScoringSummary and summary_line.

Needs the `beam` extra: pip install "mmocgan-tf[beam]". docs/BEAM.md has the details.
"""

from mmocgan_tf.deploy.beam.blocks import RowBlock
from mmocgan_tf.deploy.beam.inference import OUTPUT_COLUMNS, SavedModelHandler
from mmocgan_tf.deploy.beam.pipeline import ScoreShards, pipeline_options, score_with_beam
from mmocgan_tf.deploy.beam.reading import INPUT_FORMATS, input_format_of
from mmocgan_tf.deploy.beam.summary import BeamScoringSummary, summary_line
from mmocgan_tf.deploy.beam.writing import OUTPUT_FORMATS

__all__ = [
    "BeamScoringSummary", "INPUT_FORMATS", "OUTPUT_COLUMNS", "OUTPUT_FORMATS", "RowBlock",
    "SavedModelHandler", "ScoreShards", "input_format_of", "pipeline_options",
    "score_with_beam", "summary_line",
]
