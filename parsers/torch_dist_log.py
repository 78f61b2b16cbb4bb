"""Facts from PyTorch's distributed C++ log lines (ProcessGroupNCCL and friends).

With TORCH_CPP_LOG_LEVEL=INFO every ProcessGroupNCCL says which PG it is (`PG Name`, the
`group_desc` the framework gave it), its size, the rank that created it and, for
`ncclCommSplit` groups, the NCCL comm pointer it got, which ties a PG name to the
communicator the NCCL log describes. Without INFO the same logs still carry what a hang
leaves behind: watchdog timeouts naming the collective (`WorkNCCL(SeqNum=…)`), how far
each PG got (`last enqueued work: N, last completed work: M`), the desync report
(`[7] finished collective #182, but didn't join collective #183`) and NCCL errors.

The texts changed over the years; each pattern takes every variant we found in torch
sources and real logs. The PG prefix went `[Rank r]` (≤ 2.2) -> `[PG uid Rank r]` (2.3)
-> `[PG name (desc) Rank r]` (2.4) -> `[PG ID id PG GUID name(desc) Rank r]` (2.5+), and
WorkNCCL lines moved from `[Rank r]` to `[PG GUID name(desc) Rank r]` in 2026. The rank
in any of these prefixes is the rank inside that PG, not the global rank.

Lines can sit behind any prefix (torchrun `[rank3]:`, Ray `(Worker pid=…)`, glog headers)
and files can be big, so all matching is polars expressions over a frame of lines: one
multi-literal scan keeps the few candidate lines, and every kind of fact is a lazy query
over them, all run in one `collect_all` (a polars call costs the same on ten rows as on ten
thousand).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from diagnose.model import Evidence
from parsers.lines import FILE, any_word, collect_all, split, tagged

# Cheap literal test first: only these lines can hold any fact below.
_KEYWORDS = [
    "[PG ", "Rank ", "WorkNCCL", "collective #", "lagging ranks", "Error", "NCCL error",
    "ast enqueued", "ast_enqueued",
]  # fmt: skip
# Only lines matching this can hold a fact (a regex, for other parsers to share the scan).
CANDIDATES = any_word(_KEYWORDS)
_LAUNCHER_RANK = r"\[rank(\d+)\]:"
_STREAM = r"^(.*?\[rank\d+\]:)"
_PG_PREFIX = (
    r"\[PG (?:ID (?P<pg_id>\d+) PG )?(?:GUID )?(?P<name>[^\s(\]]+)(?: ?\((?P<desc>[^)]*)\))? "
    r"Rank (?P<rank>-?\d+)\]|\[Rank (?P<bare_rank>-?\d+)\]"
)
_OPTIONS = "ProcessGroupNCCL initialization options:"
_CREATED = r"ProcessGroupNCCL created ncclComm_ (0x[0-9a-fA-F]+)"
_SPLITTING = r"Splitting NCCL communicator from (0x[0-9a-fA-F]+)"
_CHILD = r"Rank -?\d+: created child comm (?P<comm>0x[0-9a-fA-F]+) with color_id (?P<color>-?\d+)"
_WORK = {
    "seq": r"WorkNCCL\([^)]*?SeqNum=(\d+)",
    "op": r"WorkNCCL\([^)]*?OpType=(\w+)",
    "numel_in": r"WorkNCCL\([^)]*?NumelIn=(-?\d+)",
    "numel_out": r"WorkNCCL\([^)]*?NumelOut=(-?\d+)",
    "timeout_ms": r"WorkNCCL\(.*?Timeout\(ms\)=(\d+)",
    "ran_ms": r"\) ran for (\d+) milliseconds",
}
# `… last enqueued work: N, last completed work: M` in watchdog lines, and the Flight
# Recorder's `pg_status` dict (`'last_started_collective': N`) when a framework logs it.
_PROGRESS = {
    "seq": r"(?:detected by watchdog at work(?: sequence id)?|Timeout at NCCL work): (-?\d+)",
    **{
        f"last_{what}": rf"(?i)last[ _]{what}(?:[ _]collective| (?:NCCL )?work)['\"]?: *(-?\d+)"
        for what in ("enqueued", "started", "completed")
    },
}
# kind -> (pattern with `ranks` and seq groups); TraceUtils.h retrieveDesyncReport.
_DESYNC = {
    "not_joined": r"\[(?P<ranks>[\d, ]+)\] finished collective #(?P<done>\d+), but didn't join "
    r"collective #(?P<missing>\d+)",
    "not_finished": r"\[(?P<ranks>[\d, ]+)\] joined but didn't finish collective #(?P<missing>\d+)",
    "never_joined": r"ranks \[(?P<ranks>[\d, ]+)\] are the lagging ranks",
}
# First match wins: a watchdog line often also names DistBackendError or an NCCL error.
_ERRORS: tuple[tuple[str, str], ...] = (
    ("watchdog_terminated", r"(?:Process group|NCCL) watchdog thread terminated with exception"),
    ("dist_backend_error", r"\bDistBackendError\b"),
    (
        "nccl_result",
        r"\bnccl(?:UnhandledCuda|System|Internal|InvalidArgument|InvalidUsage|Remote)Error\b",
    ),
    # Not inside a quoted string: tracebacks quote the raise statement's source line.
    ("nccl_error", r"(?:^|[^\"'\w])NCCL error\b"),
)

# Per-line facts of a PG, merged over its lines by taking the first that says it.
_PG_FIRST = (
    "pg_id", "pg_desc", "global_rank", "options_name", "size", "timeout_ms", "split_color",
    "options_line", "parent_comm", "created_comm",
)  # fmt: skip
_PGS_SCHEMA = {
    "rank": pl.Int64,
    "global_rank": pl.Int64,
    "pg_id": pl.Int64,
    "pg_name": pl.Utf8,
    "pg_desc": pl.Utf8,
    "size": pl.Int64,
    "ranks": pl.List(pl.Int64),
    "timeout_ms": pl.Int64,
    "split_color": pl.Int64,
    "parent_comm": pl.Utf8,
    "comm": pl.Utf8,
    "line": pl.Int64,
    "text": pl.Utf8,
}
_WORKS_SCHEMA = {
    "rank": pl.Int64,
    "global_rank": pl.Int64,
    "pg_name": pl.Utf8,
    "pg_desc": pl.Utf8,
    "seq": pl.Int64,
    "op": pl.Utf8,
    "numel_in": pl.Int64,
    "numel_out": pl.Int64,
    "timeout_ms": pl.Int64,
    "ran_ms": pl.Int64,
    "line": pl.Int64,
    "text": pl.Utf8,
}
_PROGRESS_SCHEMA = {
    "rank": pl.Int64,
    "global_rank": pl.Int64,
    "pg_name": pl.Utf8,
    "pg_desc": pl.Utf8,
    "seq": pl.Int64,
    "last_enqueued": pl.Int64,
    "last_started": pl.Int64,
    "last_completed": pl.Int64,
    "line": pl.Int64,
    "text": pl.Utf8,
}
_DESYNC_SCHEMA = {
    "rank": pl.Int64,
    "kind": pl.Utf8,
    "done_seq": pl.Int64,
    "missing_seq": pl.Int64,
    "line": pl.Int64,
    "text": pl.Utf8,
}


@dataclass
class TorchDistFacts:
    """What the PyTorch distributed lines of one file say.

    pgs: one row per (PG, rank in it) seen in ProcessGroupNCCL lines; `rank` is the rank in
      the PG, `global_rank` comes from `global rank:` or a torchrun `[rankN]:` prefix,
      `comm` is the NCCL comm pointer torch logged for it (split or `created ncclComm_`),
      `ranks` is only known for the default PG (all ranks; torch prints no member list).
    works: every line naming a `WorkNCCL(…)` (watchdog timeouts, blocking-wait timeouts,
      the exception that ends the watchdog), with the PG when the line has its prefix.
      Before the 2026 fix (pytorch#191305) a bare `[Rank r]` on these lines could be the
      rank of the first PG the process used, not of the timed-out one.
    progress: `last enqueued/started/completed work` lines (or a logged Flight Recorder
      `pg_status`), `seq` the work the watchdog stopped at.
    desync: one row per rank the TORCH_NCCL_DESYNC_DEBUG report names; `rank` is the rank
      in the timed-out PG, `kind` says how it lags.
    errors: NCCL/backend error lines worth showing as evidence.
    """

    path: str
    pgs: pl.DataFrame
    works: pl.DataFrame
    progress: pl.DataFrame
    desync: pl.DataFrame
    errors: list[Evidence]


def parse_torch_dist(frame: pl.DataFrame, display: str) -> TorchDistFacts:
    """Collect the distributed facts of `frame` (columns `line`, `text`)."""
    return parse_torch_dist_files([(frame, display)])[0]


def parse_torch_dist_files(files: Sequence[tuple[pl.DataFrame, str]]) -> list[TorchDistFacts]:
    """parse_torch_dist of each (frame, display), in one polars run for all of them (see
    parsers.nccl_log.parse_nccl_files); FILE, the file's index, leads every key. A frame may
    hold only some of a file's lines, as long as those include every line matching
    CANDIDATES."""
    if not files:
        return []
    candidates = tagged([frame for frame, _ in files]).filter(
        pl.col("text").str.contains(CANDIDATES)
    )
    rows = collect_all(_rows(candidates))[0].lazy()
    outputs = collect_all(*(query(rows) for query in (_pgs, _works, _progress, _desync, _errors)))
    pgs, works, progress, desync, errors = (split(output, len(files)) for output in outputs)
    return [
        TorchDistFacts(
            display,
            pgs[i],
            works[i],
            progress[i],
            desync[i],
            [Evidence(display, line, text, kind) for line, text, kind in errors[i].rows()],
        )
        for i, (_, display) in enumerate(files)
    ]


def _rows(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Candidate lines with who wrote them: launcher rank, PG prefix, output stream."""
    text = pl.col("text")
    prefix = text.str.extract_groups(_PG_PREFIX)
    return frame.select(
        FILE,
        "line",
        text.str.strip_chars(),
        text.str.extract(_STREAM, 1).fill_null("").alias("stream"),
        text.str.extract(_LAUNCHER_RANK, 1).cast(pl.Int64).alias("launcher_rank"),
        prefix.struct.field("pg_id").cast(pl.Int64).alias("pg_id"),
        prefix.struct.field("name").alias("pg_name"),
        prefix.struct.field("desc").alias("pg_desc"),
        pl.coalesce(prefix.struct.field("rank"), prefix.struct.field("bare_rank"))
        .cast(pl.Int64)
        .alias("rank"),
    )


def _pgs(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (PG name, rank in PG): the ProcessGroupNCCL each process built.

    A process is identified by its rank inside a PG, so interleaved logs of many ranks
    still split cleanly; the old `[Rank r]` prefix names no PG, so its option lines stay
    one row each.
    """
    text = pl.col("text")
    is_options = text.str.contains(_OPTIONS, literal=True)

    def option(pattern: str) -> pl.Expr:
        return pl.when(is_options).then(text.str.extract(pattern, 1))

    facts = rows.filter(pl.col("pg_name").is_not_null() | is_options).select(
        FILE,
        "line",
        "text",
        "stream",
        "rank",
        "pg_id",
        "pg_desc",
        pl.col("pg_name").alias("prefix_name"),
        pl.when(pl.col("pg_name").is_null()).then(pl.col("line")).alias("unnamed"),
        pl.coalesce(option(r"global rank: (\d+)"), pl.col("launcher_rank").cast(pl.Utf8)).alias(
            "global_rank"
        ),
        option(r"PG Name: (\S+)").alias("options_name"),
        option(r"\bsize: (\d+)").alias("size"),
        option(r"TIMEOUT\(ms\): (\d+)").alias("timeout_ms"),
        option(r"SPLIT_COLOR: (-?\d+)").alias("split_color"),
        pl.when(is_options).then(pl.col("line")).alias("options_line"),
        text.str.extract(_SPLITTING, 1).alias("parent_comm"),
        text.str.extract(_CREATED, 1).alias("created_comm"),
    )
    key = [FILE, "prefix_name", "rank", "unnamed"]
    pgs = facts.group_by(key, maintain_order=True).agg(
        pl.col("line").min(),
        pl.col("text").first(),
        pl.col("stream").filter(pl.col("options_line").is_not_null()).first(),
        *[pl.col(name).drop_nulls().first() for name in _PG_FIRST],
    )
    pgs = pgs.with_columns(pl.col("split_color").cast(pl.Int64))
    pgs = pgs.join(_child_comms(rows, pgs), on=key, how="left", nulls_equal=True)
    pg_name = pl.coalesce("options_name", "prefix_name")
    size = pl.col("size").cast(pl.Int64)
    return (
        pgs.select(
            FILE,
            "rank",
            "global_rank",
            "pg_id",
            pg_name.alias("pg_name"),
            "pg_desc",
            size.alias("size"),
            pl.when((pg_name == "0") | (pl.col("pg_id") == 0))
            .then(pl.int_ranges(0, size))
            .alias("ranks"),
            "timeout_ms",
            "split_color",
            "parent_comm",
            pl.coalesce("created_comm", "child_comm").alias("comm"),
            "line",
            "text",
        )
        .cast(_PGS_SCHEMA)
        .sort(FILE, "line")
    )


def _child_comms(rows: pl.LazyFrame, pgs: pl.LazyFrame) -> pl.LazyFrame:
    """`Rank r: created child comm 0x… with color_id C` lines, given to their PG.

    NCCLUtils writes them without a PG prefix, right after the PG's `Splitting NCCL
    communicator` line; the PG is the latest one of the same output stream created with
    that split color before the line (PP and EMBEDDING groups can share a color).
    """
    children = (
        rows.filter(pl.col("text").str.contains("created child comm 0x", literal=True))
        .select(FILE, "line", "stream", pl.col("text").str.extract_groups(_CHILD).alias("c"))
        .unnest("c")
        .filter(pl.col("comm").is_not_null())
        .select(
            FILE,
            "line",
            "stream",
            pl.col("color").cast(pl.Int64),
            pl.col("comm").alias("child_comm"),
        )
        .sort("line")
    )
    created = (
        pgs.filter(pl.col("options_line").is_not_null() & pl.col("split_color").is_not_null())
        .select(
            FILE,
            "prefix_name",
            "rank",
            "unnamed",
            "stream",
            pl.col("split_color").alias("color"),
            "options_line",
        )
        .sort("options_line")
    )
    matched = children.join_asof(
        created,
        left_on="line",
        right_on="options_line",
        by=[FILE, "stream", "color"],
        strategy="backward",
        check_sortedness=False,  # both sides are sorted on their line (all files) just above
    )
    return (
        matched.filter(pl.col("options_line").is_not_null())
        .group_by(FILE, "prefix_name", "rank", "unnamed", maintain_order=True)
        .agg(pl.col("child_comm").first())
    )


def _pg_columns() -> list[pl.Expr]:
    """Who wrote a line, as far as the line itself says."""
    return [
        pl.col(FILE),
        pl.col("rank"),
        pl.col("launcher_rank").alias("global_rank"),
        pl.col("pg_name"),
        pl.col("pg_desc"),
    ]


def _works(rows: pl.LazyFrame) -> pl.LazyFrame:
    found = rows.filter(pl.col("text").str.contains("WorkNCCL(", literal=True))
    return found.select(
        *_pg_columns(),
        *[pl.col("text").str.extract(p, 1).alias(name) for name, p in _WORK.items()],
        "line",
        "text",
    ).cast(_WORKS_SCHEMA)


def _progress(rows: pl.LazyFrame) -> pl.LazyFrame:
    found = rows.filter(pl.col("text").str.contains("(?i)last[ _]enqueued"))
    return found.select(
        *_pg_columns(),
        *[pl.col("text").str.extract(p, 1).alias(name) for name, p in _PROGRESS.items()],
        "line",
        "text",
    ).cast(_PROGRESS_SCHEMA, strict=False)


def _desync(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per lagging rank of each desync-report line.

    Sequence numbers count from 1: `done_seq` is the last collective the rank finished,
    `missing_seq` the one it holds up (for ranks that never joined any: 0 and 1).
    """
    frames = []
    for kind, pattern in _DESYNC.items():
        found = (
            rows.select(FILE, "line", "text", pl.col("text").str.extract_groups(pattern).alias("d"))
            .unnest("d")
            .filter(pl.col("ranks").is_not_null())
        )
        groups = re.compile(pattern).groupindex
        missing = pl.col("missing").cast(pl.Int64) if "missing" in groups else pl.lit(1)
        done = pl.col("done").cast(pl.Int64) if "done" in groups else missing - 1
        frames.append(
            found.select(
                FILE,
                pl.col("ranks").str.extract_all(r"\d+").alias("rank"),
                pl.lit(kind).alias("kind"),
                done.alias("done_seq"),
                missing.alias("missing_seq"),
                "line",
                "text",
            )
            .explode("rank")
            .cast(_DESYNC_SCHEMA)
        )
    return pl.concat(frames).sort(FILE, "line", "rank")


def _errors(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Error lines with their kind, the first of _ERRORS each matches."""
    kind = pl.lit(None, dtype=pl.Utf8)
    for name, pattern in reversed(_ERRORS):
        kind = pl.when(pl.col("text").str.contains(pattern)).then(pl.lit(name)).otherwise(kind)
    found = rows.select(FILE, "line", "text", kind.alias("kind"))
    return found.filter(pl.col("kind").is_not_null())
