"""The outputs: scores as CSV or Parquet shards, error records as JSON lines, the counts.

Every name the outputs get is made here: PREFIX-SSSSS-of-NNNNN.csv|.parquet,
PREFIX-errors-SSSSS-of-NNNNN.jsonl and PREFIX-counts.json, which the driver reads back.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import PredictionResult

from mmocgan_tf.deploy.beam.inference import OUTPUT_COLUMNS
from mmocgan_tf.deploy.serving.contract import explanation_columns, top_features

OUTPUT_FORMATS = ("csv", "parquet")
ERRORS_SUFFIX = "-errors"
COUNTS_SUFFIX = "-counts"
COUNTS = ("rows_scored", "rows_rejected", "files_rejected")


def output_columns(feature_names, explain) -> list[str]:
    """The columns after the ids."""
    return [*OUTPUT_COLUMNS, *(explanation_columns(feature_names) if explain else [])]


def counts_path(prefix: str) -> str:
    return prefix + COUNTS_SUFFIX + ".json"


def read_counts(prefix: str) -> dict[str, int]:
    with FileSystems.open(counts_path(prefix)) as f:
        return json.loads(f.read().decode("utf-8"))


def parquet_fields(id_columns, id_types, feature_names, explain) -> list[tuple[str, str]]:
    """(column, arrow type alias) of every output column of a Parquet output."""
    fields = [*((n, id_types[n]) for n in id_columns),
              ("score", "float32"), ("is_anomaly", "bool"), ("mode", "int64")]
    if explain:
        *attributions, top = explanation_columns(feature_names)
        fields += [*((c, "float32") for c in attributions), (top, "string")]
    return fields


def arrow_schema(fields):
    import pyarrow as pa

    return pa.schema([pa.field(name, pa.type_for_alias(kind)) for name, kind in fields])


class _CsvLines(beam.DoFn):
    """A scored block -> one element holding its output lines (WriteToText ends it)."""

    def __init__(self, feature_names, explain):
        self.names, self.explain = list(feature_names), explain

    def process(self, result: PredictionResult) -> Iterator[str]:
        block, out = result.example, result.inference
        columns = [*block.ids,
                   [f"{s:.9g}" for s in out["score"].astype(np.float64)],
                   out["is_anomaly"].astype(np.int64).tolist(),
                   out["mode"].astype(np.int64).tolist()]
        if self.explain:
            attributions = out["attributions"].astype(np.float64)
            columns += [[f"{v:.9g}" for v in column] for column in attributions.T]
            columns.append(top_features(attributions, self.names))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(zip(*columns, strict=True))
        yield buffer.getvalue().removesuffix("\n")


class _ArrowTable(beam.DoFn):
    """A scored block -> a pyarrow Table of the output schema."""

    def __init__(self, fields, feature_names, id_columns, explain):
        self.fields, self.names, self.id_columns = fields, list(feature_names), list(id_columns)
        self.explain = explain

    def setup(self):
        self.schema = arrow_schema(self.fields)

    def process(self, result: PredictionResult):
        import pyarrow as pa

        block, out = result.example, result.inference
        arrays = [pa.array(values, type=self.schema.field(name).type)
                  for name, values in zip(self.id_columns, block.ids, strict=True)]
        arrays += [pa.array(out["score"].astype(np.float32)),
                   pa.array(out["is_anomaly"].astype(bool)),
                   pa.array(out["mode"].astype(np.int64))]
        if self.explain:
            attributions = out["attributions"].astype(np.float32)
            arrays += [pa.array(column) for column in attributions.T]
            arrays.append(pa.array(top_features(attributions, self.names)))
        yield pa.Table.from_arrays(arrays, schema=self.schema)


def _csv_header(columns) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(columns)
    return buffer.getvalue()


def _counts_json(counts: dict) -> str:
    return json.dumps({k: int(counts.get(k, 0)) for k in COUNTS}, sort_keys=True)


class WriteOutputs(beam.PTransform):
    """{"scores": PredictionResults, "errors": error dicts} -> the three outputs.

    id_types: {id column: arrow type alias}, needed for a Parquet output.
    """

    def __init__(self, prefix, feature_names, id_columns, *, output_format="csv",
                 explain=False, id_types=None, num_shards=0):
        super().__init__()
        self.prefix, self.names, self.ids = prefix, list(feature_names), list(id_columns)
        self.output_format, self.explain = output_format, explain
        self.id_types, self.num_shards = id_types, num_shards

    def expand(self, scored):
        scores, errors = scored["scores"], scored["errors"]
        suffix = "." + self.output_format
        if self.output_format == "csv":
            header = _csv_header([*self.ids, *output_columns(self.names, self.explain)])
            _ = (scores | "CsvLines" >> beam.ParDo(_CsvLines(self.names, self.explain))
                 | "WriteScores" >> beam.io.WriteToText(
                     self.prefix, file_name_suffix=suffix, num_shards=self.num_shards,
                     header=header))
        else:
            fields = parquet_fields(self.ids, self.id_types, self.names, self.explain)
            _ = (scores
                 | "ArrowTables" >> beam.ParDo(_ArrowTable(fields, self.names, self.ids,
                                                           self.explain))
                 | "WriteScores" >> beam.io.WriteToParquetBatched(
                     self.prefix, arrow_schema(fields), file_name_suffix=suffix,
                     num_shards=self.num_shards))
        _ = (errors | "ErrorJson" >> beam.Map(json.dumps, sort_keys=True)
             | "WriteErrors" >> beam.io.WriteToText(
                 self.prefix + ERRORS_SUFFIX, file_name_suffix=".jsonl",
                 num_shards=self.num_shards))
        scored_rows = scores | "CountScored" >> beam.Map(lambda r: (COUNTS[0], len(r.example)))
        rejected = errors | "CountRejected" >> beam.Map(
            lambda e: (COUNTS[1] if e["kind"] == "row" else COUNTS[2], 1))
        return ((scored_rows, rejected) | "Counts" >> beam.Flatten()
                | "Sum" >> beam.CombinePerKey(sum)
                | "OneDict" >> beam.combiners.ToDict()
                | "AsJson" >> beam.Map(_counts_json)
                | "WriteCounts" >> beam.io.WriteToText(
                    self.prefix + COUNTS_SUFFIX, file_name_suffix=".json", num_shards=1,
                    shard_name_template=""))
