"""Facts from one TensorRT-LLM log, console paste or engine config.json.

TensorRT-LLM prints no group lists, but its startup says enough: the C++ runtime's
`MPI size: N, rank: r` (newer: `MPI size: N, MPI local size: L, rank: r`) and
`Rank r is using GPU g`, the Python logger's `[TRT-LLM] [RANK r]` prefix, dumps of the
mapping or the LLM arguments (`tp_size=8`, `'moe_ep_size': 4`, `tensor_parallel_size=8`),
the `mpiSize == tp * pp` check that fails when mpirun starts the wrong number of ranks,
and the launch commands users paste. An engine's or checkpoint's config.json carries a
`"mapping"` object with the same fields. Each fact keeps its line; what it means is the
engine's job.

Every per-line test is a polars string expression; Python loops only over matched rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from diagnose.engines.base import EngineLog
from diagnose.model import Evidence, Param, Source
from parsers import sglang_log
from parsers.hosts import host_sightings
from parsers.launch_cmd import PROMPT, LaunchCommand, LaunchError
from parsers.lines import read_lines, starts_like_json
from parsers.trtllm_cmd import LLM_ARGS, TRIGGER, parse_command, yaml_scalar

_VERSION = r"(?i)TensorRT-LLM version:\s*v?(\d+\.\d+\.\d+\S*)|tensorrt[_-]llm==(\d+\.\d+\.\d+\S*)"
_MPI_SIZE = r"MPI size: (?P<mpi_size>\d+)(?:, MPI local size: (?P<local>\d+))?, rank: (?P<rank>\d+)"
_USING_GPU = r"\bRank (?P<rank>\d+) is using GPU (?P<gpu>\d+)"
_PY_RANK = r"\[TRT-LLM\]\s*\[RANK (?P<rank>\d+)\]"
# Mapping / LLM-argument fields as written by a dataclass repr, a dict or JSON.
_MAPPING_FIELDS = (
    "tp_size",
    "pp_size",
    "cp_size",
    "moe_tp_size",
    "moe_ep_size",
    "moe_cluster_size",
    "attn_tp_size",
    "attn_cp_size",
    "gpus_per_node",
    "enable_attention_dp",
    "enable_lm_head_tp_in_adp",
)
_FIELD_NAMES = "|".join((*_MAPPING_FIELDS, *(k for k in LLM_ARGS if k not in _MAPPING_FIELDS)))
_FIELD = rf"""['"]?\b({_FIELD_NAMES})['"]?\s*[=:]\s*['"]?(\[[^\]]*\]|[\w.\-]+)"""
_DUMP_LINE = r"Mapping\(|LlmArgs\(|['\"]mapping['\"]\s*:|\bmapping=|MpiTopology\("
_TRT_EVENTS: tuple[tuple[str, str], ...] = (
    ("mpi_size_check", r"mpiSize == tp \* pp|MPI size \d+ != TP size"),
    ("exception", r"\[TensorRT-LLM\]\[ERROR\]|Assertion failed:"),
)
_SNIFF = re.compile(
    r"\[TensorRT-LLM\]|\[TRT-LLM\]|\btrtllm-serve\b|\btrtllm-build\b|trtllm-llmapi-launch"
    r"|tensorrt_llm\.commands\.serve|TensorRT-LLM version:"
)
_ENGINE_JSON = re.compile(r'"mapping"\s*:\s*\{[^{}]*"tp_size"')


def sniff_trtllm(head: str) -> bool:
    """True for TensorRT-LLM output, a TensorRT-LLM launch, or an engine config.json."""
    return _SNIFF.search(head) is not None or _ENGINE_JSON.search(head) is not None


def parse_trtllm_log(path: Path, display: str, frame: pl.DataFrame | None = None) -> EngineLog:
    """Parse `path`; `display` is the name every Source and Evidence will carry.

    `frame` is the file as parsers.lines.read_lines gives it, when the caller read it
    already for other parsers.
    """
    body = read_lines(path) if frame is None else frame
    if starts_like_json(body):
        text = path.read_bytes().decode("utf-8", errors="replace")
        if _ENGINE_JSON.search(text):
            return _engine_json(text, display)
    config, config_line = _config(body, display)
    commands = _commands(body, display, path.parent)
    empty = pl.DataFrame(schema={"line": pl.Int64, "address": pl.Utf8, "kind": pl.Utf8})
    return EngineLog(
        engine="trtllm",
        path=display,
        version=_version(body),
        config=config,
        config_line=config_line,
        commands=commands,
        prefixes=_prefixes(body),
        events=_events(body, display),
        hosts=host_sightings(body, empty),
    )


def _version(body: pl.DataFrame) -> str | None:
    found = body.select(
        pl.coalesce(
            pl.col("text").str.extract(_VERSION, 1), pl.col("text").str.extract(_VERSION, 2)
        ).drop_nulls()
    ).to_series()
    return found[-1] if len(found) else None


def _config(body: pl.DataFrame, display: str) -> tuple[dict[str, Param], Evidence | None]:
    """The last mapping/argument dump's fields, then the MPI size the runtime reports."""
    out: dict[str, Param] = {}
    config_line = None
    dumps = body.filter(pl.col("text").str.contains(_DUMP_LINE)).select(
        "line", "text", pl.col("text").str.extract_all(_FIELD).alias("fields")
    )
    for line, text, fields in dumps.rows():
        source = Source("file", display, line)
        for item in fields or []:
            m = re.match(_FIELD, item)
            if m is None:
                continue
            name = LLM_ARGS.get(m.group(1), m.group(1))
            out[name] = Param(name, yaml_scalar(m.group(2)), source)
        config_line = Evidence(display, line, text.strip(), "mapping")
    sizes = body.select("line", pl.col("text").str.extract_groups(_MPI_SIZE).alias("m")).unnest("m")
    sizes = sizes.filter(pl.col("mpi_size").is_not_null())
    if sizes.height:
        line, size, local = sizes.select("line", "mpi_size", "local").row(-1)
        out["mpi_size"] = Param("mpi_size", int(size), Source("file", display, line))
        if local is not None:
            src = Source("file", display, line)
            out["mpi_ranks_per_node"] = Param("mpi_ranks_per_node", int(local), src)
        if config_line is None:
            config_line = Evidence(display, line, _text_at(body, line), "mpi_size")
    return out, config_line


