"""Process groups and communication events from PyTorch profiler (Kineto) chrome traces.

A trace tells which groups this rank belonged to when profiling started
(`distributedInfo.pg_config`) and every collective it ran inside the window: each
`record_param_comms` CPU op and, on GPU traces, each NCCL kernel carry the collective's
name, the process group's name, description and ranks, the message sizes and the dtype.

Traces reach gigabytes per rank and the comm events are well under one percent of them, so
the file is never loaded whole: it is memory-mapped (or, if gzip, inflated in chunks,
with ISA-L when installed) and searched for one literal, `"Collective name"`, that only comm
events contain; only the events around those hits are decoded. A trace whose kernels carry
no process-group args (torch < 2.3) gets a second pass for NCCL kernel names. Everything
outside the events (`distributedInfo`, `host_name`) sits either before `traceEvents`
(the Python profiler) or after it (Kineto's on-demand traces), so the head and the tail of
the file are searched for it.

`Process Group Ranks` is only a hint: it is `"[]"` for irregular rank sets and size-1
groups and cut after 30 ranks, so ranks come from `pg_config` by group name, then from
`Global rank start/stride` and `Group size`, and only then from that string. A group used
in the window but absent from a `pg_config` captured at profiler start was created after
profiling started; it is reported as late.
"""

from __future__ import annotations

import gzip
import json
import mmap
import re
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from diagnose.classify import kind_of_desc
from diagnose.model import Evidence
from diagnose.observed import ObservedGroup

try:  # ISA-L inflates gzip 3-4x faster than zlib, in its own thread; optional.
    from isal import igzip_threaded as _igzip
    from isal.igzip_lib import IsalError
except ImportError:  # pragma: no cover - depends on the environment
    _igzip = None
    IsalError = zlib.error  # type: ignore[misc,assignment]

GZIP_MAGIC = b"\x1f\x8b"
_HEADER = b"#@ "  # provenance lines of the shared corpus, before the JSON
_ANCHOR = b'"Collective name"'
# Kernels of traces whose NCCL kernels carry no process-group args (torch < 2.3).
_KERNEL_ANCHOR = re.compile(rb'"nccl(?:Dev|Symk?Dev)?Kernel_')
_EVENT_START = re.compile(rb'\{\s*"(?:ph|cat|name|pid|tid|ts|dur)"\s*:')
_DIST_INFO = re.compile(rb'"distributedInfo"\s*:\s*\{')
_HOST_NAME = re.compile(rb'"host_name"\s*:\s*"([^"\\]*)"')
_TRACE_EVENTS = b'"traceEvents"'
# Vendor forks write `"Process Group Description": ,` for empty values.
_EMPTY_VALUE = re.compile(r":\s*(?=[,}])")
_KERNEL_COLL = re.compile(r"^nccl(?:Dev|Symk?Dev)?Kernel_([A-Za-z]+)")
_RANKS_TEXT = re.compile(r"^\[\s*(-?\d+(?:\s*,\s*-?\d+)*)?\s*\]$")

CHUNK = 8 << 20  # bytes inflated per step of a gzip trace
KEEP = 256 << 10  # bytes kept before a chunk, where an event that straddles it starts
TAIL = 8 << 20  # the end of the file, where on-demand traces put distributedInfo
HEAD_LIMIT = 64 << 20  # metadata longer than this before traceEvents is not a trace
MAX_EVENT = 16 << 20
FIRST_WINDOW = 4 << 10
OVERLAP = 64  # longer than any anchor, so a hit across two chunks is found

# Collective names that are bookkeeping, not traffic: `wait` is Work.wait() (a fake size-1
# "group"), `init` and `broadcastUniqueNCCLID` mark a communicator's creation.
NOT_COLLECTIVES = frozenset({"wait", "init", "broadcastUniqueNCCLID"})

