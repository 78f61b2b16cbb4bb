"""Turn what the parsers found into one configuration with provenance.

Several inputs usually speak about the same job: a launch script, a `server_args=`
dump per node, NCCL lines. The dump wins (it holds the values after the engine's rewrites),
then launch commands, then defaults; disagreements between inputs are kept so a rule can
report them instead of silently picking one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

import polars as pl

from diagnose.engines.base import EngineLog
from diagnose.model import Evidence, Param, Source
from diagnose.nccl_groups import fact_frame
from parsers.launch_cmd import LaunchCommand
from parsers.lines import labelled
from parsers.nccl_log import NcclFacts

NOT_COORDINATES = ("line", "ts", "text", "host")
# The column that tells the logs apart in a frame of several logs' rows.
_LOG = "__log"


@dataclass
class Assembled:
    """The evidence of one job, ready for the engine and the rules."""

    params: dict[str, Param] = field(default_factory=dict)
    param_evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    version: str | None = None
    events: list[Evidence] = field(default_factory=list)
    prefixes: list[tuple[Evidence, dict[str, int]]] = field(default_factory=list)
    conflicts: list[tuple[str, list[tuple[Any, Evidence]]]] = field(default_factory=list)
    nccl_comms: pl.DataFrame = field(default_factory=pl.DataFrame)
    rank_hosts: dict[int, str] = field(default_factory=dict)
    node_hosts: dict[int, str] = field(default_factory=dict)
    has_net_lines: bool = False
    nccl_hosts: list[str] = field(default_factory=list)
    engine_files: dict[str, list[str]] = field(default_factory=dict)


def clip_around(text: str, needle: str, width: int = 160) -> str:
    """The part of a long line around `needle`, so evidence shows the value, not 8 KB."""
    if len(text) <= width:
        return text
    at = text.find(needle)
    if at < 0:
        return text[:width] + " …"
    start = max(0, at - width // 3)
    end = min(len(text), start + width)
    return ("… " if start else "") + text[start:end] + (" …" if end < len(text) else "")


def _dump_evidence(log: EngineLog, name: str) -> Evidence | None:
    """The dump line that set `name`: the one-line dump itself, or the parameter's own line
    in dumps that print one argument per line."""
    line = log.config_line
    if line is None:
        return None
    param = log.config[name]
    if param.source.line not in (None, line.line):
        return Evidence(line.file, param.source.line, f"{name}: {param.value}", "config")
    return Evidence(line.file, line.line, clip_around(line.text, f"{name}="), "config")


def _command_evidence(cmd: LaunchCommand, name: str) -> Evidence:
    flag = next((a for a in cmd.argv if a.lstrip("-").replace("-", "_").startswith(name[:6])), "")
    return Evidence(cmd.file or "command line", cmd.line, clip_around(cmd.text, flag), "launch")


# One input's values and how to show the line behind one of them (made only when shown).
ValueSource = tuple[dict[str, Param], Callable[[str], Evidence | None]]


def _sources(logs: list[EngineLog], commands: list[LaunchCommand]) -> list[ValueSource]:
    """Every input that gives values (launch commands, then configuration dumps), lowest
    priority first."""
    found: list[ValueSource] = [
        (cmd.params, partial(_command_evidence, cmd)) for cmd in commands if cmd.params
    ]
    found += [
        (log.config, partial(_dump_evidence, log)) for log in logs if log.config_line is not None
    ]
    return found


def assemble(
    logs: list[EngineLog],
    commands: list[LaunchCommand] | None = None,
    compared: Sequence[str] = (),
    nccl: Sequence[NcclFacts] = (),
) -> Assembled:
    """Merge all inputs of one job; `commands` are extra launch commands (pre-flight).

    Inputs that give different values to a `compared` parameter (the engine's layout
    parameters) are recorded as conflicts. Work goes per input and per parameter name, not
    per value: a directory of 128 dumps holds some 40 000 values, and evidence is made only
    for the few that are shown.
    """
    out = Assembled()
    all_commands = [c for log in logs for c in log.commands] + list(commands or [])
    sources = _sources(logs, all_commands)
    for params, _ in sources:
        out.params.update(params)
    for name in [name for name in out.params if name in compared]:
        values = [(params[name].value, show) for params, show in sources if name in params]
        if len({repr(v) for v, _ in values}) > 1:
            shown = [(v, show(name)) for v, show in values[:8]]
            out.conflicts.append((name, [(v, e) for v, e in shown if e is not None]))
    for name in out.params:
        # the winning source first
        made = (show(name) for params, show in reversed(sources) if name in params)
        out.param_evidence[name] = list(islice((e for e in made if e is not None), 3))
    _rewrites_from_warnings(out, [e for log in logs for e in log.events if e.kind == "rewrite"])
    out.version = next((log.version for log in logs if log.version), None)
    for log in logs:
        out.engine_files.setdefault(log.engine, []).append(log.path)
        out.events += log.events
    out.prefixes = _prefixes(logs)
    out.nccl_comms = fact_frame(nccl, "comms")
    out.nccl_hosts = _whole_hosts(
        [h for f in nccl for h in f.procs["host"].drop_nulls().unique(maintain_order=True)]
    )
    _node_hosts(out, logs)
    out.has_net_lines = any(
        not f.net.is_empty() or f.links["transport_class"].str.starts_with("NET").any()
        for f in nccl
    )
    return out


# Which dumped fields a ServerArgs rewrite warning explains (the dump shows the result).
REWRITTEN_BY = (
    ("expert parallel size is adjusted", ("ep_size",)),
    ("context parallel", ("attn_cp_size", "ep_size", "moe_dense_tp_size")),
    ("Context Parallel opt for MLA", ("attn_cp_size", "ep_size", "moe_dense_tp_size")),
)


def _rewrites_from_warnings(out: Assembled, warnings: list[Evidence]) -> None:
    """Give a dumped value the provenance of the warning that announced its rewrite."""
    for ev in warnings:
        for needle, fields in REWRITTEN_BY:
            if needle not in ev.text:
                continue
            for name in fields:
                if name in out.params:
                    why = f"{ev.text.split('] ', 1)[-1][:120]} ({ev.file}:{ev.line})"
                    value = out.params[name].value
                    out.params[name] = Param(name, value, Source("engine rewrite", why=why))
                    out.param_evidence.setdefault(name, []).insert(0, ev)


def _prefixes(logs: list[EngineLog]) -> list[tuple[Evidence, dict[str, int]]]:
    """The first line of every distinct coordinate combination each log prints, in the
    logs' order: one polars call for all the logs that print the same prefix columns."""
    by_columns: dict[tuple[str, ...], list[int]] = {}
    for i, log in enumerate(logs):
        if not log.prefixes.is_empty():
            by_columns.setdefault(tuple(log.prefixes.columns), []).append(i)
    found: dict[int, list[tuple[Evidence, dict[str, int]]]] = {}
    for columns, indexes in by_columns.items():
        coords = [c for c in columns if c not in NOT_COORDINATES]
        every = labelled(
            [logs[i].prefixes for i in indexes], indexes, _LOG, pl.Int64, "diagonal_relaxed"
        )
        firsts = every.unique([_LOG, *coords], keep="first", maintain_order=True)
        for row in firsts.iter_rows(named=True):
            tokens = {k: row[k] for k in coords if row[k] is not None}
            evidence = Evidence(logs[row[_LOG]].path, row["line"], row["text"], "prefix")
            found.setdefault(row[_LOG], []).append((evidence, tokens))
    return [prefix for i in sorted(found) for prefix in found[i]]