def _text_at(body: pl.DataFrame, line: int) -> str:
    found = body.filter(pl.col("line") == line)["text"]
    return found[0].strip() if len(found) else ""


def _engine_json(text: str, display: str) -> EngineLog:
    """An engine/checkpoint config.json: its "mapping" object is the configuration."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{display}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    mapping = doc.get("mapping") or doc.get("pretrained_config", {}).get("mapping") or {}
    lines = text.split("\n")
    out: dict[str, Param] = {}
    for key, value in mapping.items():
        if key in _MAPPING_FIELDS:
            at = next((i for i, t in enumerate(lines, 1) if f'"{key}"' in t), None)
            out[key] = Param(key, value, Source("file", display, at))
    if "world_size" in mapping:
        out["mpi_size"] = Param("mpi_size", mapping["world_size"], Source("file", display))
    first = next((i for i, t in enumerate(lines, 1) if '"mapping"' in t), 1)
    evidence = Evidence(display, first, json.dumps(mapping)[:200], "mapping")
    empty_hosts = pl.DataFrame(
        schema={"line": pl.Int64, "host": pl.Utf8, "ip": pl.Utf8, "kind": pl.Utf8}
    )
    return EngineLog(
        engine="trtllm",
        path=display,
        version=doc.get("version"),
        config=out,
        config_line=evidence,
        commands=[],
        prefixes=pl.DataFrame(schema={"line": pl.Int64, "text": pl.Utf8}),
        events=[],
        hosts=empty_hosts,
    )


def _prefixes(body: pl.DataFrame) -> pl.DataFrame:
    """One row per line that names its global rank: MPI size, GPU choice, Python logger."""
    text = pl.col("text")
    rank = pl.coalesce(
        text.str.extract(_MPI_SIZE, 3),
        text.str.extract(_USING_GPU, 1),
        text.str.extract(_PY_RANK, 1),
    ).cast(pl.Int64)
    return (
        body.select("line", rank.alias("rank"), text.str.extract(_USING_GPU, 2).alias("gpu"), text)
        .filter(pl.col("rank").is_not_null())
        .with_columns(pl.col("gpu").cast(pl.Int64), pl.col("text").str.strip_chars())
    )


def _events(body: pl.DataFrame, display: str) -> list[Evidence]:
    kind = pl.lit(None, dtype=pl.Utf8)
    for name, pattern in reversed(_TRT_EVENTS):
        kind = pl.when(pl.col("text").str.contains(pattern)).then(pl.lit(name)).otherwise(kind)
    hits = body.select("line", "text", kind.alias("kind")).filter(pl.col("kind").is_not_null())
    own = [Evidence(display, line, text.strip(), name) for line, text, name in hits.rows()]
    seen = {e.line for e in own}
    generic = [e for e in sglang_log.log_events(body, display) if e.line not in seen]
    return sorted(own + generic, key=lambda e: e.line or 0)


def _commands(body: pl.DataFrame, display: str, base_dir: Path) -> list[LaunchCommand]:
    """Launch commands on trigger lines, with their backslash-continued neighbours."""
    text = pl.col("text")
    blocks = body.select(
        "line",
        "text",
        (~text.str.ends_with("\\").shift(1, fill_value=False)).cum_sum().alias("block"),
        text.str.contains(TRIGGER).alias("trigger"),
    )
    wanted = blocks.filter(pl.col("trigger"))["block"].unique()
    out = []
    for group in blocks.filter(pl.col("block").is_in(wanted.implode())).partition_by(
        "block", maintain_order=True
    ):
        first = int(group["line"][0])
        joined = " ".join(t.rstrip("\\").strip() for t in group["text"].to_list())
        try:
            command = parse_command(
                PROMPT.sub("", joined, count=1), file=display, line=first, base_dir=base_dir
            )
        except LaunchError:
            continue
        out.append(command)
    return out
