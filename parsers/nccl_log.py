"""Facts from NCCL_DEBUG=INFO output: which communicators really formed, and over what.

Engines say what groups they meant to build; NCCL's own lines say what it built: one
`Init START/COMPLETE` line per communicator and process, the nodes it spans, the transport
of every connection, the network it chose and the collectives that ran. This module
collects those lines, wherever they sit (alone, behind a Ray `(RayWorkerWrapper pid=…)`
prefix, an SGLang `[ts TP3]` prefix, a Slurm `0:` task id or a timestamp), into frames.
Joining communicators across processes is left to the caller: NCCL ranks here are always
comm-local.

NCCL's wording changed between 2.12 and 2.30 (NVIDIA calls the format undocumented), so
each pattern takes every variant seen in NVIDIA/nccl's tags and in real logs: comms with
and without `nvmlDev`/`commId`, `ncclCommInitRank…`/`ncclCommSplit` names, `splitCount`
(2.24–2.28) and `childCount` (2.29+), the 2.29 `[Rank N]` prefix, `Bootstrap :`/`Bootstrap:`.

Logs reach hundreds of MB, so every test is a polars expression over a frame of lines, run
only on rows that contain `NCCL`; Python never loops over lines. Each kind of fact is a lazy
query over those rows, and all of them run in one `collect_all`: a polars call costs a few
hundred microseconds whatever the size, and a directory holds thousands of files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from parsers.lines import FILE, collect_all, split, tagged

SNIFF_BYTES = 64 * 1024
# Only lines matching this can hold a fact (a regex, for other parsers to share the scan).
CANDIDATES = "NCCL"

# The writer of a line sits right before ` NCCL INFO|WARN`: `host:pid:tid [cudaDev]`, plus
# `file.cc:LINE` on WARN lines. Whatever precedes it is someone else's prefix. TRACE and
# CALL lines only repeat what INFO lines say.
_WHO = r"(?P<host>[^\s:\[\]()]+):(?P<pid>\d+):(?P<tid>\d+) \[(?P<dev>-?\d+)\](?: [\w./-]+:\d+)?$"
_OUTER = r"^(.*?)[^\s:\[\]()]+:\d+:\d+ \[-?\d+\](?: [\w./-]+:\d+)?$"
# Ray folds identical lines of several workers into one and says so at the end.
_REPEATED = r" *\[repeated \d+x across cluster\] *$"
_VERSION = r"NCCL version (?P<version>\d+\.\d+\.\d+[^+\s]*)\+cuda(?P<cuda>[\d.]+)"
# NCCL <= 2.22 prints its version with a bare printf; only the file it is in places it.
_BARE_VERSION = rf"^(?P<outer>.*?){_VERSION}"
_TIMESTAMP = r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?"
_ENV = r"^(?P<var>NCCL_\w+) set (?:by environment )?to (?P<value>.*?)\.?$"
# All START/COMPLETE variants of 2.12-2.30 (formats.md §3.3), one pattern.
_COMM_INIT = (
    r"^(?:\[Rank \d+\] )?(?:(?P<func>ncclComm\w+) )?comm (?P<comm>0x[0-9a-fA-F]+) "
    r"rank (?P<rank>\d+) nranks (?P<nranks>\d+) cudaDev (?P<cuda_dev>-?\d+)"
    r"(?: nvmlDev (?P<nvml_dev>-?\d+))? busId (?P<bus_id>[0-9a-fA-F]+)"
    r"(?: parent (?P<parent>0x[0-9a-fA-F]+|\(nil\))"
    r"(?: (?:splitCount|childCount) (?P<split_count>\d+))? color (?P<color>-?\d+) "
    r"key (?P<key>-?\d+))?(?: commId (?P<comm_id>0x[0-9a-fA-F]+))? ?- Init "
    r"(?P<phase>START|COMPLETE)"
)
_COMM_TOPO = (
    r"^comm (?P<comm>0x[0-9a-fA-F]+) rank (?P<rank>\d+) nRanks (?P<nranks>\d+) "
    r"nNodes (?P<nnodes>\d+) localRanks (?P<local_ranks>\d+) localRank (?P<local_rank>\d+)"
)
# Any line naming a comm sets the context of the lines its thread writes next.
_NAMED_COMM = r"\bcomm (?P<comm>0x[0-9a-fA-F]+)(?:.*?\bn[rR]anks[ =](?P<nranks>\d+))?"
_CONNECTION = (
    r"^Channel (?P<channel>\d+)(?:/(?P<conn>\d+))? : (?P<src>\d+)\[-?\d+\] -> "
    r"(?P<dst>\d+)\[-?\d+\] (?:\[(?:send|receive)\] )?"
    r"via (?P<transport>(?:P2P|SHM|NET)/.+)$"
)
_COLLNET = (
    r"^CollNet (?P<channel>\d+)/(?P<conn>\d+) : (?P<src>\d+) \[(?:send|receive)\] "
    r"via (?P<transport>COLLNET/.+)$"
)
# Printed by comm rank 0; <= 2.22 shows 20 ranks at most, >= 2.23 cuts at 128 chars + "...".
_RING_LIST = r"^Channel (?P<channel>\d+)/\d+ :(?P<ranks>(?: +\d+)+)(?P<cut> *\.\.\.)?\s*$"
_RING = r"^Ring (?P<channel>\d+) : (?P<prev>-?\d+) -> (?P<me>\d+) -> (?P<next>-?\d+)"
_TREE = (
    r"^Tree (?P<channel>\d+) : (?P<up>-?\d+) -> (?P<me>\d+) -> "
    r"(?P<d0>-?\d+)/(?P<d1>-?\d+)/(?P<d2>-?\d+)"
)
_TREES_ITEM = (
    r"\[(?P<channel>\d+)\] (?P<d0>-?\d+)/(?P<d1>-?\d+)/(?P<d2>-?\d+)->(?P<me>\d+)->(?P<up>-?\d+)"
)
_TRANSPORT_CLASS = r"^(P2P|SHM|COLLNET|NET/[^/]+)/"
_COLLECTIVE = (
    r"^(?P<op>[A-Za-z]+): opCount (?P<op_count>[0-9a-fA-F]+) sendbuff \S+ recvbuff \S+ "
    r"count (?P<count>\d+) datatype (?P<datatype>-?\d+) op -?\d+ "
    r"root (?P<root>-?\d+) comm (?P<comm>0x[0-9a-fA-F]+) \[nranks=(?P<nranks>\d+)\]"
)
# what -> pattern with one `value` group; a line is one fact of the first kind it matches.
_NET_FACTS: tuple[tuple[str, str], ...] = (
    ("network", r"^Using network (?P<value>.+?)\s*$"),
    ("ib_devices", r"^NET/IB ?: Using (?P<value>.+?)(?:; OOB .*)?\s*$"),
    ("no_ib_device", r"^NET/IB ?: (?P<value>No device found)"),
    ("plugin", r"^NET/Plugin ?: ?(?P<value>.+?)\s*$"),
    ("plugin", r"^(?P<value>(?:Failed to initialize|Initialized|Assigned) NET plugin .+?)\s*$"),
    ("socket_if", r"^NET/Socket ?: Using (?P<value>.+?)\s*$"),
    ("bootstrap_if", r"^Bootstrap ?: Using (?P<value>.+?)\s*$"),
)
# The writer part is short; looking only at its end keeps sniffing linear in time even
# on long lines without spaces (Python's re backtracks where polars' regex does not).
_SNIFF_WHO = re.compile(_WHO)
_SNIFF_WRITER_CHARS = 256
_SNIFF_VERSION = re.compile(_VERSION)

_PROCS_SCHEMA = {
    "host": pl.Utf8,
    "pid": pl.Int64,
    "devs": pl.List(pl.Int64),
    "nccl_version": pl.Utf8,
    "cuda_version": pl.Utf8,
    "first_line": pl.Int64,
}
_COMMS_SCHEMA = {
    "host": pl.Utf8,
    "pid": pl.Int64,
    "comm": pl.Utf8,
    "func": pl.Utf8,
    "rank": pl.Int64,
    "nranks": pl.Int64,
    "nnodes": pl.Int64,
    "local_ranks": pl.Int64,
    "local_rank": pl.Int64,
    "cuda_dev": pl.Int64,
    "nvml_dev": pl.Int64,
    "bus_id": pl.Utf8,
    "comm_id": pl.Utf8,
    "parent": pl.Utf8,
    "parent_comm_id": pl.Utf8,
    "split_count": pl.Int64,
    "color": pl.Int64,
    "key": pl.Int64,
    "init_start_line": pl.Int64,
    "init_complete_line": pl.Int64,
    "line": pl.Int64,
    "text": pl.Utf8,
}
_LINKS_SCHEMA = {
    "host": pl.Utf8,
    "pid": pl.Int64,
    "comm": pl.Utf8,
    "channel": pl.Int64,
    "src": pl.Int64,
    "dst": pl.Int64,
    "kind": pl.Utf8,
    "transport": pl.Utf8,
    "transport_class": pl.Utf8,
    "line": pl.Int64,
}
_COLLECTIVES_SCHEMA = {
    "host": pl.Utf8,
    "pid": pl.Int64,
    "comm": pl.Utf8,
    "op": pl.Utf8,
    "op_count": pl.Int64,
    "count": pl.Int64,
    "datatype": pl.Int64,
    "root": pl.Int64,
    "nranks": pl.Int64,
    "line": pl.Int64,
}
_COMM_INTS = (
    "rank", "nranks", "nnodes", "local_ranks", "local_rank", "cuda_dev", "nvml_dev",
    "split_count", "color", "key",
)  # fmt: skip
_COMM_STRS = ("func", "bus_id", "comm_id", "parent")


@dataclass
class NcclFacts:
    """What the NCCL lines of one file say, one frame per kind of fact.

    procs: one row per process (host, pid) with the CUDA devices its lines name.
    env: `NCCL_X set (by environment) to Y` lines.
    comms: one row per communicator a process initialised (host, pid, comm pointer; a
      pointer NCCL reuses after a destroy starts a new row at its next `Init START`).
    links: connections and ring/tree neighbours, comm-local ranks `src -> dst`. NCCL never
      names the comm on these lines; `comm` is the one its thread was setting up or last
      ran a collective on.
    net: network choice, IB devices, plugins, socket interfaces.
    collectives: `<Op>: opCount …` lines (NCCL_DEBUG_SUBSYS=COLL).
    warns: every `NCCL WARN` line.
    """

    path: str
    procs: pl.DataFrame
    env: pl.DataFrame
    comms: pl.DataFrame
    links: pl.DataFrame
    net: pl.DataFrame
    collectives: pl.DataFrame
    warns: pl.DataFrame


def sniff_nccl(head: str) -> bool:
    """True when the start of a file holds an NCCL INFO/WARN line or NCCL's version line."""
    for line in head[:SNIFF_BYTES].splitlines():
        writer, found, rest = line.partition(" NCCL ")
        if found and rest[:4] in ("INFO", "WARN"):
            if _SNIFF_WHO.search(writer[-_SNIFF_WRITER_CHARS:]):
                return True
        elif "NCCL version " in line and _SNIFF_VERSION.search(line):
            return True
    return False


