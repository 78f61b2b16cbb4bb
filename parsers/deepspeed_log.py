"""Facts from one DeepSpeed log, console paste or ds_config JSON file.

The DeepSpeed launcher and engine print what the layout needs: the runner's
`cmd = … deepspeed.launcher.launch --world_info=…` line, launch.py's `WORLD INFO DICT:
{host: [slots]}`, `nnodes=…, num_local_procs=…, node_rank=…` and `dist_world_size=…`,
the engine's configuration dump (`[config.py:NNN:print]   world_size ......... 16`, where
world_size is the data-parallel size) and the user's JSON after `json = {`, MoE lines
(`Creating expert and data parallel groups with size 4`, `Creating MoE layer with
num_experts: 8 | … | expert_parallel_size: 4`, and every expert group's ranks) and the
pipeline's `Using topology: {ProcessCoord(pipe=0, data=0): 0, …}`. A ds_config JSON file on
its own gives the batch sizes, ZeRO stage and parallel sizes. Each fact keeps its line.

Every per-line test is a polars string expression; Python loops only over matched rows
(and over the lines of the few multi-line JSON blocks).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import polars as pl

from diagnose.engines.base import EngineLog
from diagnose.model import Evidence, Param, Source
from parsers import sglang_log
from parsers.deepspeed_cmd import (
    DS_CONFIG_KEYS,
    TRIGGER,
    config_params,
    parse_command,
    read_ds_config,
)
from parsers.hosts import host_sightings
from parsers.launch_cmd import PROMPT, LaunchCommand, LaunchError
from parsers.lines import read_lines, starts_like_json

_VERSION = r"DeepSpeed info: version=([^,\s]+)"
_WORLD_INFO = r"WORLD INFO DICT: (\{.*\})"
_LAUNCH = r"nnodes=(?P<nnodes>\d+), num_local_procs=(?P<procs>\d+), node_rank=(?P<node>\d+)"
_DIST_WORLD = r"\bdist_world_size=(\d+)"
_RUNNER_CMD = r"\bcmd = (.*deepspeed\.launcher\.launch.*)$"
_DUMP = r"\[config\.py:\d+:print\]\s{2,}(?P<key>\w+)\s+(?:\.+\s+)?(?P<value>\S.*?)\s*$"
_USER_JSON = r"\[config\.py:\d+:print_user_config\]\s+json = \{\s*$"
_EP_GROUPS = r"Creating expert and data parallel groups with size (\d+)"
_MOE_LAYER = (
    r"Creating MoE layer with num_experts: (\d+) \| num_local_experts: \d+ "
    r"\| expert_parallel_size: (\d+)"
)
_EXPERT_GROUP = (
    r"(?i)creating expert (data )?parallel process group named ep_size_(\d+) "
    r"with ranks: (\[[\d, ]*\])"
)
_MPU_GROUPS = (
    r"Creating deepspeed groups with model parallel size (\d+), pipeline parallel size (\d+), "
    r"expert parallel size (\d+), world size (\d+), dp world size (\d+)"
)
_TOPOLOGY = r"Using topology: \{(.*)\}"
_RANK_PREFIX = r"^\[rank(\d+)\]:|\[Rank (\d+)\]"
_HOST_IP = r"Using IP address of ([\d.]+) for node ([\w.\-]+)"
# Engine dump key -> parameter (the dump holds DeepSpeed's resolved values).
DUMP_KEYS: dict[str, str] = {
    "world_size": "world_size",
    "train_batch_size": "train_batch_size",
    "train_micro_batch_size_per_gpu": "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "zero_optimization_stage": "zero_stage",
    "use_data_before_expert_parallel_": "use_data_before_expert_parallel_",
}
_SNIFF = re.compile(
    r"WORLD INFO DICT|deepspeed\.launcher\.(?:launch|runner)|DeepSpeed info: version="
    r"|DeepSpeedEngine configuration|ds_accelerator|\bdeepspeed\s+(?:--\w+|\S+\.py)"
    r"|--deepspeed_config|\[(?:launch|logging|config|runner)\.py:\d+:\w+\]|dist_world_size="
)


def sniff_deepspeed(head: str) -> bool:
    """DeepSpeed launcher/engine output, a DeepSpeed launch, or a ds_config JSON."""
    if head.lstrip().startswith("{"):
        return DS_CONFIG_KEYS.search(head) is not None
    return _SNIFF.search(head) is not None


def parse_deepspeed_log(path: Path, display: str, frame: pl.DataFrame | None = None) -> EngineLog:
    """Parse `path`; `display` is the name every Source and Evidence will carry.

    `frame` is the file as parsers.lines.read_lines gives it, when the caller read it
    already for other parsers.
    """
    body = read_lines(path) if frame is None else frame
    if starts_like_json(body):
        return _json_file(path, display)
    config, config_line = _config(body, display)
    commands = _commands(body, display, path.parent)
    return EngineLog(
        engine="deepspeed",
        path=display,
        version=_last(body, _VERSION),
        config=config,
        config_line=config_line,
        commands=commands,
        prefixes=_prefixes(body),
        events=_events(body, display),
        hosts=_hosts(body),
    )


def _json_file(path: Path, display: str) -> EngineLog:
    config = read_ds_config(path, display)
    first = min((p.source.line or 1 for p in config.values()), default=1)
    summary = ", ".join(f"{k}={p.value}" for k, p in config.items())
    return EngineLog(
        engine="deepspeed",
        path=display,
        version=None,
        config=config,
        config_line=Evidence(display, first, summary[:200], "ds_config"),
        commands=[],
        prefixes=pl.DataFrame(schema={"line": pl.Int64, "text": pl.Utf8}),
        events=[],
        hosts=pl.DataFrame(
            schema={"line": pl.Int64, "host": pl.Utf8, "ip": pl.Utf8, "kind": pl.Utf8}
        ),
    )


def _last(body: pl.DataFrame, pattern: str) -> str | None:
    found = body.select(pl.col("text").str.extract(pattern, 1).drop_nulls()).to_series()
    return found[-1] if len(found) else None


def _matches(body: pl.DataFrame, pattern: str) -> pl.DataFrame:
    """line, text and the pattern's groups (as columns g1, g2, …) of every matching line."""
    n = re.compile(pattern).groups
    groups = [pl.col("text").str.extract(pattern, i + 1).alias(f"g{i + 1}") for i in range(n)]
    return body.filter(pl.col("text").str.contains(pattern)).select("line", "text", *groups)


