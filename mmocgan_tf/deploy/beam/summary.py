"""What a score_with_beam run did, and the one line a command prints about it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BeamScoringSummary:
    """What one score_with_beam run did.

    Attributes:
      rows_scored: rows written to the output.
      rows_rejected: rows written to the errors output instead (kind "row").
      files_rejected: files of which no row, or no row after some point, was read: an
        unreadable or corrupt file, a header without a feature or id column (kind
        "file"). Their unread rows are in neither count.
      files_matched: the files the data pattern matched.
      output_pattern: a glob of the output shards, e.g. "out/scores-*.csv".
      errors_pattern: a glob of the error shards, e.g. "out/scores-errors-*.jsonl".
      output_files, errors_files: the shards written, sorted.
      counts_path: the JSON file holding the counts.
      output_format: "csv" or "parquet".
    """

    rows_scored: int
    rows_rejected: int
    files_rejected: int
    files_matched: int
    output_pattern: str
    errors_pattern: str
    output_files: tuple[str, ...]
    errors_files: tuple[str, ...]
    counts_path: str
    output_format: str

    @property
    def rejected(self) -> int:
        """Error records of both kinds: 0 when every row of every file was scored."""
        return self.rows_rejected + self.files_rejected

    @property
    def complete(self) -> bool:
        """Whether every row of every matched file was scored."""
        return self.rejected == 0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def summary_line(summary: BeamScoringSummary) -> str:
    """One line for a CLI, e.g. "scored 1200 rows into out-*.csv; rejected 1 row into
    out-errors-*.jsonl"; unreadable files are counted after the rows."""
    line = f"scored {_plural(summary.rows_scored, 'row')} into {summary.output_pattern}; "
    if summary.complete:
        return line + "rejected no rows"
    line += f"rejected {_plural(summary.rows_rejected, 'row')}"
    if summary.files_rejected:
        line += (f" and {_plural(summary.files_rejected, 'file')} "
                 f"(not read, or not read to the end)")
    return line + f" into {summary.errors_pattern}"
