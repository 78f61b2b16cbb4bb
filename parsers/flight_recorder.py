"""PyTorch Flight Recorder dumps: each rank's last collectives, per process group.

A dump (`nccl_trace_rank_<R>` written by the watchdog on a timeout, or an explicit
`_dump_nccl_trace` / `_dump_fr_trace`) holds the groups this rank registered
(`pg_config`: name -> description and global ranks), how far each group got (`pg_status`,
keyed by the rank-local pg id) and a ring buffer of entries, one per collective or p2p op,
with its per-group sequence number, sizes, dtypes and state. That is exactly what a hang
analysis needs (diagnose.hang).

Dumps are pickles. Unpickling executes whatever a pickle asks for, and a dump is the kind of
file people pass around, so it goes through a restricted reader: its opcodes are listed
first and any that would import or call something (GLOBAL, REDUCE, BUILD, …) refuses the
whole file, with the object it asked for in the message; only then is it unpickled, by an
unpickler that can build nothing but containers and scalars either. The JSON flavour
(`*_json` dump calls) has the same content minus stack frames.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import pickletools
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from diagnose.classify import kind_of_desc
from diagnose.model import Evidence
from diagnose.observed import ObservedGroup
from parsers.kineto import GZIP_MAGIC, PgEntry, parse_ranks

# Opcodes of plain data: scalars, strings, bytes, lists, tuples, dicts, sets, the memo.
SAFE_OPCODES = frozenset(
    {
        "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE",
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "EMPTY_LIST",
        "APPEND", "APPENDS", "LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
        "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "EMPTY_SET", "ADDITEMS", "FROZENSET", "GET",
        "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE",
    }
)  # fmt: skip
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_RANK_IN_NAME = re.compile(r"(?:rank)?_?(\d+)(?:\.json)?(?:\.gz)?$")
_PROFILING_NAME = re.compile(
    r"^(?P<backend>[A-Za-z0-9]+):(?P<op>[A-Za-z_]+)"
    r"(?: (?P<a>\d+)(?P<arrow>->|<-)(?P<b>\d+))?"
)

ENTRIES_SCHEMA = {
    "record_id": pl.Int64,
    "pg_id": pl.Int64,
    "pg_name": pl.Utf8,
    "pg_desc": pl.Utf8,
    "collective_seq_id": pl.Int64,
    "p2p_seq_id": pl.Int64,
    "op_id": pl.Int64,
    "is_p2p": pl.Boolean,
    "profiling_name": pl.Utf8,
    "backend": pl.Utf8,
    "op": pl.Utf8,
    "src": pl.Int64,
    "dst": pl.Int64,
    "input_sizes": pl.List(pl.List(pl.Int64)),
    "output_sizes": pl.List(pl.List(pl.Int64)),
    "input_dtypes": pl.List(pl.Utf8),
    "output_dtypes": pl.List(pl.Utf8),
    "state": pl.Utf8,
    "retired": pl.Boolean,
    "time_created_ns": pl.Int64,
    "time_started_ns": pl.Int64,
    "time_completed_ns": pl.Int64,
    "duration_ms": pl.Float64,
    "timeout_ms": pl.Int64,
    "thread_name": pl.Utf8,
    "stack": pl.Utf8,
}
STATUS_SCHEMA = {
    "pg_id": pl.Int64,
    "pg_name": pl.Utf8,
    "last_enqueued": pl.Int64,
    "last_started": pl.Int64,
    "last_completed": pl.Int64,
}


class FlightRecorderError(ValueError):
    """The dump cannot be read or was refused; the message is one line naming the file."""


@dataclass
class FRDump:
    """One rank's Flight Recorder dump.

    `rank` is the global rank from the file name (dumps do not record it; torch names them
    `<prefix><global rank>`). `pg_config` lists the groups with their global ranks (empty
    for gloo in torch 2.13, which registers none). `entries` has one row per ring-buffer
    entry (ENTRIES_SCHEMA): `op` is the profiling name without backend and peers
    (`all_reduce`, `send`, `coalesced`), `src`/`dst` the group ranks of a p2p op, `stack`
    the innermost Python frames. `pg_status` maps each local pg id (and its name, when an
    entry gives it) to the last enqueued / started / completed collective.
    """

    path: str
    rank: int | None
    version: str | None
    comm_lib_version: str | None
    pg_config: list[PgEntry]
    pg_status: pl.DataFrame
    entries: pl.DataFrame
    notes: list[str] = field(default_factory=list)

    def group(self, name: str) -> PgEntry | None:
        return next((g for g in self.pg_config if g.name == name), None)


def sniff_flight_recorder(head: bytes) -> bool:
    """Whether the first bytes of a file are a Flight Recorder dump (pickle or JSON)."""
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            return False
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return b"version" in head and any(
            k in head for k in (b"pg_config", b"entries", b"comm_lib_version", b"nccl_version")
        )
    text = head.lstrip()
    if not text.startswith(b"{") or b'"traceEvents"' in text or b'"schemaVersion"' in text:
        return False
    return any(k in text for k in (b'"pg_status"', b'"collective_seq_id"', b'"comm_lib_version"'))


def parse_flight_recorder(path: Path, display: str) -> FRDump:
    """Read one dump; FlightRecorderError when it is unreadable, foreign or refused."""
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise FlightRecorderError(f"{display}: corrupt or truncated gzip ({exc})") from exc
    if data.lstrip()[:1] not in (b"{", b"["):  # pickle (protocol 0 and 1 have no 0x80)
        raw = load_plain_pickle(data, display)
    else:
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FlightRecorderError(f"{display}: not a Flight Recorder dump ({exc})") from exc
    known = isinstance(raw, dict) and any(k in raw for k in ("entries", "pg_config", "pg_status"))
    if not known or not isinstance(raw.get("entries", []), list):
        raise FlightRecorderError(f"{display}: not a Flight Recorder dump (no entries list)")
    return _dump(raw, path, display)


def load_plain_pickle(data: bytes, display: str) -> Any:
    """Unpickle `data` only if it holds nothing but plain containers and scalars."""
    last_strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in _STRING_OPS:
                last_strings = [*last_strings[-1:], str(arg)]
            if opcode.name not in SAFE_OPCODES:
                raise FlightRecorderError(_refusal(display, opcode.name, arg, last_strings))
    except (ValueError, EOFError) as exc:
        if isinstance(exc, FlightRecorderError):
            raise
        raise FlightRecorderError(f"{display}: truncated or corrupt pickle ({exc})") from exc
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError) as exc:
        raise FlightRecorderError(f"{display}: corrupt pickle ({exc})") from exc


def _refusal(display: str, opcode: str, arg: Any, strings: list[str]) -> str:
    if opcode == "GLOBAL" and arg:
        wanted = f" {str(arg).replace(' ', '.')}"
    elif opcode == "STACK_GLOBAL" and len(strings) == 2:
        wanted = f" {strings[0]}.{strings[1]}"
    else:
        wanted = ""
    return (
        f"{display}: refused to unpickle: it asks for{wanted or ' code'} (pickle opcode "
        f"{opcode}); Flight Recorder dumps hold only plain data, so nothing was executed"
    )


class _PlainUnpickler(pickle.Unpickler):
    """Second line of defence: no class or function can be looked up at all."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused persistent id")


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