def _config(body: pl.DataFrame, display: str) -> tuple[dict[str, Param], Evidence | None]:
    """Launcher sizes, MoE and pipeline sizes, then the engine dump (which wins)."""
    out: dict[str, Param] = {}
    evidence = None

    def put(name: str, value: object, line: int) -> None:
        out[name] = Param(name, value, Source("file", display, line))

    for line, _, info in _matches(body, _WORLD_INFO).rows():
        try:
            put("world_info", ast.literal_eval(info), line)
        except (ValueError, SyntaxError):
            continue
    for line, _, nnodes, procs, node in _matches(body, _LAUNCH).rows():
        put("nnodes", int(nnodes), line)
        put("num_local_procs", int(procs), line)
        put("node_rank", int(node), line)
    for line, _, size in _matches(body, _DIST_WORLD).rows():
        put("dist_world_size", int(size), line)
    for line, _, size in _matches(body, _EP_GROUPS).rows():
        put("ep_size", int(size), line)
    for line, _, experts, size in _matches(body, _MOE_LAYER).rows():
        put("num_experts", int(experts), line)
        put("ep_size", int(size), line)
    for line, _, _mp, pp, ep, world, _dp in _matches(body, _MPU_GROUPS).rows():
        put("pp_size", int(pp), line)
        put("ep_size", int(ep), line)
        put("dist_world_size", int(world), line)
    for line, _, coords in _matches(body, _TOPOLOGY).rows():
        stages = [int(x) for x in re.findall(r"pipe=(\d+)", coords)]
        if stages:
            put("pp_size", max(stages) + 1, line)
    out.update(_user_json(body, display))
    for line, text, key, value in _matches(body, _DUMP).rows():
        if key == "zero_config":
            for field in ("zero_hpz_partition_size", "mics_shard_size"):
                m = re.search(rf"\b{field}=(-?\d+)", value)
                if m:
                    put(field, int(m.group(1)), line)
        if key not in DUMP_KEYS:
            continue
        put(DUMP_KEYS[key], _scalar(value), line)
        evidence = Evidence(display, line, text.strip(), "ds_config_dump")
    if evidence is None and out:
        evidence = _line_evidence(body, display, max(p.source.line or 0 for p in out.values()))
    return out, evidence


