"""The scoring pipeline: ScoreShards (its reusable middle) and score_with_beam (all of it).

Files listed on the driver -> spread over the workers -> ReadShard -> RunInference with
SavedModelHandler -> WriteOutputs. Every argument is checked before a pipeline is built.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from mmocgan_tf.data.columns import as_names
from mmocgan_tf.data.errors import DataError
from mmocgan_tf.deploy.beam import writing
from mmocgan_tf.deploy.beam.blocks import ERRORS, error_record
from mmocgan_tf.deploy.beam.inference import DEFAULT_BATCH_SIZE, SavedModelHandler
from mmocgan_tf.deploy.beam.reading import (
    INPUT_FORMATS,
    ReadShard,
    input_format_of,
    open_parquet_raw,
)
from mmocgan_tf.deploy.beam.summary import BeamScoringSummary
from mmocgan_tf.deploy.serving.contract import EXPLAIN_SIGNATURE, no_explain_signature


class ScoreShards(beam.PTransform):
    """File paths -> {"scores": PredictionResults of RowBlocks, "errors": error dicts}.

    Args:
      version_dir: the SavedModel version folder (readable by every worker).
      feature_names: the model's features, in input order (the export's metadata).
      id_columns: columns passed through to the output, to join the scores back.
      batch_size: rows per block read from a file, and rows per model call at most.
      input_format: "csv", "parquet" or "tfrecord"; None: from each file's name.
      explain: also run the explain signature.
      id_types: {id column: arrow type name}, for a Parquet output fed by Parquet files.
    """

    def __init__(self, version_dir, feature_names, *, id_columns=(),
                 batch_size=DEFAULT_BATCH_SIZE, input_format=None, explain=False,
                 id_types=None):
        super().__init__()
        self.version_dir, self.explain = version_dir, explain
        self.reader = ReadShard(feature_names, id_columns, batch_size, input_format, id_types)

    def expand(self, paths):
        read = (
            paths
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadShards" >> beam.ParDo(self.reader).with_outputs(ERRORS, main="blocks")
            .with_exception_handling(main_tag="blocks", dead_letter_tag="failed_files",
                                     partial=True))  # partial: a file is never held whole
        blocks = read["blocks"] | "SpreadBlocks" >> beam.Reshuffle()
        scores, failed = blocks | "Score" >> RunInference(SavedModelHandler(
            self.version_dir, explain=self.explain, max_batch_rows=self.reader.batch_size)
        ).with_exception_handling()
        errors = (
            (read[ERRORS],
             read["failed_files"] | "FileFailures" >> beam.Map(_failed_file),
             failed.failed_inferences | "InferenceFailures" >> beam.FlatMap(_failed_batch))
            | "AllErrors" >> beam.Flatten())
        return {"scores": scores, "errors": errors}


def _failed_file(bad) -> dict:
    path, (_type, exc_repr, _traceback) = bad
    return error_record("file", path, None, None, f"reading stopped on an unexpected error "
                        f"(the rows before it were scored, the rest not): {exc_repr}")


def _failed_batch(bad) -> Iterator[dict]:
    batch, exc = bad
    for block in batch:
        for row, line in zip(block.rows, block.lines, strict=True):
            yield error_record("row", block.file, line, row,
                               f"the model failed on this row's batch: {exc!r}")


def score_with_beam(model_path: str, data_pattern: str, output_prefix: str, *,
                    id_columns: Sequence[str] | str = (), output_format: str = "csv",
                    pipeline_args: Sequence[str] = (), batch_size: int = DEFAULT_BATCH_SIZE,
                    input_format: str | None = None, explain: bool = False,
                    num_shards: int = 0) -> BeamScoringSummary:
    """Scores every row of the files matching data_pattern on Beam; returns the counts.

    Args:
      model_path: saved_models/NAME (newest version) or saved_models/NAME/VERSION; read by
        the driver for the metadata and loaded by every worker.
      data_pattern: a file pattern (glob) of CSV, Parquet or TFRecord shards, on any
        filesystem Beam reads (local, gs://, s3://, hdfs://, with the right Beam extras).
      output_prefix: outputs go to PREFIX-SSSSS-of-NNNNN.csv|.parquet,
        PREFIX-errors-SSSSS-of-NNNNN.jsonl and PREFIX-counts.json.
      id_columns: columns passed through to the output (names, or one comma-separated
        string) so scores can be joined back; every file must have them.
      output_format: "csv" or "parquet".
      pipeline_args: Beam pipeline options, e.g. ["--runner=FlinkRunner", ...]; without a
        --runner, the local DirectRunner.
      batch_size: rows per block read from a file and per model call at most.
      input_format: "csv", "parquet" or "tfrecord" for every file; None: by file name.
      explain: add attribution_<feature> columns and top_features (explain signature).
      num_shards: output shards; 0: the runner decides.

    Raises:
      ValueError: a bad argument (format, batch size, an id column named like an output
        column, a pipeline option Beam refuses or an unknown runner).
      ExportError: no exported model at model_path (or, with explain, no explain
        signature).
      DataError: no file matches data_pattern.
      Exception: whatever the runner raises when the pipeline itself fails.
    """
    if output_format not in writing.OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {writing.OUTPUT_FORMATS}, got "
                         f"{output_format!r}")
    if input_format is not None and input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS} or None, got "
                         f"{input_format!r}")
    _require_int("batch_size", batch_size, 1)
    _require_int("num_shards", num_shards, 0)
    options = pipeline_options(pipeline_args)
    from mmocgan_tf.deploy import export  # here: workers that only read need no TensorFlow

    version_dir = export.latest_version_dir(model_path)
    meta = export.read_metadata(version_dir)
    names = [str(n) for n in meta["feature_names"]]
    if explain and EXPLAIN_SIGNATURE not in meta.get("signatures", {}):
        raise export.ExportError(no_explain_signature(version_dir))
    ids = [n for n in (as_names(id_columns) or []) if n]
    columns = writing.output_columns(names, explain)
    for name in ids:
        if ids.count(name) > 1:
            raise ValueError(f"id column {name!r} given twice")
        if name in columns:
            raise ValueError(f"id column {name!r} has the name of an output column")
    paths = _matched(data_pattern)
    id_types = _id_types(paths[0], ids, input_format) if output_format == "parquet" else None

    with beam.Pipeline(options=options) as pipeline:
        _ = (pipeline | "Files" >> beam.Create(paths)
             | "ScoreShards" >> ScoreShards(version_dir, names, id_columns=ids,
                                            batch_size=batch_size, input_format=input_format,
                                            explain=explain, id_types=id_types)
             | "WriteOutputs" >> writing.WriteOutputs(
                 output_prefix, names, ids, output_format=output_format, explain=explain,
                 id_types=id_types, num_shards=num_shards))

    counts = writing.read_counts(output_prefix)
    suffix = "." + output_format
    errors_prefix = output_prefix + writing.ERRORS_SUFFIX
    return BeamScoringSummary(
        **{name: counts[name] for name in writing.COUNTS}, files_matched=len(paths),
        output_pattern=f"{output_prefix}-*{suffix}", errors_pattern=f"{errors_prefix}-*.jsonl",
        output_files=_glob(f"{output_prefix}-*-of-*{suffix}"),
        errors_files=_glob(f"{errors_prefix}-*-of-*.jsonl"),
        counts_path=writing.counts_path(output_prefix), output_format=output_format)


def _require_int(name, value, least):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def pipeline_options(args: Sequence[str]) -> PipelineOptions:
    """Beam's options from command-line words, a bad value or runner as a ValueError.

    Beam's argparse would print its usage and exit, and an unknown runner would only fail
    when the pipeline is run; options no Beam class knows are left to the runner (a
    portable runner learns its own from the job server).
    """
    if isinstance(args, str):
        raise ValueError("pipeline_args must be a sequence of options, not one string")
    options = PipelineOptions(list(args))
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            options.get_all_options(retain_unknown_options=True)
    except SystemExit:
        reason = (held.getvalue().strip().splitlines() or ["refused"])[-1]
        raise ValueError(f"pipeline options: {reason.partition('error: ')[2] or reason}"
                         ) from None
    runner = options.view_as(StandardOptions).runner
    if runner is not None:
        from apache_beam.runners.runner import create_runner

        try:
            create_runner(runner)
        except (ImportError, ValueError) as err:
            raise ValueError(f"--runner={runner}: {err}") from None
    return options


def _matched(pattern: str) -> list[str]:
    try:
        results = FileSystems.match([pattern])
    except Exception as err:  # BeamIOError: a bad scheme or an unreachable store
        raise DataError(f"{pattern}: cannot list the files ({err})") from None
    paths = sorted(m.path for r in results for m in r.metadata_list
                   if not m.path.endswith(("/", "\\")))
    if not paths:
        raise DataError(f"{pattern}: no files match")
    return paths


def _glob(pattern: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(m.path for r in FileSystems.match([pattern])
                            for m in r.metadata_list))
    except Exception:  # nothing written (a runner that writes no empty shard)
        return ()


def _id_types(first_path, ids, input_format) -> dict[str, str]:
    """Arrow type names of the id columns in a Parquet output: the first file's when it is
    Parquet (so ids join back with their own type), else string."""
    types = dict.fromkeys(ids, "string")
    if not ids or (input_format or input_format_of(first_path)) != "parquet":
        return types
    import pyarrow.parquet as pq

    try:
        with open_parquet_raw(first_path) as raw:
            schema = pq.ParquetFile(raw).schema_arrow
    except Exception:  # an unreadable first file is rejected by the pipeline itself
        return types
    stripped = [n.strip() for n in schema.names]
    for name in ids:
        if name in stripped:
            kind = str(schema.field(stripped.index(name)).type)
            try:
                writing.arrow_schema([(name, kind)])
                types[name] = kind
            except (ValueError, KeyError):  # a type without an alias (e.g. a list): text
                pass
    return types