def parse_nccl(frame: pl.DataFrame, display: str) -> NcclFacts:
    """Collect the NCCL facts of `frame` (columns `line`, `text`, as read_lines gives)."""
    return parse_nccl_files([(frame, display)])[0]


def parse_nccl_files(files: Sequence[tuple[pl.DataFrame, str]]) -> list[NcclFacts]:
    """parse_nccl of each (frame, display), in one polars run for all of them.

    A polars call costs about as much on a few hundred lines as on ten thousand, so a
    directory of logs is parsed a batch of files at a time; every step keeps the files apart
    (their index, FILE, leads every key). A frame may hold only some of a file's lines, as
    long as those include every line matching CANDIDATES.
    """
    if not files:
        return []
    candidates = tagged([frame for frame, _ in files]).filter(
        pl.col("text").str.contains(CANDIDATES, literal=True)
    )
    base = collect_all(_base(candidates))[0].lazy()
    bare = collect_all(_bare_lines(candidates, base))[0]
    outputs = collect_all(
        _procs(base, _bare_versions(bare, base)),
        _env(base),
        _comms(base),
        _links(base),
        _net(base),
        _collectives(base),
        base.filter(pl.col("level") == "WARN").select(
            FILE, "host", "pid", "line", pl.col("text").str.strip_chars()
        ),
    )
    parts = [split(output, len(files)) for output in outputs]
    return [
        NcclFacts(display, *(part[i] for part in parts)) for i, (_, display) in enumerate(files)
    ]