def rank_of_file(name: str) -> int | None:
    """The global rank torch appended to the dump's file name (`nccl_trace_rank_3`)."""
    m = _RANK_IN_NAME.search(name)
    return int(m.group(1)) if m else None


def _sizes(value: Any) -> list[list[int]] | None:
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for shape in value:
        if not isinstance(shape, (list, tuple)):
            return None
        dims = [_int(d) for d in shape]
        if None in dims:
            return None
        out.append(dims)
    return out  # type: ignore[return-value]


def _strings(value: Any) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else None


def _stack(frames: Any) -> str | None:
    if not isinstance(frames, list) or not frames:
        return None
    shown = [
        f"{f.get('name')} at {f.get('filename')}:{f.get('line')}"
        for f in frames[:6]
        if isinstance(f, dict)
    ]
    return "; ".join(shown) or None


def _entry_row(entry: dict[str, Any]) -> tuple[Any, ...]:
    group = entry.get("process_group") or ("", "")
    name = str(group[0]) if len(group) > 0 else ""
    desc = str(group[1]) if len(group) > 1 else None
    profiling = str(entry.get("profiling_name") or "")
    m = _PROFILING_NAME.match(profiling)
    src = dst = None
    if m and m.group("arrow"):
        a, b = int(m.group("a")), int(m.group("b"))
        src, dst = (a, b) if m.group("arrow") == "->" else (b, a)
    return (
        _int(entry.get("record_id")),
        _int(entry.get("pg_id")),
        name,
        desc,
        _int(entry.get("collective_seq_id")),
        _int(entry.get("p2p_seq_id")),
        _int(entry.get("op_id")),
        bool(entry.get("is_p2p")),
        profiling,
        m.group("backend") if m else None,
        m.group("op") if m else profiling or None,
        src,
        dst,
        _sizes(entry.get("input_sizes")),
        _sizes(entry.get("output_sizes")),
        _strings(entry.get("input_dtypes")),
        _strings(entry.get("output_dtypes")),
        entry.get("state"),
        bool(entry.get("retired")),
        _int(entry.get("time_created_ns")),
        _int(entry.get("time_discovered_started_ns")) or None,  # JSON dumps write 0 for None
        _int(entry.get("time_discovered_completed_ns")) or None,
        entry.get("duration_ms") if isinstance(entry.get("duration_ms"), float) else None,
        _int(entry.get("timeout_ms")),
        entry.get("thread_name"),
        _stack(entry.get("frames")),
    )


