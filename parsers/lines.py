"""Read a log file into a polars frame of numbered lines.

Every log parser works on the same frame (`line`, `text`) so that its per-line tests are
polars string expressions instead of Python loops. Reading is the only step that touches
every byte, and it does no more per line than the split itself: logs of hundreds of MB must
load in seconds. Polars splits the lines itself where it can (`pl.read_lines`, about three
times faster than splitting in Python and building a Series from the list).
"""

from __future__ import annotations

import gzip
import inspect
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import polars as pl

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 4096
# Provenance lines the shared corpus puts at the top of its files; they describe the log and
# would otherwise be parsed as part of it.
HEADER = "#@ "
SCHEMA = {"line": pl.Int64, "text": pl.Utf8}
# The file index that keeps files apart when parsers run over several at once.
FILE = "__file"


def read_lines(path: Path) -> pl.DataFrame:
    """All lines of `path` (plain text or gzip) as `line` (1-based) and `text`.

    gzip is recognised by its magic bytes, not the file name, because collected logs are
    often renamed. Undecodable bytes are replaced rather than fatal (console pastes carry
    stray bytes), a trailing `\\r` is stripped, and `#@ ` header lines are dropped while the
    remaining lines keep their numbers in the file. OSError propagates to the caller.
    """
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if head[: len(GZIP_MAGIC)] == GZIP_MAGIC:
        with gzip.open(path, "rb") as handle:
            return drop_headers(split_lines(handle.read()))
    frame = _read_text(path, head)
    return drop_headers(split_lines(path.read_bytes()) if frame is None else frame)


def _read_text(path: Path, head: bytes) -> pl.DataFrame | None:
    """The lines as polars reads them straight from the file (one buffer, no copy in
    Python), or None when it could not read them as they are.

    polars refuses bad UTF-8 and decompresses whatever starts like a compressed stream (a
    log starting `x^` looks like zlib): its first line must be the file's first line.
    """
    split = getattr(pl, "read_lines", None)  # polars >= 1.38
    if split is None or not head:
        return None
    try:
        frame = split(path.absolute(), name="text", glob=False)
    except (pl.exceptions.ComputeError, OSError):
        return None
    first, newline, _ = head.partition(b"\n")
    seen = frame["text"][0].encode() if frame.height else b""
    same = seen == first.removesuffix(b"\r") if newline else seen.startswith(first)
    return _numbered(frame) if same else None


def _numbered(frame: pl.DataFrame, offset: int = 1) -> pl.DataFrame:
    """`frame` with its line numbers; numbering here is about free, while asking read_lines
    for a row index doubles the time it takes to split the file."""
    line = pl.int_range(offset, pl.len() + offset, dtype=pl.Int64).alias("line")
    return frame.select(line, pl.col("text"))


def split_lines(data: bytes) -> pl.DataFrame:
    """`data` as numbered lines, split on `\\n` with one trailing `\\r` stripped per line,
    bad bytes replaced and no row for the empty tail after a final newline."""
    split = getattr(pl, "read_lines", None)  # polars >= 1.38
    if split is not None and data:
        # read_lines decompresses whatever starts like gzip, zlib (`x^`!) or zstd; behind a
        # newline the bytes are taken as they are, and that empty line 0 is dropped.
        data = b"\n" + data
        try:
            frame = split(data, name="text")
        except pl.exceptions.ComputeError:  # not UTF-8: replace the bad bytes and split again
            data = data.decode("utf-8", errors="replace").encode()
            frame = split(data, name="text")
        return _numbered(frame.slice(1))
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    text = pl.Series("text", lines, dtype=pl.Utf8)
    frame = pl.DataFrame(
        {"line": pl.int_range(1, len(text) + 1, eager=True, dtype=pl.Int64), "text": text},
        schema=SCHEMA,
    )
    return frame.with_columns(pl.col("text").str.strip_suffix("\r"))


def drop_headers(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` without the `#@ ` header lines at its top (the others keep their numbers).

    Only a file that opens with one is tested line by line: that is where the corpus puts
    them, and the test costs milliseconds on every big log that has none.
    """
    if frame.is_empty() or not frame["text"][0].startswith(HEADER):
        return frame
    header = frame["text"].str.starts_with(HEADER)
    return frame.slice(frame.height if header.all() else header.arg_min() or 0)


def starts_like_json(frame: pl.DataFrame) -> bool:
    """Whether the file `frame` holds (read_lines' frame) is a JSON document rather than a
    log: its text opens with `{` (blank lines aside; a header block makes it a log)."""
    if frame.is_empty() or frame["line"][0] != 1:
        return False
    text = frame["text"]
    filled = text.str.strip_chars().str.len_bytes() > 0
    return bool(filled.any()) and text.filter(filled)[0].lstrip().startswith("{")


def any_word(words: Iterable[str]) -> str:
    """A pattern matching any of the literal `words`.

    Polars runs an alternation of literals as one SIMD multi-literal scan, several times
    faster than `str.contains_any`: the cheap test that keeps regexes off most lines.
    """
    return "|".join(re.sub(r"([\\.+*?()|\[\]{}^$#&~-])", r"\\\1", word) for word in words)


def collect_all(*queries: pl.LazyFrame) -> list[pl.DataFrame]:
    """Run lazy queries together, on polars' in-memory engine.

    The queries of one file mostly touch a few hundred rows, where a polars call costs far
    more than its work: one call for all of them, on the engine that starts fastest (polars
    2 picks the streaming one by default, twice as slow to start on small frames).
    """
    return pl.collect_all(queries, **_ENGINE)


def _in_memory_engine() -> dict[str, str]:
    """collect_all's argument for the in-memory engine: `in-memory` in recent polars, `cpu`
    before, nothing where collect_all has no engine to choose."""
    if "engine" not in inspect.signature(pl.collect_all).parameters:
        return {}
    try:
        pl.LazyFrame().collect(engine="in-memory")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return {"engine": "cpu"}
    return {"engine": "in-memory"}


_ENGINE = _in_memory_engine()


def tagged(frames: Sequence[pl.DataFrame]) -> pl.LazyFrame:
    """The frames of several files as one, each row with its file's index in FILE."""
    return labelled(frames, range(len(frames)), FILE, pl.UInt32).lazy()


def labelled(
    frames: Sequence[pl.DataFrame],
    labels: Iterable[object],
    name: str,
    dtype: pl.DataType | type[pl.DataType] | None = None,
    how: Literal["vertical", "diagonal_relaxed"] = "vertical",
) -> pl.DataFrame:
    """The frames one under another, each row with its frame's label in column `name`.

    The label column is made in one go (each label repeated as often as its frame has rows)
    rather than added to every frame: with thousands of files, a polars call per frame
    costs more than the rows themselves.
    """
    labels = list(labels)
    body = pl.concat(frames, how=how) if frames else pl.DataFrame()
    counts = pl.Series([frame.height for frame in frames], dtype=pl.UInt32)
    column = pl.select(
        pl.lit(pl.Series(labels, dtype=dtype)).repeat_by(pl.lit(counts)).explode().drop_nulls()
    )
    return body.with_columns(column.to_series().alias(name))


def split(frame: pl.DataFrame, files: int) -> list[pl.DataFrame]:
    """The rows of each of `files` files, in order and without FILE (the tagged counterpart)."""
    if files == 1:  # all rows are the file's: no copy
        return [frame.drop(FILE)]
    parts = frame.partition_by(FILE, as_dict=True, include_key=False, maintain_order=True)
    empty = frame.clear().drop(FILE)
    return [parts.get((i,), empty) for i in range(files)]