def _base(candidates: pl.LazyFrame) -> pl.LazyFrame:
    """Prefixed NCCL lines split into who wrote them and the message, with comm context.

    Connection and ring lines never name their comm, but the thread that writes them is
    setting one up: `ctx_comm`/`ctx_nranks` give each line the comm its thread last named
    (init, topology or collective line). Outside an init (after a COMPLETE or a
    collective), a line followed by another comm's `Init COMPLETE` belongs to that init
    instead: its `Init START` went missing (Ray folds repeated lines away). A thread that
    names no comm at all (NCCL's own connection threads) gets the comm its process named
    last.
    """
    # Splitting on the literal first keeps the regex work to the short writer part.
    split = pl.col("text").str.splitn(" NCCL ", 2).struct.rename_fields(["head", "rest"])
    parts = (
        candidates.select(FILE, "line", "text", split.alias("s"))
        .unnest("s")
        .filter(pl.col("rest").str.contains(r"^(?:INFO|WARN)(?: |$)"))
        .with_columns(pl.col("head").str.extract_groups(_WHO).alias("who"))
        .unnest("who")
        .filter(pl.col("host").is_not_null())
    )
    named = pl.col("msg").str.extract_groups(_NAMED_COMM)
    context = pl.when(named.struct.field("comm").is_not_null()).then(
        pl.struct(
            named.struct.field("comm"),
            named.struct.field("nranks").cast(pl.Int64),
            pl.col("msg").str.contains("- Init COMPLETE", literal=True).alias("complete"),
            (
                pl.col("msg").str.contains("- Init START", literal=True)
                | pl.col("msg").str.contains(" nNodes ", literal=True)
            ).alias("in_init"),
        )
    )
    thread = (FILE, "host", "pid", "tid")
    following = pl.col("following")
    return (
        parts.select(
            FILE,
            "line",
            "text",
            "head",
            "host",
            pl.col("pid").cast(pl.Int64),
            pl.col("tid").cast(pl.Int64),
            pl.col("dev").cast(pl.Int64),
            pl.col("rest").str.head(4).alias("level"),
            pl.col("rest").str.slice(5).str.replace(_REPEATED, "").str.strip_chars().alias("msg"),
        )
        .with_columns(context.alias("named"))
        .with_columns(
            pl.col("named").forward_fill().over(thread).alias("preceding"),
            pl.col("named").backward_fill().over(thread).alias("following"),
            pl.col("named").forward_fill().over(FILE, "host", "pid").alias("process"),
        )
        .with_columns(
            pl.coalesce(
                pl.when(
                    following.struct.field("complete")
                    & ~pl.col("preceding").struct.field("in_init").fill_null(False)
                ).then(following),
                "preceding",
                "process",
            ).alias("ctx")
        )
        .select(
            pl.exclude("named", "preceding", "following", "process", "ctx"),
            pl.col("ctx").struct.field("comm").alias("ctx_comm"),
            pl.col("ctx").struct.field("nranks").alias("ctx_nranks"),
        )
    )