def _line_evidence(body: pl.DataFrame, display: str, line: int) -> Evidence:
    """The input line that stands for a configuration assembled from several lines."""
    text = body.filter(pl.col("line") == line)["text"]
    return Evidence(display, line, text[0].strip() if len(text) else "", "ds_config")


def _scalar(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _user_json(body: pl.DataFrame, display: str) -> dict[str, Param]:
    """The `json = {` blocks the engine prints: its lines up to the first `}` alone."""
    starts = body.filter(pl.col("text").str.contains(_USER_JSON))["line"].to_list()
    out: dict[str, Param] = {}
    if not starts:
        return out
    closers = body.filter(pl.col("text") == "}")["line"].to_list()
    texts = dict(body.select("line", "text").iter_rows())
    for start in starts:
        end = next((c for c in closers if c > start), None)
        if end is None:
            continue
        block = ["{"] + [texts.get(n, "") for n in range(start + 1, end + 1)]
        try:
            doc = json.loads("\n".join(block))
        except json.JSONDecodeError:
            continue
        for name, param in config_params(doc, block, display).items():
            line = param.source.line
            out[name] = Param(
                name, param.value, Source("file", display, start + line - 1 if line else start)
            )
    return out


def _prefixes(body: pl.DataFrame) -> pl.DataFrame:
    """Lines that name their global rank: torch's `[rankN]:` and log_dist's `[Rank N]`."""
    rank = pl.coalesce(
        pl.col("text").str.extract(_RANK_PREFIX, 1), pl.col("text").str.extract(_RANK_PREFIX, 2)
    ).cast(pl.Int64)
    return (
        body.select("line", rank.alias("rank"), pl.col("text").str.strip_chars())
        .filter(pl.col("rank").is_not_null())
        .select("line", "text", "rank")
    )


def _events(body: pl.DataFrame, display: str) -> list[Evidence]:
    groups = _matches(body, _EXPERT_GROUP)
    own = [
        Evidence(display, line, text.strip(), "ds_expert_group") for line, text, *_ in groups.rows()
    ]
    return sorted(own + sglang_log.log_events(body, display), key=lambda e: e.line or 0)


def _hosts(body: pl.DataFrame) -> pl.DataFrame:
    """NCCL and prompt hosts (as for SGLang) plus the runner's `Using IP address of …`."""
    empty = pl.DataFrame(schema={"line": pl.Int64, "address": pl.Utf8, "kind": pl.Utf8})
    launcher = _matches(body, _HOST_IP).select(
        "line",
        pl.col("g2").alias("host"),
        pl.col("g1").alias("ip"),
        pl.lit("launcher").alias("kind"),
    )
    return pl.concat([host_sightings(body, empty), launcher]).sort("line", maintain_order=True)


def _commands(body: pl.DataFrame, display: str, base_dir: Path) -> list[LaunchCommand]:
    """The runner's `cmd = …` line and pasted `deepspeed …` commands (with continuations)."""
    text = pl.col("text")
    runner = text.str.extract(_RUNNER_CMD, 1)
    blocks = body.select(
        "line",
        pl.coalesce(runner, text).alias("text"),
        (~text.str.ends_with("\\").shift(1, fill_value=False)).cum_sum().alias("block"),
        (runner.is_not_null() | text.str.contains(TRIGGER)).alias("trigger"),
    )
    wanted = blocks.filter(pl.col("trigger"))["block"].unique()
    out = []
    for group in blocks.filter(pl.col("block").is_in(wanted.implode())).partition_by(
        "block", maintain_order=True
    ):
        joined = " ".join(t.rstrip("\\").strip() for t in group["text"].to_list())
        try:
            out.append(
                parse_command(
                    PROMPT.sub("", joined, count=1),
                    file=display,
                    line=int(group["line"][0]),
                    base_dir=base_dir,
                )
            )
        except (LaunchError, ValueError):
            continue
    return out