DTYPE_BYTES: dict[str, int] = {
    "float": 4, "double": 8, "half": 2, "bfloat16": 2, "byte": 1, "char": 1, "short": 2,
    "int": 4, "long": 8, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
    "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1, "complexfloat": 8, "complexdouble": 16,
    "complexhalf": 4, "uint16": 2, "uint32": 4, "uint64": 8, "unsigned char": 1,
    "signed char": 1, "c10::bfloat16": 2, "c10::half": 2, "int64": 8, "int32": 4,
}  # fmt: skip
# NCCL kernel collective -> the c10d name record_param_comms would give.
KERNEL_COLLECTIVES = {
    "AllReduce": "allreduce", "AllGather": "allgather", "ReduceScatter": "reduce_scatter",
    "Broadcast": "broadcast", "Reduce": "reduce", "SendRecv": "sendrecv",
}  # fmt: skip

COMMS_SCHEMA = {
    "ts": pl.Float64,
    "dur_us": pl.Float64,
    "collective": pl.Utf8,
    "pg_name": pl.Utf8,
    "pg_desc": pl.Utf8,
    "group_size": pl.Int64,
    "in_nelems": pl.Int64,
    "out_nelems": pl.Int64,
    "dtype": pl.Utf8,
    "bytes": pl.Int64,
    "in_splits": pl.List(pl.Int64),
    "out_splits": pl.List(pl.Int64),
    "peer": pl.Int64,
    "group_rank": pl.Int64,
    "seq": pl.Int64,
    "ext_id": pl.Int64,
    "kind": pl.Utf8,
    "name": pl.Utf8,
}


class TraceError(ValueError):
    """The trace cannot be read (truncated, corrupt, not a trace); the message is one line
    and names the file."""


class PgEntry(NamedTuple):
    """One process group as a trace or dump describes it; `ranks` None when unknown."""

    name: str
    desc: str | None
    size: int | None
    ranks: list[int] | None
    backend: str | None


@dataclass
class KinetoTrace:
    """What one rank's trace says about its groups and its communication.

    `comms` has one row per comm event (COMMS_SCHEMA): `kind` "cpu_op" for
    record_param_comms, "kernel" for NCCL kernels (linked to their CPU op by `ext_id`);
    `bytes` is the larger of this rank's input and output buffers; `peer` the global peer
    rank of send/recv; `group_rank` the `Rank` arg (this rank's rank in the group, the
    peer's for send/recv); `seq` the per-group sequence number (torch >= 2.12).
    `pg_config` is distributedInfo's list (empty when the trace has none); `event_pgs` the
    groups the comm events name, with ranks resolved as described in the module doc;
    `late_pgs` the names of groups used but created after profiling started.
    """

    path: str
    rank: int | None
    world_size: int | None
    backend: str | None
    nccl_version: str | None
    host_name: str | None
    pg_config: list[PgEntry]
    comms: pl.DataFrame
    late_pgs: list[str]
    notes: list[str] = field(default_factory=list)
    event_pgs: list[PgEntry] = field(default_factory=list)
    dist_info_at: str | None = None  # "start" (before traceEvents), "end", or None

    def group(self, name: str) -> PgEntry | None:
        """The group of that name, from pg_config first, else from the events."""
        return next((g for g in [*self.pg_config, *self.event_pgs] if g.name == name), None)


def sniff_kineto(head: bytes) -> bool:
    """Whether the first bytes of a file (raw or gzip) are a chrome trace from the profiler."""
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            return False
    body = head[_skip_header(head) :].lstrip()
    return body.startswith(b"{") and (b'"schemaVersion"' in body or _TRACE_EVENTS in body)


def parse_kineto(path: Path, display: str) -> KinetoTrace:
    """Read one trace without loading it whole; TraceError for unreadable input."""
    with path.open("rb") as handle:
        gzipped = handle.read(2) == GZIP_MAGIC
    try:
        scan = _scan_gzip(path, display) if gzipped else _scan_mapped(path, display)
    except (EOFError, gzip.BadGzipFile, zlib.error, IsalError) as exc:
        raise TraceError(_gzip_problem(display, exc)) from exc
    return _trace(scan, display)