def _stream_key(outer: pl.Expr) -> pl.Expr:
    """The foreign prefix without timestamps: lines of one process share it."""
    return outer.str.replace_all(_TIMESTAMP, "").str.strip_chars()


def _bare_lines(candidates: pl.LazyFrame, base: pl.LazyFrame) -> pl.LazyFrame:
    """`NCCL version` lines that are not prefixed NCCL lines (NCCL <= 2.22 prints its
    version with a bare printf), with the foreign prefix before them (`outer`)."""
    text = pl.col("text")
    return (
        candidates.filter(text.str.contains("NCCL version", literal=True))
        .join(base.select(FILE, "line"), on=[FILE, "line"], how="anti")
        .select(FILE, "line", text.str.extract_groups(_BARE_VERSION).alias("v"))
        .unnest("v")
        .filter(pl.col("version").is_not_null())
    )


def _bare_versions(bare: pl.DataFrame, base: pl.LazyFrame) -> pl.LazyFrame:
    """The bare `NCCL version` lines placed in the process that wrote them.

    The version line comes right after NCCL's own prefixed init lines; it inherits the host
    and pid of the last prefixed line with the same foreign prefix (a Ray `pid=` prefix
    keeps workers apart), or of the next one when none came before. A version line with no
    prefixed line in its stream at all cannot be placed and is left out. Most logs have no
    bare version line, and then the streams (a regex on every line) are not cut out at all.
    """
    if bare.is_empty():
        return pl.LazyFrame(schema={FILE: pl.UInt32, "host": pl.Utf8, "pid": pl.Int64,
                                    "version": pl.Utf8, "cuda": pl.Utf8})  # fmt: skip
    streams = base.join(bare.lazy().select(FILE).unique(), on=FILE, how="semi")
    bare = bare.lazy()
    placed = (
        pl.concat(
            [
                streams.select(
                    FILE,
                    "line",
                    _stream_key(pl.col("head").str.extract(_OUTER, 1)).alias("stream"),
                    "host",
                    "pid",
                    pl.lit(None, pl.Utf8).alias("v"),
                ),
                bare.select(
                    FILE,
                    "line",
                    _stream_key(pl.col("outer")).alias("stream"),
                    pl.lit(None, pl.Utf8).alias("host"),
                    pl.lit(None, pl.Int64).alias("pid"),
                    pl.concat_str("version", pl.lit("+"), "cuda").alias("v"),
                ),
            ]
        )
        .sort(FILE, "line")
        .with_columns(
            pl.col("host", "pid").forward_fill().backward_fill().over(FILE, "stream"),
        )
        .filter(pl.col("v").is_not_null())
    )
    return placed.select(
        FILE,
        "host",
        "pid",
        pl.col("v").str.split_exact("+", 1).struct.rename_fields(["version", "cuda"]).alias("s"),
    ).unnest("s")


