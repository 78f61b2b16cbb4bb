"""Facts from one Megatron training log (rank 0's stdout, or a torchrun --tee capture).

Megatron never prints its groups, but rank 0 prints enough to rebuild them: the argument
dump (`------------------------ arguments ------------------------` … `end of arguments`,
one `  name ..... value` line per argument, values after arguments.py's rewrites), the
`using world size: …, data-parallel size: …` summary, `> initialized tensor model
parallel with size N`, and its assertion messages when a layout is refused. torch adds
`[rankN]:` in front of the lines of a failing rank. This module collects those facts
with their line numbers; deciding what they mean is the engine's job.

Every per-line test is a polars expression over a frame of all lines; Python loops only
over the rows that matched (the ~500 dump lines at most).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import polars as pl

from diagnose.engines.base import EngineLog
from diagnose.engines.megatron import DEFAULTS
from diagnose.model import Evidence, Param, Source
from parsers.hosts import host_sightings
from parsers.launch_cmd import LaunchCommand
from parsers.lines import read_lines
from parsers.megatron_cmd import TRIGGER, find_commands

SNIFF_BYTES = 64 * 1024
_DUMP_START = r"^-{8,} arguments -{8,}\s*$"
_DUMP_END = r"^-{8,} end of arguments -{8,}\s*$"
_DUMP_LINE = r"^  (?P<name>[A-Za-z_]\w*) \.* ?(?P<value>.*)$"
# `using world size: …` fields (0.12 lost a comma before `tensor-model-parallel size`).
_SUMMARY = {
    "world_size": r"using world size: (\d+)",
    "data_parallel_size": r"data-parallel[- ]size: (\d+)",
    "context_parallel_size": r"(?:^|[ ,])context-parallel size: (\d+)",
    "tensor_model_parallel_size": r"(?:^|[ ,:a-z])tensor-model-parallel size: (\d+)",
    "pipeline_model_parallel_size": r"(?:^|[ ,])pipeline-model-parallel size: (\d+)",
}
_INITIALIZED = (
    r"> initiali[sz](?:ed|ing) (?P<what>tensor model|pipeline model|data) parallel "
    r"with size (?P<size>\d+)"
)
_INITIALIZED_FIELDS = {
    "tensor model": "tensor_model_parallel_size",
    "pipeline model": "pipeline_model_parallel_size",
    "data": "data_parallel_size",
}
_VPP = r"Number of virtual stages per pipeline stage: (\d+|None)"
_VERSION = (
    r"(?i)(?:megatron[-_ ]core(?:[-_ ]?version)?[\s=:v-]*|core_[vr])"
    r"(\d+\.\d+\.\d+(?:rc\d+)?)"
)
_RANK_PREFIX = r"^\[rank(?P<rank>\d+)\]:\s?(?P<message>.*)$"
# Dump names that hold the same value under an older or newer name.
_RENAMED = {"enable_gloo_process_groups": "use_gloo_process_groups"}
KEPT = frozenset(DEFAULTS) | {"data_parallel_size", "rank", "moe_ffn_hidden_size", "cp_comm_type"}
# First match wins, so the specific kinds come before the catch-all exception test.
_EVENT_KINDS: tuple[tuple[str, str], ...] = (
    ("megatron_init", r"> initializing torch distributed|> initialized \w+ model parallel"),
    ("nccl_version", r"NCCL version \d+\.\d+\.\d+"),
    ("nccl_warn", r"NCCL WARN"),
    (
        "exception",
        r"Traceback \(most recent call last\)"
        r"|^\s*(?:\[rank\d+\]:\s*)?(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception)|Exception)"
        r"(?::\s|:?\s*$)",
    ),
)
_DEEPSPEED = re.compile(r"--deepspeed|deepspeed_config")
_SNIFF = re.compile(
    rf"{_DUMP_START}|using world size: \d+, data-parallel|> initialized tensor model parallel"
    r"|\bpretrain_\w+\.py\b|megatron[./]core|megatron[./]training|--tensor-model-parallel-size",
    re.M,
)


def sniff_megatron(head: str) -> bool:
    """True when the start of a file looks like Megatron output or a Megatron launch.

    Megatron-DeepSpeed logs look the same but run DeepSpeed's engine; they are left to the
    DeepSpeed parser.
    """
    head = head[:SNIFF_BYTES]
    return _SNIFF.search(head) is not None and _DEEPSPEED.search(head) is None


def parse_megatron_log(path: Path, display: str, frame: pl.DataFrame | None = None) -> EngineLog:
    """Parse `path`; `display` is the name every Source and Evidence will carry.

    `frame` is the file as parsers.lines.read_lines gives it, when the caller read it
    already for other parsers.

    Raises OSError when the file cannot be read; undecodable bytes are replaced.
    """
    frame = read_lines(path) if frame is None else frame
    body = frame.with_columns(pl.col("text").str.replace(r"^\[rank\d+\]:\s?", "").alias("text"))
    commands = _commands(body, display)
    config, config_line = _config(body, display)
    return EngineLog(
        engine="megatron",
        path=display,
        version=_version(body),
        config=config,
        config_line=config_line,
        commands=commands,
        prefixes=_prefixes(frame),
        events=_events(frame, display),
        hosts=host_sightings(body, _configured(commands)),
    )


def _commands(body: pl.DataFrame, display: str) -> list[LaunchCommand]:
    """Launch commands, looking only at the backslash-continued blocks with a trigger line."""
    text = pl.col("text")
    blocks = body.select(
        "line",
        "text",
        (~text.str.ends_with("\\").shift(1, fill_value=False)).cum_sum().alias("block"),
        text.str.contains(TRIGGER).alias("trigger"),
    )
    wanted = blocks.filter(pl.col("trigger"))["block"].unique()
    candidates = blocks.filter(pl.col("block").is_in(wanted.implode()))
    return find_commands(candidates["text"].to_list(), display, candidates["line"].to_list())


def _config(body: pl.DataFrame, display: str) -> tuple[dict[str, Param], Evidence | None]:
    """Sizes from the summary lines, then the last argument dump (which wins)."""
    config: dict[str, Param] = {}
    evidence: Evidence | None = None
    for line, text, name, value in _summary_rows(body):
        config[name] = Param(name, value, Source("file", display, line))
        evidence = evidence or Evidence(display, line, text.strip(), "megatron_summary")
    dump = _dump_rows(body)
    if dump.is_empty():
        return config, evidence
    for line, name, raw in dump.select("line", "name", "value").iter_rows():
        name = _RENAMED.get(name, name)
        if name in KEPT:
            config[name] = Param(name, _value(raw), Source("file", display, line))
    first = dump["line"].min()
    start = body.filter(pl.col("line") < first).tail(1)
    head_line = int(start["line"][0]) if start.height else int(first)  # type: ignore[arg-type]
    head_text = start["text"][0] if start.height else "arguments"
    return config, Evidence(display, head_line, head_text.strip(), "megatron_arguments")


def _summary_rows(body: pl.DataFrame) -> list[tuple[int, str, str, Any]]:
    text = pl.col("text")
    summary = body.filter(text.str.contains("using world size: ", literal=True)).select(
        "line", "text", *[text.str.extract(p, 1).alias(n) for n, p in _SUMMARY.items()]
    )
    inits = (
        body.select("line", "text", text.str.extract_groups(_INITIALIZED).alias("g"))
        .unnest("g")
        .filter(pl.col("size").is_not_null())
    )
    vpp = body.select("line", "text", text.str.extract(_VPP, 1).alias("vpp")).filter(
        pl.col("vpp").is_not_null()
    )
    rows: list[tuple[int, str, str, Any]] = []
    for row in inits.iter_rows(named=True):
        field = _INITIALIZED_FIELDS[row["what"]]
        rows.append((row["line"], row["text"], field, int(row["size"])))
    for row in summary.iter_rows(named=True):
        rows += [(row["line"], row["text"], n, int(row[n])) for n in _SUMMARY if row[n]]
    for line, text, raw in vpp.iter_rows():
        value = None if raw == "None" else int(raw)
        rows.append((line, text, "virtual_pipeline_model_parallel_size", value))
    return sorted(rows, key=lambda r: r[0])


def _dump_rows(body: pl.DataFrame) -> pl.DataFrame:
    """The `name ..... value` lines of the last complete argument dump."""
    text = pl.col("text")
    marked = body.select(
        "line",
        "text",
        text.str.contains(_DUMP_START).cum_sum().alias("dump"),
        text.str.contains(_DUMP_END).cum_sum().alias("ended"),
    )
    starts = marked.filter(text.str.contains(_DUMP_START))
    if starts.is_empty():
        return pl.DataFrame(schema={"line": pl.Int64, "name": pl.Utf8, "value": pl.Utf8})
    last = starts["dump"].max()
    inside = marked.filter(
        (pl.col("dump") == last) & (pl.col("ended") < last) & ~text.str.contains(_DUMP_START)
    )
    return (
        inside.select("line", text.str.extract_groups(_DUMP_LINE).alias("g"))
        .unnest("g")
        .filter(pl.col("name").is_not_null())
    )


def _value(raw: str) -> Any:
    """A dumped Python value: ints, floats, bools, None and lists as Python reads them."""
    raw = raw.strip()
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _version(body: pl.DataFrame) -> str | None:
    found = body.select(pl.col("text").str.extract(_VERSION, 1).drop_nulls())["text"]
    return found[-1] if len(found) else None


def _prefixes(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per `[rankN]:` line: torch names the global rank of a failing process."""
    parts = frame.select("line", pl.col("text").str.extract_groups(_RANK_PREFIX).alias("p"))
    parts = parts.unnest("p").filter(pl.col("rank").is_not_null())
    return parts.select(
        "line", pl.col("rank").cast(pl.Int64), pl.col("message").str.strip_chars().alias("text")
    )


def _events(frame: pl.DataFrame, display: str) -> list[Evidence]:
    kind = pl.lit(None, dtype=pl.Utf8)
    for name, pattern in reversed(_EVENT_KINDS):
        kind = pl.when(pl.col("text").str.contains(pattern)).then(pl.lit(name)).otherwise(kind)
    hits = frame.select("line", "text", kind.alias("kind")).filter(pl.col("kind").is_not_null())
    return [Evidence(display, line, text.strip(), name) for line, text, name in hits.rows()]


def _configured(commands: list[LaunchCommand]) -> pl.DataFrame:
    """torchrun's --master-addr (rank 0's node) of each command, as a host sighting."""
    rows = [
        (command.line, re.sub(r":\d+$", "", str(param.value)), "master_addr")
        for command in commands
        for field in ("master_addr", "rdzv_endpoint")
        if (param := command.params.get(field)) is not None
    ]
    return pl.DataFrame(
        rows, schema={"line": pl.Int64, "address": pl.Utf8, "kind": pl.Utf8}, orient="row"
    )
