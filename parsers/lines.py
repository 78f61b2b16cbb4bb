"""Read a log file into a polars frame of numbered lines.

Every log parser works on the same frame (`line`, `text`) so that its per-line tests are
polars string expressions instead of Python loops. Reading is the only step that touches
every byte in Python, and it does no more per line than the split itself: logs of hundreds
of MB must load in seconds.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl

GZIP_MAGIC = b"\x1f\x8b"
# Provenance lines the shared corpus puts at the top of its files; they describe the log and
# would otherwise be parsed as part of it.
HEADER = "#@ "
SCHEMA = {"line": pl.Int64, "text": pl.Utf8}


def read_lines(path: Path) -> pl.DataFrame:
    """All lines of `path` (plain text or gzip) as `line` (1-based) and `text`.

    gzip is recognised by its magic bytes, not the file name, because collected logs are
    often renamed. Undecodable bytes are replaced rather than fatal (console pastes carry
    stray bytes), a trailing `\\r` is stripped, and `#@ ` header lines are dropped while the
    remaining lines keep their numbers in the file. OSError propagates to the caller.
    """
    with path.open("rb") as handle:
        magic = handle.read(len(GZIP_MAGIC))
    if magic == GZIP_MAGIC:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    else:
        data = path.read_bytes()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    text = pl.Series("text", lines, dtype=pl.Utf8)
    frame = pl.DataFrame(
        {"line": pl.int_range(1, len(text) + 1, eager=True, dtype=pl.Int64), "text": text},
        schema=SCHEMA,
    )
    return frame.filter(~pl.col("text").str.starts_with(HEADER)).with_columns(
        pl.col("text").str.strip_suffix("\r")
    )