def _procs(base: pl.LazyFrame, bare: pl.LazyFrame) -> pl.LazyFrame:
    """One row per process: its devices, NCCL version and first NCCL line."""
    prefixed = (
        base.filter(pl.col("msg").str.starts_with("NCCL version"))
        .select(FILE, "host", "pid", pl.col("msg").str.extract_groups(rf"^{_VERSION}").alias("v"))
        .unnest("v")
    )
    versions = (
        pl.concat([prefixed.drop_nulls("version"), bare.drop_nulls("host")])
        .group_by(FILE, "host", "pid")
        .agg(pl.col("version").first(), pl.col("cuda").first())
    )
    seen = base.group_by(FILE, "host", "pid").agg(
        pl.col("dev").filter(pl.col("dev") >= 0).unique().sort().alias("devs"),
        pl.col("line").min().alias("first_line"),
    )
    return (
        seen.join(versions, on=[FILE, "host", "pid"], how="left")
        .select(
            FILE,
            "host",
            "pid",
            "devs",
            pl.col("version").alias("nccl_version"),
            pl.col("cuda").alias("cuda_version"),
            "first_line",
        )
        .cast(_PROCS_SCHEMA)
        .sort(FILE, "first_line")
    )


def _env(base: pl.LazyFrame) -> pl.LazyFrame:
    found = (
        base.filter(pl.col("msg").str.starts_with("NCCL_"))
        .select(FILE, "host", "pid", "line", pl.col("msg").str.extract_groups(_ENV).alias("e"))
        .unnest("e")
        .filter(pl.col("var").is_not_null())
    )
    return found.select(FILE, "host", "pid", "var", "value", "line")


