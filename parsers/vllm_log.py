"""Facts from one vLLM log file or console paste.

vLLM states its layout more plainly than most engines: every process logs `rank R in world
size W is assigned as DP rank …, PP rank …, TP rank …` (four historical forms, 0.8 → 0.30),
and every worker line carries a prefix naming the process: `(Worker_DP1_PP1_TP1_EP5 pid=…)`
(0.10.2+), `(VllmWorker TP0 pid=…)` / `(VllmWorker rank=3 pid=…)` (older multiprocessing),
`(RayWorkerWrapper pid=…, ip=…)` (Ray; the ip is missing on the driver's node) or
`(EngineCore_DP0 pid=…)`. The engine config line (`Initializing a V1 LLM engine (v…) with
config: …`) holds the sizes after vLLM's rewrites, the `args: Namespace(…)` /
`non-default args: {…}` line what was asked for. This module collects those facts with
their line numbers: every row of `prefixes` gets the global `rank` and the `host` of the
process that wrote it, joining Ray's per-process prefix with that process's assignment line
and NCCL host name.

Every per-line test is a polars expression over a frame of all lines; Python only loops
over the few rows that matched (config dumps, launch commands).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import polars as pl

from diagnose.engines.base import EngineLog
from diagnose.model import Evidence, Param, Source
from parsers.hosts import HOSTS_SCHEMA
from parsers.launch_cmd import LaunchCommand
from parsers.lines import read_lines
from parsers.server_args import parse_server_args
from parsers.vllm_cmd import TRIGGER, find_commands

SNIFF_BYTES = 64 * 1024
_ANSI = r"\x1b\[[0-9;]*m"
# `(name pid=N)` or `(name pid=N, ip=A)` at the start of a line; Ray may omit the name.
_PROC = r"^\((?:(?P<proc>[^()]*?) )?pid=(?P<pid>\d+)(?:, ip=(?P<ip>[^)\s]+))?\)\s?(?P<rest>.*)$"
_ASSIGNED = r"rank (\d+) in world size (\d+) is assigned as"
# Each field on its own, so a line Ray cut short (`…, PP rank 1, TP ra`) still gives the rest.
_ASSIGNED_FIELDS = {
    "dp": r"is assigned as DP rank (\d+)",
    "pp": r", PP rank (\d+)",
    "pcp": r", PCP rank (\d+)",
    "tp": r", TP rank (\d+)",
    "etp": r", ETP rank (\d+)",
    "ep": r", EP rank (\d+|N/A)",
    "eplb": r", EPLB rank (\d+|N/A)",
}
_WORLD_LINE = r"world_size=(\d+) rank=(\d+) local_rank=(\d+) distributed_init_method="
# Worker process names: Worker_DP1_PP1_PCP1_TP1_DCP1_EP5 and VllmWorker PP1_TP3.
_NAME_TOKENS = {
    "dp": r"^Worker(?:_[A-Z]+\d+)*_DP(\d+)",
    "pp": r"^(?:Worker|VllmWorker)[ _](?:[A-Z]+\d+_)*PP(\d+)",
    "pcp": r"^Worker(?:_[A-Z]+\d+)*_PCP(\d+)",
    "tp": r"^(?:Worker|VllmWorker)[ _](?:[A-Z]+\d+_)*TP(\d+)",
    "dcp": r"^Worker(?:_[A-Z]+\d+)*_DCP(\d+)",
    "ep": r"^Worker(?:_[A-Z]+\d+)*_EP(\d+)",
}
_WORKER_RANK = r"^VllmWorker rank=(\d+)$"
_ENGINE_DP = r"^(?:EngineCore|DPEngineCoreActor)_DP(\d+)$"
_NCCL_HOST = r"^(?:\[[^\]]*\]\s*)?(?P<nhost>[\w.-]+):(?P<npid>\d+):\d+ \[\d+\] (?:\S+:\d+ )?NCCL "
_NCCL_OWN_IP = r"(?:Bootstrap\s*: Using|OOB) [\w.-]+:([0-9A-Fa-f.:]+)<\d+>"
_ENGINE_CONFIG = r"Initializing a V[01] LLM engine \(v([^)]+)\) with config: (.*)$"
_VERSION = (
    r"vLLM API server version (\d+\.\d+\.\d+\S*)|LLM engine \(v(\d+\.\d+\.\d+[^)\s]*)\)"
    r"|\bvllm(?:==|-| version )v?(\d+\.\d+\.\d+(?:\.?(?:post|rc|dev)\d+)?)"
)
_ARGS = r"(?:^|\s)args: (Namespace\(.*\))\s*$|non-default args: (\{.*\})\s*$"
_BACKEND = (
    r"Defaulting to use (\w+) for distributed inference"
    r"|Using (ray) distributed inference because"
)
# Fields of the engine config line, one pattern each (the line is long and not a literal).
_CONFIG_FIELDS: dict[str, tuple[str, type]] = {
    "tensor_parallel_size": (r"\btensor_parallel_size=(\d+)", int),
    "pipeline_parallel_size": (r"\bpipeline_parallel_size=(\d+)", int),
    "data_parallel_size": (r"\bdata_parallel_size=(\d+)", int),
    "decode_context_parallel_size": (r"\bdecode_context_parallel_size=(\d+)", int),
    "prefill_context_parallel_size": (r"\bprefill_context_parallel_size=(\d+)", int),
    "enable_expert_parallel": (r"\benable_expert_parallel=(True|False)", bool),
    "disable_custom_all_reduce": (r"\bdisable_custom_all_reduce=(True|False)", bool),
    "model_path": (r"(?:^|\s)model='([^']*)'", str),
}
# Fields of an args dump that rankmap reads; the rest of the few hundred are ignored.
_ARG_FIELDS = (
    "model",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "data_parallel_size_local",
    "data_parallel_rank",
    "data_parallel_start_rank",
    "data_parallel_address",
    "data_parallel_backend",
    "data_parallel_hybrid_lb",
    "data_parallel_external_lb",
    "prefill_context_parallel_size",
    "decode_context_parallel_size",
    "enable_expert_parallel",
    "enable_eplb",
    "enable_elastic_ep",
    "all2all_backend",
    "distributed_executor_backend",
    "nnodes",
    "node_rank",
    "master_addr",
    "disable_custom_all_reduce",
    "headless",
)
# First match wins, so the specific kinds come before the catch-all exception test.
_EVENT_KINDS: tuple[tuple[str, str], ...] = (
    ("assigned", _ASSIGNED),
    (
        "spans_nodes",
        r"(?i)(?:custom allreduce|quickreduce) is disabled because this process group spans"
        r"|Custom collectives are disabled because this multi-node group",
    ),
    ("custom_ar", r"(?i)custom all-?reduce|custom_all_reduce"),
    ("rewrite", _BACKEND + r"|Falling back to V0|Disabling NCCL for DP synchronization"),
    ("pp_partition", r"Hidden layers were unevenly partitioned"),
    ("nccl_version", r"vLLM is using nccl==|NCCL version \d+\.\d+\.\d+"),
    ("nccl_warn", r"NCCL WARN"),
    (
        "exception",
        r"Traceback \(most recent call last\)|EngineCore encountered a fatal error"
        r"|^\s*(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception)|Exception)(?::\s|:?\s*$)",
    ),
    ("named_group", r"\b(?:world|tp|etp|edp|dcp|pcp|pp|dp|ep|eplb):\d+\b"),
)
_SNIFF = re.compile(
    r"\bvllm\s+serve\b|vllm\.entrypoints|Initializing a V[01] LLM engine|vLLM API server version"
    r"|is assigned as DP rank|\((?:Worker(?:_[A-Z]+\d+)*|VllmWorker[^)]*|RayWorkerWrapper"
    r"|EngineCore(?:_DP\d+)?) pid=\d+|vLLM is using nccl=="
)


def sniff_vllm(head: str) -> bool:
    """True when the start of a file looks like vLLM output or a vLLM launch."""
    return _SNIFF.search(head[:SNIFF_BYTES]) is not None


def parse_vllm_log(path: Path, display: str, frame: pl.DataFrame | None = None) -> EngineLog:
    """Parse `path`; `display` is the name every Source and Evidence will carry.

    `frame` is the file as parsers.lines.read_lines gives it, when the caller read it
    already for other parsers.

    Raises OSError when the file cannot be read.
    """
    frame = read_lines(path) if frame is None else frame
    frame = frame.with_columns(pl.col("text").str.replace_all(_ANSI, ""))
    split = _split_prefix(frame)
    config, config_line = _engine_config(split, display)
    commands = _commands(frame, display) + _args_dumps(split, display)
    return EngineLog(
        engine="vllm",
        path=display,
        version=_version(split),
        config=config,
        config_line=config_line,
        commands=commands,
        prefixes=_prefixes(split),
        events=_events(split, display),
        hosts=_hosts(split),
    )


def _split_prefix(frame: pl.DataFrame) -> pl.DataFrame:
    """`line`, `text`, `proc`, `pid`, `ip`, `rest` (the text after any process prefix) and
    `key`, naming the process that wrote the line (`driver` for unprefixed lines)."""
    parts = frame.with_columns(pl.col("text").str.extract_groups(_PROC).alias("p")).unnest("p")
    return parts.with_columns(
        pl.col("pid").cast(pl.Int64),
        pl.coalesce("rest", "text").alias("rest"),
        pl.when(pl.col("pid").is_null())
        .then(pl.lit("driver"))
        .otherwise(pl.concat_str("pid", pl.col("ip").fill_null(""), separator="@"))
        .alias("key"),
    )


def _version(split: pl.DataFrame) -> str | None:
    found = split.select(
        pl.coalesce(
            pl.col("rest").str.extract(_VERSION, 1),
            pl.col("rest").str.extract(_VERSION, 2),
            pl.col("rest").str.extract(_VERSION, 3),
        ).drop_nulls()
    ).to_series()
    return found[-1] if len(found) else None


def _engine_config(split: pl.DataFrame, display: str) -> tuple[dict[str, Param], Evidence | None]:
    """Sizes from the last engine config line, plus the executor backend vLLM announced."""
    rows = split.filter(pl.col("rest").str.contains(_ENGINE_CONFIG))
    params: dict[str, Param] = {}
    evidence = None
    if rows.height:
        line, text = rows.select("line", "rest").row(-1)
        values = rows.tail(1).select(
            pl.col("rest").str.extract(pattern, 1).alias(name)
            for name, (pattern, _) in _CONFIG_FIELDS.items()
        )
        for name, raw in values.row(0, named=True).items():
            if raw is not None:
                kind = _CONFIG_FIELDS[name][1]
                value = raw == "True" if kind is bool else kind(raw)
                params[name] = Param(name, value, Source("file", display, line))
        evidence = Evidence(display, line, text.strip(), "engine_config")
    backend = split.select(
        "line",
        pl.coalesce(
            pl.col("rest").str.extract(_BACKEND, 1), pl.col("rest").str.extract(_BACKEND, 2)
        ).alias("backend"),
    ).drop_nulls("backend")
    if backend.height and evidence is not None:
        line, value = backend.row(-1)
        why = f"vLLM chose the {value} executor ({display}:{line})"
        name = "distributed_executor_backend"
        params[name] = Param(name, value, Source("engine rewrite", why=why))
    return params, evidence


def _commands(frame: pl.DataFrame, display: str) -> list[LaunchCommand]:
    """Launch commands, handing find_commands only the line blocks that can hold one."""
    text = pl.col("text")
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
    source = Source("file", command.file, line)
    params = {name: replace(param, source=source) for name, param in command.params.items()}
    return replace(command, params=params, line=line)


def _args_dumps(split: pl.DataFrame, display: str) -> list[LaunchCommand]:
    """`args: Namespace(…)` and `non-default args: {…}` lines, as the commands they record.

    `nnodes=1` is dropped: it is the default, and a Ray cluster or separately launched DP
    nodes span several nodes with it, so it says nothing about the node count.
    """
    rows = split.select(
        "line",
        "rest",
        pl.coalesce(
            pl.col("rest").str.extract(_ARGS, 1), pl.col("rest").str.extract(_ARGS, 2)
        ).alias("dump"),
    ).drop_nulls("dump")
    out = []
    for line, text, dump in rows.rows():
        try:
            values = parse_server_args(dump)
        except ValueError:
            continue
        source = Source("file", display, line)
        kept = {
            ("model_path" if k == "model" else k): v
            for k, v in values.items()
            if k in _ARG_FIELDS and (v is not None or k == "distributed_executor_backend")
        }
        if kept.get("nnodes") == 1:
            del kept["nnodes"]
        params = {k: Param(k, v, source) for k, v in kept.items() if v is not None}
        argv = [f"{k}={v!r}" for k, v in kept.items()]
        out.append(LaunchCommand(argv, {}, params, [], text.strip(), display, line, "vllm"))
    return out


def _prefixes(split: pl.DataFrame) -> pl.DataFrame:
    """One row per line that states a process's coordinates, with its global rank and host.

    Assignment and `world_size=… rank=…` lines give the rank directly; every other line of
    the same process (same prefix pid and ip) inherits it when the process stated exactly
    one rank. Worker names give coordinates but, under DP, not the global rank.
    """
    rest, proc = pl.col("rest"), pl.col("proc").fill_null("")
    assigned = rest.str.extract(_ASSIGNED, 1).cast(pl.Int64)
    rows = split.select(
        "line",
        "key",
        "pid",
        "ip",
        rest.alias("text"),
        pl.coalesce(assigned, rest.str.extract(_WORLD_LINE, 2).cast(pl.Int64)).alias("stated"),
        pl.coalesce(rest.str.extract(_ASSIGNED, 2), rest.str.extract(_WORLD_LINE, 1))
        .cast(pl.Int64)
        .alias("world_size"),
        *[
            pl.when(assigned.is_not_null())
            .then(rest.str.extract(pattern, 1))
            .otherwise(proc.str.extract(_NAME_TOKENS[name], 1) if name in _NAME_TOKENS else None)
            .replace("N/A", None)
            .cast(pl.Int64)
            .alias(name)
            for name, pattern in _ASSIGNED_FIELDS.items()
        ],
        proc.str.extract(_NAME_TOKENS["dcp"], 1).cast(pl.Int64).alias("dcp"),
        proc.str.extract(_WORKER_RANK, 1).cast(pl.Int64).alias("worker_rank"),
        proc.str.extract(_ENGINE_DP, 1).cast(pl.Int64).alias("engine_dp"),
    )
    ranks = (
        rows.drop_nulls("stated")
        .group_by("key")
        .agg(pl.col("stated").unique().alias("all"))
        .filter(pl.col("all").list.len() == 1)
        .select("key", pl.col("all").list.first().alias("rank"))
    )
    hosts = _process_hosts(split)
    coords = ["world_size", *_ASSIGNED_FIELDS, "dcp", "worker_rank", "engine_dp"]
    marked = rows.join(ranks, on="key", how="left").join(hosts, on="key", how="left")
    marked = marked.with_columns(
        pl.coalesce("stated", "rank").alias("rank"),
        pl.coalesce("nhost", "ip", pl.when(pl.col("ip").is_null()).then(_driver_host(hosts))).alias(
            "host"
        ),
    )
    keep = pl.col("rank").is_not_null() | pl.any_horizontal(pl.col(coords).is_not_null())
    return marked.filter(keep).select("line", "text", "rank", "host", *coords)


def _process_hosts(split: pl.DataFrame) -> pl.DataFrame:
    """key -> host name, from the NCCL lines each process printed."""
    found = split.select("key", pl.col("rest").str.extract(_NCCL_HOST, 1).alias("nhost"))
    found = found.drop_nulls("nhost").filter(_whole_host("nhost", found["nhost"]))
    return found.unique("key", keep="first", maintain_order=True)


def _whole_host(column: str, names: pl.Series) -> pl.Expr:
    """False for a name that is the tail of a longer one: Ray interleaves the output of
    processes, so `pseek-v2-5-0-1:627:627 [1] NCCL` is a cut `deepseek-v2-5-0-1` line."""
    unique = names.drop_nulls().unique().to_list()
    cut = [a for a in unique if any(b != a and b.endswith(a) for b in unique)]
    return ~pl.col(column).is_in(cut)


def _driver_host(hosts: pl.DataFrame) -> pl.Expr:
    """The host of unprefixed lines: Ray omits the ip for processes on the driver's node."""
    driver = hosts.filter(pl.col("key") == "driver")["nhost"]
    return pl.lit(driver[0] if len(driver) else None, dtype=pl.Utf8)


