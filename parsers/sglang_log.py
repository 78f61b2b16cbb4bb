"""Facts from one SGLang log file or console paste.

SGLang never prints its process groups, but it leaves enough behind to rebuild them:
the `server_args=` line (sizes after SGLang's own rewrites), the launch commands users
paste next to the output, the scheduler prefix on every line (`[ts DP1 TP9 EP9]`, which
says which rank wrote it), a few warnings that record rewrites or cross-node groups, and
the NCCL INFO lines that name hosts and communicator sizes. This module only collects
those facts with their line numbers; deciding what they mean is the engines' job.

Logs can be large, so every per-line test is a polars string expression over a frame
of all lines; Python only loops over the handful of rows that matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from diagnose.model import Evidence, Param, Source
from parsers.launch_cmd import TRIGGER, LaunchCommand, find_commands
from parsers.server_args import parse_server_args

SNIFF_BYTES = 64 * 1024
_HEADER = "#@ "
# prefixes column -> token SGLang writes; each is read on its own so any order parses.
_RANK_TOKENS = {
    "dp": "DP", "pp": "PP", "attn_cp": "ATTN_CP", "moe_dp": "MOE_DP", "tp": "TP", "ep": "EP"
}  # fmt: skip
_TIMESTAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?"
_TOKENS = r"(?: (?:DP|PP|ATTN_CP|MOE_DP|TP|EP)\d+)+"
_PREFIX = rf"\[(?P<ts>{_TIMESTAMP})(?P<tokens>{_TOKENS})\] ?(?P<message>.*)"
_VERSION = (
    r"(?i)\bsglang(?:-|==|\s+(?:version[:=]?\s*)?v?)"
    r"(\d+\.\d+\.\d+(?:\.?(?:post|rc|dev)\d+)?)"
)
# First match wins, so the specific kinds come before the catch-all exception test.
_EVENT_KINDS: tuple[tuple[str, str], ...] = (
    (
        "rewrite",
        r"is enabled\. The expert parallel size is adjusted to be the same as the tensor"
        r"|Enabled DSA context parallel:|Enable Context Parallel opt for MLA"
        r"|DP attention is enabled\. (?:The )?chunked prefill size is adjusted",
    ),
    ("init_begin", r"Init torch distributed begin\."),
    ("init_end", r"Init torch distributed ends\."),
    ("spans_nodes", r"(?i)custom ?allreduce is disabled because this process group spans"),
    ("dp_launch", r"Launch DP\d+ starting at GPU #\d+"),
    ("nccl_version", r"sglang is using nccl==|NCCL version \d+\.\d+\.\d+"),
    ("nccl_warn", r"NCCL WARN"),
    ("pg_create", r"^\s*_[A-Z_]+ = init_model_parallel_group\("),
    (
        "nccl_net",
        r"NCCL INFO (?:.* via NET/|NET/(?:IB|Socket|Plugin) ?:|Using network )",
    ),
    (
        "exception",
        r"Scheduler hit an exception|Traceback \(most recent call last\)"
        r"|^\s*(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception)|Exception)(?::\s|:?\s*$)",
    ),
)
# `host:pid:tid [cudaDev] NCCL INFO ...`; WARN lines put `file.cc:line` before `NCCL`.
_NCCL_LINE = (
    r"^(?:\[[^\]]*\]\s*)?(?P<host>[\w.-]+):(?P<pid>\d+):\d+ \[(?P<dev>\d+)\] "
    r"(?:\S+:\d+ )?NCCL (?:INFO|WARN)"
)
_NCCL_OWN_IP = r"(?:Bootstrap\s*: Using|OOB) [\w.-]+:([0-9A-Fa-f.:]+)<\d+>"
_NCCL_PEER_IP = r"(?:connect to|from peer) ([0-9A-Fa-f.:]+)<\d+>"
_PROMPT_HOST = r"\[[^\]\s@]+@([^\]\s]+)(?:\s[^\]]*)?\]\s?[$#]|[\w.-]+@([\w.-]+):\S*[$#]\s"
_C10D_ADDR = r"\[c10d\].*?\[([^\]]+)\]:\d+"
_COMM_INFO = (
    r"NCCL INFO comm (?P<comm>0x[0-9a-f]+) rank (?P<rank>\d+) nRanks (?P<nranks>\d+) "
    r"nNodes (?P<nnodes>\d+) localRanks (?P<local_ranks>\d+) localRank (?P<local_rank>\d+)"
)
_COMM_INIT = (
    r"ncclCommInitRank comm (?P<comm>0x[0-9a-f]+) rank (?P<rank>\d+) nranks (?P<nranks>\d+)"
    r"(?:.*?commId (?P<comm_id>0x[0-9a-f]+))?"
)
_IP = r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)$"
_SNIFF = re.compile(
    rf"\[{_TIMESTAMP}{_TOKENS}\]|server_args=(?:ServerArgs\(|\{{)|sglang\.launch_server"
    r"|\bsglang\s+serve\b|sglang::scheduler|sglang is using nccl=="
)

_HOSTS_SCHEMA = {"line": pl.Int64, "host": pl.Utf8, "ip": pl.Utf8, "kind": pl.Utf8}
_COMM_INTS = ("rank", "nranks", "nnodes", "local_ranks", "local_rank")


@dataclass
class SGLangLog:
    """Everything one SGLang log says about its layout, each fact with its line."""

    path: str
    version: str | None
    config: dict[str, Param]
    config_line: Evidence | None
    commands: list[LaunchCommand]
    prefixes: pl.DataFrame
    events: list[Evidence]
    hosts: pl.DataFrame
    nccl_comms: pl.DataFrame
    engine: str = "sglang"


def sniff_sglang(head: str) -> bool:
    """True when the start of a file looks like SGLang output or an SGLang launch."""
    return _SNIFF.search(head[:SNIFF_BYTES]) is not None


def parse_sglang_log(path: Path, display: str) -> SGLangLog:
    """Parse `path`; `display` is the name every Source and Evidence will carry.

    Raises OSError when the file cannot be read. Undecodable bytes are replaced rather
    than fatal, because console pastes often carry a stray non-UTF-8 byte.
    """
    lines = _read_lines(path)
    frame = pl.DataFrame(
        {"line": pl.int_range(1, len(lines) + 1, eager=True, dtype=pl.Int64), "text": lines},
        schema={"line": pl.Int64, "text": pl.Utf8},
    ).with_columns(pl.col("text").str.strip_suffix("\r"))
    is_header = pl.col("text").str.starts_with(_HEADER)
    body = frame.filter(~is_header)
    commands = _commands(frame.with_columns(pl.when(~is_header).then("text")), display)
    server_args, config_line = _server_args(body, display)
    return SGLangLog(
        path=display,
        version=_version(body),
        config=server_args,
        config_line=config_line,
        commands=commands,
        prefixes=_prefixes(body),
        events=_events(body, display),
        hosts=_hosts(body, _configured(commands, server_args, config_line)),
        nccl_comms=_nccl_comms(body),
    )


def _read_lines(path: Path) -> list[str]:
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _commands(frame: pl.DataFrame, display: str) -> list[LaunchCommand]:
    """Launch commands, handing find_commands only the line blocks that can hold one.

    A block is a run of backslash-continued lines; blocks without a trigger line are
    dropped here so the per-line Python scan runs on a few lines, not on the whole log.
    Header lines arrive as nulls and count as empty lines.
    """
    text = pl.col("text").fill_null("")
    blocks = frame.select(
        "line",
        text,
        (~text.str.ends_with("\\").shift(1, fill_value=False)).cum_sum().alias("block"),
        text.str.contains(TRIGGER).alias("trigger"),
    )
    wanted = blocks.filter(pl.col("trigger"))["block"].unique()
    candidates = blocks.filter(pl.col("block").is_in(wanted.implode()))
    numbers = candidates["line"].to_list()
    found = find_commands(candidates["text"].to_list(), display)
    return [_renumbered(command, numbers[command.line - 1]) for command in found]


def _renumbered(command: LaunchCommand, line: int) -> LaunchCommand:
    """The same command with its line (and every Param's source) in the full file."""
    source = Source("file", command.file, line)
    params = {name: replace(param, source=source) for name, param in command.params.items()}
    return replace(command, params=params, line=line)


def _version(body: pl.DataFrame) -> str | None:
    found = body.select(pl.col("text").str.extract(_VERSION, 1).drop_nulls())["text"]
    return found[-1] if len(found) else None


def _server_args(body: pl.DataFrame, display: str) -> tuple[dict[str, Param], Evidence | None]:
    """The last `server_args=` line that parses; a truncated paste falls back to earlier ones."""
    rows = body.select(
        "line", "text", pl.col("text").str.extract(r"(?:^|\W)server_args=(.*)$", 1).alias("args")
    ).filter(pl.col("args").is_not_null())
    for line, text, args in reversed(rows.rows()):
        try:
            values = parse_server_args(args)
        except ValueError:
            continue
        source = Source("file", display, line)
        params = {name: Param(name, value, source) for name, value in values.items()}
        return params, Evidence(display, line, text.strip(), "server_args")
    return {}, None


def _prefixes(body: pl.DataFrame) -> pl.DataFrame:
    parts = body.select("line", pl.col("text").str.extract_groups(_PREFIX).alias("p")).unnest("p")
    parts = parts.filter(pl.col("tokens").is_not_null())
    ranks = [
        pl.col("tokens").str.extract(rf" {token}(\d+)", 1).cast(pl.Int64).alias(name)
        for name, token in _RANK_TOKENS.items()
    ]
    return parts.select(
        "line",
        pl.col("ts").str.strptime(pl.Datetime("ms"), "%Y-%m-%d %H:%M:%S%.f", strict=False),
        *ranks,
        pl.col("message").str.strip_chars().alias("text"),
    )


def _events(body: pl.DataFrame, display: str) -> list[Evidence]:
    kind = pl.lit(None, dtype=pl.Utf8)
    for name, pattern in reversed(_EVENT_KINDS):
        kind = pl.when(pl.col("text").str.contains(pattern)).then(pl.lit(name)).otherwise(kind)
    hits = body.select("line", "text", kind.alias("kind")).filter(pl.col("kind").is_not_null())
    return [Evidence(display, line, text.strip(), name) for line, text, name in hits.rows()]


def _hosts(body: pl.DataFrame, configured: pl.DataFrame) -> pl.DataFrame:
    """Host names and addresses with the line that shows them, one row per sighting."""
    text = pl.col("text")
    nccl = body.select(
        "line",
        text.str.extract(_NCCL_LINE, 1).alias("host"),
        text.str.extract(_NCCL_OWN_IP, 1).alias("ip"),
        pl.lit("nccl").alias("kind"),
    )
    peers = body.select(
        "line",
        pl.lit(None, dtype=pl.Utf8).alias("host"),
        text.str.extract(_NCCL_PEER_IP, 1).alias("ip"),
        pl.lit("nccl_peer").alias("kind"),
    )
    prompts = body.select(
        "line",
        pl.coalesce(text.str.extract(_PROMPT_HOST, 1), text.str.extract(_PROMPT_HOST, 2)).alias(
            "host"
        ),
        pl.lit(None, dtype=pl.Utf8).alias("ip"),
        pl.lit("prompt").alias("kind"),
    )
    c10d = body.select(
        "line", text.str.extract(_C10D_ADDR, 1).alias("address"), pl.lit("c10d").alias("kind")
    )
    found = pl.concat([nccl, peers, prompts], how="vertical").filter(
        pl.col("host").is_not_null() | pl.col("ip").is_not_null()
    )
    c10d = c10d.filter(pl.col("address").is_not_null())
    addresses = _split_address(pl.concat([c10d, configured]))
    return pl.concat([found, addresses]).sort("line", maintain_order=True)


def _configured(
    commands: list[LaunchCommand],
    server_args: dict[str, Param],
    config_line: Evidence | None,
) -> pl.DataFrame:
    """`--host` and `--dist-init-addr` of each command and of the server_args line."""
    sources = [(command.line, command.params) for command in commands]
    if config_line is not None:
        sources.append((config_line.line, server_args))
    rows = [
        (line, _strip_port(param.value) if field == "dist_init_addr" else param.value, kind)
        for line, params in sources
        for field, kind in (("host", "host_arg"), ("dist_init_addr", "dist_init_addr"))
        if (param := params.get(field)) is not None and isinstance(param.value, str)
    ]
    return pl.DataFrame(
        rows, schema={"line": pl.Int64, "address": pl.Utf8, "kind": pl.Utf8}, orient="row"
    )


def _strip_port(address: str) -> str:
    """`10.0.0.1:5000` -> `10.0.0.1`, `[::1]:5000` -> `::1`."""
    return re.sub(r"^\[?(.*?)\]?:\d+$", r"\1", address)


def _split_address(frame: pl.DataFrame) -> pl.DataFrame:
    """Put IP literals in `ip` (IPv4-mapped IPv6 unwrapped) and names in `host`."""
    address = pl.col("address").str.replace(r"(?i)^::ffff:", "")
    is_ip = address.str.contains(_IP)
    return frame.select(
        "line",
        pl.when(is_ip).then(None).otherwise(address).alias("host"),
        pl.when(is_ip).then(address).otherwise(None).alias("ip"),
        "kind",
    ).cast(_HOSTS_SCHEMA)


def _nccl_comms(body: pl.DataFrame) -> pl.DataFrame:
    """One row per (host, pid, comm), merging `comm ... nRanks` and `ncclCommInitRank` lines."""
    text = pl.col("text")
    base = body.select("line", text.str.extract_groups(_NCCL_LINE).alias("who"), text).unnest("who")
    base = base.filter(pl.col("host").is_not_null())
    info = base.select(
        "line", "host", "pid", "dev", "text", text.str.extract_groups(_COMM_INFO).alias("c")
    ).unnest("c")
    init = base.select(
        "line", "host", "pid", "dev", "text", text.str.extract_groups(_COMM_INIT).alias("c")
    ).unnest("c")
    merged = pl.concat([info, init], how="diagonal_relaxed").filter(pl.col("comm").is_not_null())
    return (
        merged.group_by("host", "pid", "comm", maintain_order=True)
        .agg(
            pl.col("line").min(),
            pl.col("text").sort_by("line").first(),
            *[pl.col(name).drop_nulls().first() for name in ("dev", *_COMM_INTS, "comm_id")],
        )
        .select(
            pl.col("line").cast(pl.Int64),
            pl.col("host").cast(pl.Utf8),
            pl.col("pid").cast(pl.Int64),
            pl.col("dev").cast(pl.Int64),
            pl.col("comm").cast(pl.Utf8),
            *[pl.col(name).cast(pl.Int64) for name in _COMM_INTS],
            pl.col("comm_id").cast(pl.Utf8),
            pl.col("text").str.strip_chars(),
        )
        .sort("line")
    )