def _comms(base: pl.LazyFrame) -> pl.LazyFrame:
    """Merge each comm's Init START/COMPLETE and topology lines into one row."""
    msg = pl.col("msg")
    init = (
        base.filter(msg.str.contains("- Init ", literal=True))
        .select(FILE, "host", "pid", "line", "text", msg.str.extract_groups(_COMM_INIT).alias("c"))
        .unnest("c")
    )
    topo = (
        base.filter(msg.str.starts_with("comm 0x"))
        .select(FILE, "host", "pid", "line", "text", msg.str.extract_groups(_COMM_TOPO).alias("c"))
        .unnest("c")
    )
    events = (
        pl.concat([init, topo], how="diagonal_relaxed")
        .filter(pl.col("comm").is_not_null())
        .sort(FILE, "line")
    )
    phase = pl.col("phase")
    first = [
        *[pl.col(name).drop_nulls().first().cast(pl.Int64) for name in _COMM_INTS],
        *[pl.col(name).drop_nulls().first() for name in _COMM_STRS],
    ]
    comms = (
        events.with_columns(
            (phase == "START")
            .fill_null(False)
            .cast(pl.Int64)
            .cum_sum()
            .over(FILE, "host", "pid", "comm")
            .clip(lower_bound=1)
            .alias("generation")
        )
        .group_by(FILE, "host", "pid", "comm", "generation", maintain_order=True)
        .agg(
            *first,
            pl.col("line").filter(phase == "START").min().alias("init_start_line"),
            pl.col("line").filter(phase == "COMPLETE").min().alias("init_complete_line"),
            pl.col("text").first().str.strip_chars(),
            pl.col("line").min(),
        )
        .sort("line")
    )
    return _with_parent_comm_id(comms).select(FILE, *_COMMS_SCHEMA).cast(_COMMS_SCHEMA)


def _with_parent_comm_id(comms: pl.LazyFrame) -> pl.LazyFrame:
    """Add the commId of each split comm's parent, the key that joins splits across ranks.

    Split lines carry no commId from NCCL 2.23 on; the parent is the latest comm of the
    same process with the parent's pointer that started before the child.
    """
    parents = comms.select(
        FILE,
        "host",
        "pid",
        pl.col("comm").alias("parent"),
        pl.col("line").alias("parent_line"),
        pl.col("comm_id").alias("parent_comm_id"),
    ).sort("parent_line")
    return comms.sort("line").join_asof(
        parents,
        left_on="line",
        right_on="parent_line",
        by=[FILE, "host", "pid", "parent"],
        strategy="backward",
        check_sortedness=False,  # both sides are sorted on `line` (all files at once) above
    )


def _links(base: pl.LazyFrame) -> pl.LazyFrame:
    """Connections (`Channel … via …`) and ring/tree neighbours as src -> dst rows."""
    msg = pl.col("msg")
    channel = base.filter(msg.str.starts_with("Channel "))
    via = msg.str.contains(" via ", literal=True)
    frames = [
        _connections(channel.filter(via)),
        _collnet(base.filter(msg.str.starts_with("CollNet "))),
        _ring_lists(channel.filter(~via)),
        _rings(base.filter(msg.str.starts_with("Ring "))),
        _trees(base.filter(msg.str.starts_with("Tree"))),
    ]
    links = pl.concat([f.select(FILE, *_LINKS_SCHEMA).cast(_LINKS_SCHEMA) for f in frames])
    return links.filter(pl.col("dst").is_null() | (pl.col("src") != pl.col("dst"))).sort(
        FILE, "line", maintain_order=True
    )