def _events(split: pl.DataFrame, display: str) -> list[Evidence]:
    kind = pl.lit(None, dtype=pl.Utf8)
    for name, pattern in reversed(_EVENT_KINDS):
        kind = pl.when(pl.col("rest").str.contains(pattern)).then(pl.lit(name)).otherwise(kind)
    hits = split.select("line", "text", kind.alias("kind")).filter(pl.col("kind").is_not_null())
    return [Evidence(display, line, text.strip(), name) for line, text, name in hits.rows()]


def _hosts(split: pl.DataFrame) -> pl.DataFrame:
    """Host names and addresses with the line that shows them, one row per sighting."""
    rest = pl.col("rest")
    nccl = split.select(
        "line",
        rest.str.extract(_NCCL_HOST, 1).alias("host"),
        rest.str.extract(_NCCL_OWN_IP, 1).alias("ip"),
        pl.lit("nccl").alias("kind"),
    )
    ray = split.select(
        "line", pl.lit(None, dtype=pl.Utf8).alias("host"), "ip", pl.lit("ray").alias("kind")
    )
    cut = ~_whole_host("host", nccl["host"])
    nccl = nccl.with_columns(
        pl.when(cut.fill_null(False)).then(None).otherwise("host").alias("host")
    )
    found = pl.concat([nccl, ray]).filter(pl.col("host").is_not_null() | pl.col("ip").is_not_null())
    return found.cast(HOSTS_SCHEMA).sort("line", maintain_order=True)