def _whole_hosts(hosts: list[str]) -> list[str]:
    """Distinct host names, without the tails of names a console paste cut mid-word
    (`pseek-v2-5-0-1` beside `deepseek-v2-5-0-1`)."""
    distinct = list(dict.fromkeys(hosts))
    return [h for h in distinct if not any(o != h and o.endswith(h) for o in distinct)]


def world_rank_hosts(comms: pl.DataFrame, world: int) -> dict[int, str]:
    """Rank → host from NCCL communicators as large as the world (their rank is global)."""
    if comms.is_empty():
        return {}
    world_comms = (
        comms.filter((pl.col("nranks") == world) & pl.col("rank").is_not_null())
        .drop_nulls("host")
        .unique("rank", keep="first", maintain_order=True)
    )
    return {int(r): h for r, h in world_comms.select("rank", "host").iter_rows()}


def _node_hosts(out: Assembled, logs: list[EngineLog]) -> None:
    """Rank → host from lines that state both (worker prefixes) and from per-rank logs;
    node → host from per-node logs (one host name in a file that says which node it is).

    Each step is one polars call over all the logs, not a few per log: a directory holds
    a log per node or per rank, and thousands of small calls cost more than the work."""
    stated = _of_logs(logs, "prefixes", lambda df: {"rank", "host"} <= set(df.columns))
    if stated is not None:
        pairs = stated.select(_LOG, pl.col("rank").cast(pl.Int64), pl.col("host").cast(pl.Utf8))
        firsts = pairs.drop_nulls().unique([_LOG, "rank"], keep="first", maintain_order=True)
        for _, rank, host in firsts.iter_rows():
            out.rank_hosts.setdefault(int(rank), host)
    tp = out.params.get("tp_size")
    tp_size = tp.value if tp and isinstance(tp.value, int) else 1
    hosts = _single_hosts(logs)
    ranks = _single_ranks(logs, tp_size)
    for i, log in enumerate(logs):
        if i not in hosts:
            continue
        node = _file_node(log)
        if node is not None:
            out.node_hosts.setdefault(node, hosts[i])
        if i in ranks:
            out.rank_hosts.setdefault(ranks[i], hosts[i])