def _gzip_problem(display: str, exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return f"{display}: truncated gzip stream (it ends before its end-of-stream marker)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{display}: corrupt gzip stream ({text})"


# --- scanning --------------------------------------------------------------------------


@dataclass
class _Scan:
    events: list[dict[str, Any]] = field(default_factory=list)
    dist_info: dict[str, Any] | None = None
    dist_info_at: str | None = None
    host_name: str | None = None
    bad_events: int = 0
    fallback: bool = False


def _skip_header(data: Any, limit: int = 1 << 16) -> int:
    """Offset after the leading `#@ ` provenance lines (0 when there are none)."""
    pos = 0
    while data[pos : pos + len(_HEADER)] == _HEADER:
        end = data.find(b"\n", pos, pos + limit)
        if end < 0:
            return pos
        pos = end + 1
    return pos


def _scan_mapped(path: Path, display: str) -> _Scan:
    """Scan a plain trace through a read-only memory map; only matched events are copied."""
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            raise TraceError(f"{display}: empty file, not a trace")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            size = len(mm)
            start = _skip_header(mm)
            events_at = mm.find(_TRACE_EVENTS, start, min(size, start + HEAD_LIMIT))
            if events_at < 0:
                raise TraceError(f"{display}: no traceEvents array, not a profiler trace")
            _check_end(mm[max(events_at, size - 4096) :], display)
            scan = _Scan()
            _head(mm, start, events_at, scan)
            scanner = _EventScanner(scan, _ANCHOR)
            scanner.feed(mm, 0, events_at, final=True)
            if not scan.events:
                scan.fallback = True
                _EventScanner(scan, _KERNEL_ANCHOR).feed(mm, 0, events_at, final=True)
            if scan.dist_info is None:
                _tail(mm, max(events_at, size - TAIL), size, scan)
            return scan


def _check_end(last: bytes, display: str) -> None:
    """A complete trace ends with the closing brace of its object."""
    if not last.rstrip().endswith(b"}"):
        raise TraceError(f"{display}: truncated trace (the JSON ends inside traceEvents)")


def _chunks(path: Path) -> Iterator[bytes]:
    """The inflated bytes of a gzip file, CHUNK at a time (ISA-L in a thread if installed)."""
    opener = _igzip.open if _igzip is not None else gzip.open
    with opener(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


def _scan_gzip(path: Path, display: str) -> _Scan:
    """Scan a gzip trace chunk by chunk, keeping only what an unfinished event needs."""
    scan = _scan_stream(path, display, _ANCHOR)
    if not scan.events:
        fallback = _scan_stream(path, display, _KERNEL_ANCHOR)
        fallback.fallback = True
        return fallback
    return scan


def _scan_stream(path: Path, display: str, anchor: bytes | re.Pattern[bytes]) -> _Scan:
    scan = _Scan()
    scanner = _EventScanner(scan, anchor)
    buf = b""
    base = 0  # absolute offset of buf[0]
    search_from = -1  # -1 until traceEvents is found
    recent: deque[bytes] = deque(maxlen=2)  # the last chunks: the tail of the file
    for chunk in _chunks(path):
        recent.append(chunk)
        buf += chunk
        if search_from < 0:
            start = _skip_header(buf)
            found = buf.find(_TRACE_EVENTS, start)
            if found < 0:
                if len(buf) > HEAD_LIMIT:
                    raise TraceError(f"{display}: no traceEvents array, not a profiler trace")
                continue
            _head(buf, start, found, scan)
            search_from = found
        resume = scanner.feed(buf, base, search_from, final=False)
        cut = min(resume, max(len(buf) - KEEP, 0))
        buf = buf[cut:]
        base += cut
        search_from = resume - cut
    if search_from < 0:
        raise TraceError(f"{display}: no traceEvents array, not a profiler trace")
    _check_end(buf[-4096:], display)
    scanner.feed(buf, base, search_from, final=True)
    if scan.dist_info is None:
        tail = b"".join(recent)
        _tail(tail, 0, len(tail), scan)
    return scan


def _head(data: Any, start: int, end: int, scan: _Scan) -> None:
    """Metadata before traceEvents: distributedInfo from the Python profiler, host_name."""
    found = _DIST_INFO.search(data, start, end)
    if found:
        scan.dist_info = _decode_object(data, found.end() - 1, end)
        scan.dist_info_at = "start" if scan.dist_info is not None else None
    host = _HOST_NAME.search(data, start, end)
    if host:
        scan.host_name = host.group(1).decode("utf-8", "replace")


def _tail(data: Any, start: int, end: int, scan: _Scan) -> None:
    """distributedInfo written after traceEvents (Kineto on-demand traces)."""
    found = None
    for found in _DIST_INFO.finditer(data, start, end):  # noqa: B007 - the last one counts
        pass
    if found:
        scan.dist_info = _decode_object(data, found.end() - 1, end)
        scan.dist_info_at = "end" if scan.dist_info is not None else None


_DECODER = json.JSONDecoder(strict=False)  # strings with raw control characters occur


def _decode_object(data: Any, start: int, limit: int) -> dict[str, Any] | None:
    """The JSON object starting at data[start], or None; grows its window until it fits."""
    window = FIRST_WINDOW
    while True:
        end = min(start + window, limit)
        text = bytes(data[start:end]).decode("utf-8", "replace")
        try:
            obj, _ = _DECODER.raw_decode(text)
        except json.JSONDecodeError as exc:
            if end < limit and window < MAX_EVENT and exc.pos >= len(text) - 64:
                window *= 4
                continue
            return _repaired(text)
        return obj if isinstance(obj, dict) else None


def _repaired(text: str) -> dict[str, Any] | None:
    try:
        obj, _ = _DECODER.raw_decode(_EMPTY_VALUE.sub(': ""', text))
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


class _EventScanner:
    """Finds the anchor in a buffer and decodes the trace event around each hit.

    An event starts at the nearest `{` before the hit that opens an object with a Chrome
    event key (`"ph"`, `"cat"`, …); braces inside strings (demangled `{lambda()#1}`) are
    never followed by a quote, so they do not qualify. Its end comes from decoding it.
    """

    def __init__(self, scan: _Scan, anchor: bytes | re.Pattern[bytes]) -> None:
        self.scan = scan
        self.anchor = anchor
        self.done_until = 0  # absolute offset up to which events were taken

    def _hits(self, buf: Any, start: int) -> Iterator[int]:
        if isinstance(self.anchor, bytes):
            pos = buf.find(self.anchor, start)
            while pos >= 0:
                yield pos
                pos = buf.find(self.anchor, pos + 1)
        else:
            for found in self.anchor.finditer(buf, start):
                yield found.start()

    def feed(self, buf: Any, base: int, search_from: int, final: bool) -> int:
        """Take every event around a hit at or after `search_from`.

        Returns where the search must resume when more bytes follow: the start of an event
        that runs past the end of `buf`, else just before the end (a hit may straddle it).
        """
        size = len(buf)
        for hit in self._hits(buf, search_from):
            if base + hit < self.done_until:
                continue
            start = self._event_start(buf, hit)
            if start is None:
                self.scan.bad_events += 1
                continue
            decoded = self._decode(buf, start, size, final)
            if decoded is None:
                return start
            event, end = decoded
            self.done_until = base + end
            if event is None:
                self.scan.bad_events += 1
            else:
                self.scan.events.append(event)
        return max(size - OVERLAP, search_from, 0)

    @staticmethod
    def _event_start(buf: Any, hit: int) -> int | None:
        pos = hit
        floor = max(hit - MAX_EVENT, 0)
        while pos > floor:
            pos = buf.rfind(b"{", floor, pos)
            if pos < 0:
                return None
            if _EVENT_START.match(buf, pos):
                return pos
        return None

    @staticmethod
    def _decode(
        buf: Any, start: int, size: int, final: bool
    ) -> tuple[dict[str, Any] | None, int] | None:
        """(event or None if undecodable, end offset), or None when the buffer ends first."""
        window = FIRST_WINDOW
        while True:
            end = min(start + window, size)
            raw = bytes(buf[start:end])
            text = raw.decode("utf-8", "replace")
            try:
                obj, used = _DECODER.raw_decode(text)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(text) - 64 and (end < size or not final):
                    if end == size:
                        return None  # continues in the next chunk
                    if window >= MAX_EVENT:
                        return None, end
                    window *= 4
                    continue
                return _repaired_event(text, start, raw)
            stop = start + (used if raw.isascii() else len(text[:used].encode("utf-8")))
            return (obj if isinstance(obj, dict) and "args" in obj else None), stop


def _repaired_event(text: str, start: int, raw: bytes) -> tuple[dict[str, Any] | None, int]:
    """Decode an event with `"key": ,` values; its end is the matching brace's offset."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            escaped = not escaped and ch == "\\"
            in_string = escaped or ch != '"'
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                obj = _repaired(text[: i + 1])
                used = i + 1 if raw.isascii() else len(text[: i + 1].encode("utf-8"))
                return (obj if obj is not None and "args" in obj else None), start + used
    return None, start + len(raw)


# --- from events to rows ------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_ranks(value: Any) -> list[int] | None:
    """Ranks given as a list or as the string `"[0, 1]"`; None when empty or cut short."""
    if isinstance(value, list):
        ranks = [_int(v) for v in value]
        return None if not ranks or None in ranks else ranks  # type: ignore[return-value]
    if isinstance(value, str):
        m = _RANKS_TEXT.match(value.strip())
        if m and m.group(1):
            return [int(v) for v in m.group(1).split(",")]
    return None


def dtype_bytes(dtype: str | None) -> int | None:
    return DTYPE_BYTES.get((dtype or "").lower())


# The event fields the rows need; a frame built with this schema drops every other arg.
_FIELDS = {
    "ts": pl.Float64,
    "dur": pl.Float64,
    "cat": pl.Utf8,
    "name": pl.Utf8,
    "Collective name": pl.Utf8,
    "Process Group Name": pl.Utf8,
    "Process Group ID": pl.Utf8,
    "Process Group Description": pl.Utf8,
    "Process Group Ranks": pl.Utf8,
    "Group size": pl.Int64,
    "In msg nelems": pl.Int64,
    "Out msg nelems": pl.Int64,
    "In msg size": pl.Int64,
    "Out msg size": pl.Int64,
    "dtype": pl.Utf8,
    "In split size": pl.Utf8,
    "Out split size": pl.Utf8,
    "Dst Rank": pl.Int64,
    "Src Rank": pl.Int64,
    "Rank": pl.Int64,
    "Seq": pl.Int64,
    "External id": pl.Int64,
    "Global rank start": pl.Int64,
    "Global rank stride": pl.Int64,
}
_INT_LIST = r"^\[\s*-?\d+(?:\s*,\s*-?\d+)*\s*\]$"


def _int_list(col: str) -> pl.Expr:
    """`"[0, 1]"` as a list; null when empty or cut short (`"[0, …, ...]"`)."""
    text = pl.col(col).str.strip_chars()
    items = text.str.strip_chars("[] ").str.split(",")
    parsed = items.list.eval(pl.element().str.strip_chars().cast(pl.Int64))
    return pl.when(text.str.contains(_INT_LIST)).then(parsed)


def _frame(events: list[dict[str, Any]], rank: int | None) -> pl.DataFrame:
    """One row per comm event with the COMMS_SCHEMA columns plus the group ranks it gives.

    Ranks come from `Global rank start/stride` and `Group size` when the stride is known,
    else from `Process Group Ranks` when it lists `Group size` ranks; a size-1 group is
    this rank alone.
    """
    flat = [
        {**(e.get("args") or {}), "ts": e.get("ts"), "dur": e.get("dur"), "cat": e.get("cat"),
         "name": e.get("name")}
        for e in events
    ]  # fmt: skip
    raw = (
        pl.from_dicts(flat, schema=_FIELDS, strict=False) if flat else pl.DataFrame(schema=_FIELDS)
    )
    name = pl.col("name")
    from_kernel = name.str.extract(_KERNEL_COLL.pattern, 1)
    kernel_coll = from_kernel.replace_strict(
        KERNEL_COLLECTIVES, default=from_kernel.str.to_lowercase(), return_dtype=pl.Utf8
    )
    kind = (
        pl.when(pl.col("cat") == "kernel")
        .then(pl.lit("kernel"))
        .when(name == "record_param_comms")
        .then(pl.lit("cpu_op"))
    )
    in_n = pl.coalesce("In msg nelems", "In msg size")
    out_n = pl.coalesce("Out msg nelems", "Out msg size")
    item = (
        pl.col("dtype")
        .str.to_lowercase()
        .replace_strict(DTYPE_BYTES, default=None, return_dtype=pl.Int64)
    )
    start, stride, size = (
        pl.col("Global rank start"),
        pl.col("Global rank stride"),
        pl.col("Group size"),
    )
    strided = pl.when((start >= 0) & (stride > 0) & (size > 0)).then(
        pl.int_ranges(start, start + stride * size, stride)
    )
    listed = _int_list("Process Group Ranks")
    listed = pl.when(size.is_null() | (listed.list.len() == size)).then(listed)
    alone = pl.when(size == 1).then(pl.concat_list(pl.lit(rank, dtype=pl.Int64)))
    return (
        raw.with_columns(kind.alias("kind"))
        .with_columns(
            pl.coalesce(
                "Collective name", pl.when(pl.col("kind") == "kernel").then(kernel_coll)
            ).alias("collective")
        )
        .filter(pl.col("kind").is_not_null() & pl.col("collective").is_not_null())
        .select(
            pl.col("ts"),
            pl.col("dur").alias("dur_us"),
            "collective",
            pl.coalesce("Process Group Name", "Process Group ID").alias("pg_name"),
            pl.col("Process Group Description").alias("pg_desc"),
            size.alias("group_size"),
            in_n.alias("in_nelems"),
            out_n.alias("out_nelems"),
            "dtype",
            (pl.max_horizontal(in_n.fill_null(0), out_n.fill_null(0)) * item).alias("bytes"),
            _int_list("In split size").alias("in_splits"),
            _int_list("Out split size").alias("out_splits"),
            pl.coalesce("Dst Rank", "Src Rank").alias("peer"),
            pl.col("Rank").alias("group_rank"),
            pl.col("Seq").alias("seq"),
            pl.col("External id").alias("ext_id"),
            "kind",
            name.str.slice(0, 120),
            pl.coalesce(strided, listed, alone).alias("ranks"),
        )
    )


def _pg_config(info: dict[str, Any] | None) -> list[PgEntry]:
    if not info or not isinstance(info.get("pg_config"), list):
        return []
    out = []
    for pg in info["pg_config"]:
        if not isinstance(pg, dict) or pg.get("pg_name") is None:
            continue
        ranks = parse_ranks(pg.get("ranks"))
        size = _int(pg.get("pg_size"))
        if ranks is not None and size is not None and len(ranks) != size:
            ranks = None  # a ranks string cut after 30 entries
        out.append(
            PgEntry(
                str(pg["pg_name"]),
                pg.get("pg_desc"),
                size if size is not None else (len(ranks) if ranks else None),
                ranks,
                pg.get("backend_config"),
            )
        )
    return out


def _event_pgs(frame: pl.DataFrame) -> list[PgEntry]:
    """Every group the comm events name (except `wait`), with the best ranks they give."""
    pgs = (
        frame.filter(pl.col("pg_name").is_not_null() & (pl.col("collective") != "wait"))
        .group_by("pg_name", maintain_order=True)
        .agg(
            pl.col("pg_desc").drop_nulls().first(),
            pl.col("group_size").drop_nulls().first(),
            pl.col("ranks").drop_nulls().first(),
        )
    )
    return [PgEntry(n, d, s, r, None) for n, d, s, r in pgs.iter_rows()]


def _world_from_events(
    comms: pl.DataFrame, rank: int | None, world: int | None
) -> tuple[int | None, int | None]:
    """Rank and world size from a default_pg collective, as Kineto's on-demand writer does:
    there the `Rank` arg is the global rank and the group size the world size."""
    world_ops = comms.filter(
        (pl.col("pg_desc") == "default_pg")
        & (pl.col("kind") == "cpu_op")
        & ~pl.col("collective").is_in(["send", "recv", "wait"])
    )
    if world_ops.is_empty():
        return rank, world
    first = world_ops.row(0, named=True)
    return (
        rank if rank is not None else first["group_rank"],
        world if world is not None else first["group_size"],
    )


def _trace(scan: _Scan, display: str) -> KinetoTrace:
    info = scan.dist_info or {}
    notes: list[str] = []
    rank = _int(info.get("rank"))
    frame = _frame(scan.events, rank)
    comms = frame.drop("ranks").cast(COMMS_SCHEMA)  # type: ignore[arg-type]
    world = _int(info.get("world_size"))
    if rank is None or world is None:
        rank, world = _world_from_events(comms, rank, world)
    pg_config = _pg_config(info)
    event_pgs = _event_pgs(frame)
    known = {pg.name for pg in pg_config}
    late = []
    if scan.dist_info_at == "start" and pg_config:
        late = [pg.name for pg in event_pgs if pg.name not in known]
    if scan.dist_info is None:
        notes.append("no distributedInfo: rank, world size and group list unknown")
    elif not pg_config:
        notes.append("distributedInfo has no pg_config (torch < 2.3): groups only from events")
    elif scan.dist_info_at == "end":
        notes.append(
            "distributedInfo written after the events (on-demand trace): its pg_config lists "
            "the groups seen in the window, so groups created late cannot be told apart"
        )
    if comms.is_empty():
        gloo = "gloo" in str(info.get("backend", "")) or all(
            "nccl" not in str(pg.backend or "") for pg in pg_config
        )
        why = " (gloo records none)" if gloo and pg_config else ""
        notes.append(f"no record_param_comms or NCCL kernel events{why}")
    elif scan.fallback:
        notes.append("NCCL kernels carry no process-group args (torch < 2.3): groups unknown")
    if scan.bad_events:
        notes.append(f"{scan.bad_events} comm events could not be decoded and were skipped")
    for name in late:
        pg = next(p for p in event_pgs if p.name == name)
        notes.append(f"group {name} ({pg.desc}) was created after profiling started")
    return KinetoTrace(
        path=display,
        rank=rank,
        world_size=world,
        backend=info.get("backend"),
        nccl_version=info.get("nccl_version"),
        host_name=scan.host_name,
        pg_config=pg_config,
        comms=comms,
        late_pgs=late,
        notes=notes,
        event_pgs=event_pgs,
        dist_info_at=scan.dist_info_at,
    )


# --- observed groups ------------------------------------------------------------------


def observed_groups(trace: KinetoTrace, engine: str | None = None) -> list[ObservedGroup]:
    """The groups this trace shows: pg_config's, then those only its events name (late).

    With `engine`, each group's kind is set from its description (diagnose.classify).
    """
    out = []
    late = set(trace.late_pgs)
    listed = {pg.name for pg in trace.pg_config}
    used = set(trace.comms.get_column("pg_name").drop_nulls().to_list())
    for pg in trace.pg_config:
        text = (
            f"distributedInfo.pg_config: group {pg.name} ({pg.desc}) size {pg.size} "
            f"ranks {pg.ranks} {pg.backend or ''}".rstrip()
        )
        out.append(_observed(trace, pg, text, False, engine, pg.name in used))
    for pg in trace.event_pgs:
        if pg.name in listed:
            continue
        when = "created after profiling started" if pg.name in late else "named by comm events"
        text = f"comm events: group {pg.name} ({pg.desc}) size {pg.size} ranks {pg.ranks}, {when}"
        out.append(_observed(trace, pg, text, pg.name in late, engine, True))
    return out


def _observed(
    trace: KinetoTrace,
    pg: PgEntry,
    text: str,
    late: bool,
    engine: str | None,
    used: bool,
) -> ObservedGroup:
    size = pg.size if pg.size is not None else len(pg.ranks or [])
    kind = kind_of_desc(engine, pg.desc) if engine is not None else None
    if used:
        text += "; used in the trace"
    return ObservedGroup(
        source="kineto",
        size=size,
        ranks=pg.ranks,
        name=pg.name,
        desc=pg.desc,
        kind=kind,
        hosts=[trace.host_name] if trace.host_name else [],
        members_seen=size if pg.ranks is not None else 0,
        late=late,
        complete=pg.ranks is not None,
        evidence=[Evidence(trace.path, None, text, "kineto")],
    )