def _transport_class(transport: pl.Expr) -> pl.Expr:
    return transport.str.extract(_TRANSPORT_CLASS, 1)


def _connections(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per connection line; connection index 1 is what NCCL uses for send/recv."""
    found = (
        rows.select(
            FILE, "host", "pid", "ctx_comm", "line", pl.col("msg").str.extract_groups(_CONNECTION)
        )
        .unnest("msg")
        .filter(pl.col("transport").is_not_null())
    )
    return found.select(
        FILE,
        "host",
        "pid",
        pl.col("ctx_comm").alias("comm"),
        "channel",
        "src",
        "dst",
        pl.when(pl.col("conn") == "1")
        .then(pl.lit("p2p"))
        .otherwise(pl.lit("channel"))
        .alias("kind"),
        "transport",
        _transport_class(pl.col("transport")).alias("transport_class"),
        "line",
    )


def _collnet(rows: pl.LazyFrame) -> pl.LazyFrame:
    """CollNet connections name only the local rank: the peer is the network switch."""
    found = (
        rows.select(
            FILE, "host", "pid", "ctx_comm", "line", pl.col("msg").str.extract_groups(_COLLNET)
        )
        .unnest("msg")
        .filter(pl.col("transport").is_not_null())
    )
    return found.select(
        FILE,
        "host",
        "pid",
        pl.col("ctx_comm").alias("comm"),
        "channel",
        "src",
        pl.lit(None, pl.Int64).alias("dst"),
        pl.lit("collnet").alias("kind"),
        "transport",
        _transport_class(pl.col("transport")).alias("transport_class"),
        "line",
    )


def _ring_lists(rows: pl.LazyFrame) -> pl.LazyFrame:
    """`Channel 00/02 : 0 1 2 …` ring orders as consecutive edges.

    The closing edge (last -> first) is only added when the list holds all ranks of the
    comm: NCCL truncates long lists (20 ranks up to 2.22, 128 characters and "..." after,
    which may also cut the last number, so that one is dropped).
    """
    found = (
        rows.select(
            FILE,
            "host",
            "pid",
            "ctx_comm",
            "ctx_nranks",
            "line",
            pl.col("msg").str.extract_groups(_RING_LIST),
        )
        .unnest("msg")
        .filter(pl.col("ranks").is_not_null())
    )
    ranks = pl.col("ranks").str.extract_all(r"\d+").cast(pl.List(pl.Int64))
    cut = pl.col("cut").is_not_null()
    found = found.with_columns(
        pl.when(cut).then(ranks.list.head(ranks.list.len() - 1)).otherwise(ranks).alias("ranks")
    ).with_columns(
        (~cut & (pl.col("ranks").list.len() == pl.col("ctx_nranks"))).alias("complete"),
        pl.int_range(pl.len()).alias("row"),
    )
    edges = found.explode("ranks").with_columns(
        pl.col("ranks").shift(-1).over("row").alias("next"),
        pl.col("ranks").first().over("row").alias("first"),
    )
    return edges.select(
        FILE,
        "host",
        "pid",
        pl.col("ctx_comm").alias("comm"),
        "channel",
        pl.col("ranks").alias("src"),
        pl.coalesce("next", pl.when(pl.col("complete")).then("first")).alias("dst"),
        pl.lit("ring").alias("kind"),
        pl.lit(None, pl.Utf8).alias("transport"),
        pl.lit(None, pl.Utf8).alias("transport_class"),
        "line",
    ).filter(pl.col("dst").is_not_null())


def _rings(rows: pl.LazyFrame) -> pl.LazyFrame:
    """`Ring 00 : prev -> me -> next` (GRAPH subsystem): the two edges through `me`."""
    found = (
        rows.select(
            FILE, "host", "pid", "ctx_comm", "line", pl.col("msg").str.extract_groups(_RING)
        )
        .unnest("msg")
        .filter(pl.col("me").is_not_null())
    )
    return _edges(found, [("prev", "me"), ("me", "next")], "ring")


def _trees(rows: pl.LazyFrame) -> pl.LazyFrame:
    """`Trees [c] d0/d1/d2->me->up …` and `Tree c : up -> me -> d0/d1/d2`, child -> parent."""
    msg = pl.col("msg")
    single = (
        rows.filter(msg.str.starts_with("Tree "))
        .select(FILE, "host", "pid", "ctx_comm", "line", msg.str.extract_groups(_TREE))
        .unnest("msg")
    )
    many = (
        rows.filter(msg.str.starts_with("Trees"))
        .select(FILE, "host", "pid", "ctx_comm", "line", msg.str.extract_all(_TREES_ITEM))
        .explode("msg")
        .select(
            FILE, "host", "pid", "ctx_comm", "line", pl.col("msg").str.extract_groups(_TREES_ITEM)
        )
        .unnest("msg")
    )
    found = pl.concat([single, many], how="diagonal_relaxed").filter(pl.col("me").is_not_null())
    return _edges(found, [("d0", "me"), ("d1", "me"), ("d2", "me"), ("me", "up")], "tree")


def _edges(found: pl.LazyFrame, pairs: list[tuple[str, str]], kind: str) -> pl.LazyFrame:
    """Rows src -> dst for each (src column, dst column) pair; -1 means no neighbour."""
    return pl.concat(
        [
            found.select(
                FILE,
                "host",
                "pid",
                pl.col("ctx_comm").alias("comm"),
                pl.col("channel").cast(pl.Int64),
                pl.col(src).cast(pl.Int64).alias("src"),
                pl.col(dst).cast(pl.Int64).alias("dst"),
                pl.lit(kind).alias("kind"),
                pl.lit(None, pl.Utf8).alias("transport"),
                pl.lit(None, pl.Utf8).alias("transport_class"),
                "line",
            )
            for src, dst in pairs
        ]
    ).filter((pl.col("src") >= 0) & (pl.col("dst") >= 0))


def _net(base: pl.LazyFrame) -> pl.LazyFrame:
    """Network facts; a line counts once, as the first kind in _NET_FACTS it matches."""
    msg = pl.col("msg")
    rows = base.filter(
        msg.str.starts_with("Using network")
        | msg.str.starts_with("NET/")
        | msg.str.starts_with("Bootstrap")
        | msg.str.contains(" NET plugin ", literal=True)
    )
    what = pl.lit(None, pl.Utf8)
    value = pl.lit(None, pl.Utf8)
    for name, pattern in reversed(_NET_FACTS):
        fact = msg.str.extract(pattern, 1)
        what = pl.when(fact.is_not_null()).then(pl.lit(name)).otherwise(what)
        value = pl.when(fact.is_not_null()).then(fact).otherwise(value)
    return rows.select(
        FILE,
        "host",
        "pid",
        what.alias("what"),
        value.alias("value"),
        "line",
        pl.col("text").str.strip_chars(),
    ).filter(pl.col("what").is_not_null())


def _collectives(base: pl.LazyFrame) -> pl.LazyFrame:
    found = (
        base.filter(pl.col("msg").str.contains(": opCount ", literal=True))
        .select(FILE, "host", "pid", "line", pl.col("msg").str.extract_groups(_COLLECTIVE))
        .unnest("msg")
        .filter(pl.col("comm").is_not_null())
    )
    return found.select(
        FILE,
        "host",
        "pid",
        "comm",
        "op",
        pl.col("op_count").str.to_integer(base=16, strict=False).alias("op_count"),
        "count",
        "datatype",
        "root",
        "nranks",
        "line",
    ).cast(_COLLECTIVES_SCHEMA)