def _of_logs(
    logs: list[EngineLog], name: str, has: Callable[[pl.DataFrame], bool]
) -> pl.DataFrame | None:
    """The `name` frame (prefixes or hosts) of every log where it `has` what is looked for,
    stacked with the log's index in _LOG; None when no log's has."""
    chosen = [i for i, log in enumerate(logs) if has(getattr(log, name))]
    if not chosen:
        return None
    frames = [getattr(logs[i], name) for i in chosen]
    return labelled(frames, chosen, _LOG, pl.Int64, "diagonal_relaxed")


def _single_hosts(logs: list[EngineLog]) -> dict[int, str]:
    """Log index → the one host its NCCL lines and shell prompts name (logs that name none
    or several are left out)."""
    named = _of_logs(logs, "hosts", lambda df: not df.is_empty())
    if named is None:
        return {}
    one = (
        named.filter(pl.col("kind").is_in(["nccl", "prompt"]) & pl.col("host").is_not_null())
        .group_by(_LOG)
        .agg(pl.col("host").n_unique().alias("n"), pl.col("host").first())
    )
    return dict(one.filter(pl.col("n") == 1).select(_LOG, "host").iter_rows())


def _single_ranks(logs: list[EngineLog], tp_size: int) -> dict[int, int]:
    """Log index → the one global rank a per-rank log speaks for, if it speaks for exactly
    one: its `rank` column's one value, or else its one (pp, tp) pair."""
    out: dict[int, int] = {}
    ranked = _of_logs(logs, "prefixes", lambda df: "rank" in df.columns)
    if ranked is not None:
        one = (
            ranked.select(_LOG, pl.col("rank").cast(pl.Int64))
            .drop_nulls()
            .group_by(_LOG)
            .agg(pl.col("rank").n_unique().alias("n"), pl.col("rank").first())
        )
        out.update(one.filter(pl.col("n") == 1).select(_LOG, "rank").iter_rows())
    paired = _of_logs(logs, "prefixes", lambda df: "rank" not in df.columns and "tp" in df.columns)
    if paired is not None:
        pp = pl.col("pp") if "pp" in paired.columns else pl.lit(None)
        one = (
            paired.select(_LOG, pp.cast(pl.Int64).alias("pp"), pl.col("tp").cast(pl.Int64))
            .group_by(_LOG)
            .agg(
                pl.struct("pp", "tp").n_unique().alias("n"),
                pl.col("pp").first(),
                pl.col("tp").first(),
            )
        )
        single = one.filter((pl.col("n") == 1) & pl.col("tp").is_not_null())
        out.update((i, (pp or 0) * tp_size + tp) for i, _, pp, tp in single.iter_rows())
    return out


def _file_node(log: EngineLog) -> int | None:
    """The node a per-node log belongs to: its dump's node_rank, or its commands' one."""
    if "node_rank" in log.config:
        return int(log.config["node_rank"].value)
    ranks = {c.params["node_rank"].value for c in log.commands if "node_rank" in c.params}
    return int(ranks.pop()) if len(ranks) == 1 else None