def _dump(raw: dict[str, Any], path: Path, display: str) -> FRDump:
    notes = []
    entries = pl.DataFrame(
        [_entry_row(e) for e in raw.get("entries", []) if isinstance(e, dict)],
        schema=ENTRIES_SCHEMA,
        orient="row",
    )
    pg_config = []
    for key, pg in (raw.get("pg_config") or {}).items():
        if not isinstance(pg, dict) or not (pg.get("name") or key):
            continue  # gloo registers an empty '' group
        ranks = parse_ranks(pg.get("ranks"))
        name = str(pg.get("name") or key)
        pg_config.append(PgEntry(name, pg.get("desc"), len(ranks) if ranks else None, ranks, None))
    names = dict(
        entries.select("pg_id", "pg_name").unique("pg_id", keep="first").iter_rows()
        if not entries.is_empty()
        else []
    )
    status_rows = []
    for key, st in (raw.get("pg_status") or {}).items():
        if isinstance(st, dict):
            pg_id = _int(key)
            status_rows.append(
                (
                    pg_id,
                    names.get(pg_id),
                    _int(st.get("last_enqueued_collective")),
                    _int(st.get("last_started_collective")),
                    _int(st.get("last_completed_collective")),
                )
            )
    status = pl.DataFrame(status_rows, schema=STATUS_SCHEMA, orient="row").sort("pg_id")
    used = set(entries.get_column("pg_name").to_list())
    unlisted = sorted(used - {pg.name for pg in pg_config}, key=lambda n: (len(n), n))
    if unlisted:
        notes.append(
            f"groups {', '.join(unlisted)} have entries but no pg_config (gloo records none): "
            "their ranks are known only from which dumps name them"
        )
    rank = rank_of_file(path.name)
    if rank is None:
        notes.append("the file name carries no rank (torch names dumps <prefix><global rank>)")
    return FRDump(
        path=display,
        rank=rank,
        version=None if raw.get("version") is None else str(raw.get("version")),
        comm_lib_version=raw.get("comm_lib_version", raw.get("nccl_version")),
        pg_config=pg_config,
        pg_status=status,
        entries=entries,
        notes=notes,
    )


def observed_groups(dump: FRDump, engine: str | None = None) -> list[ObservedGroup]:
    """The groups this dump's pg_config lists (with global ranks); used ones say so."""
    used = set(dump.entries.get_column("pg_name").to_list())
    out = []
    for pg in dump.pg_config:
        text = f"Flight Recorder pg_config: group {pg.name} ({pg.desc}) ranks {pg.ranks}"
        if pg.name in used:
            text += "; has entries in the dump"
        out.append(
            ObservedGroup(
                source="flight_recorder",
                size=pg.size or 0,
                ranks=pg.ranks,
                name=pg.name,
                desc=pg.desc,
                kind=kind_of_desc(engine, pg.desc) if engine is not None else None,
                members_seen=pg.size or 0,
                complete=pg.ranks is not None,
                evidence=[Evidence(dump.path, None, text, "flight_recorder")],
            )
        )
    return out
