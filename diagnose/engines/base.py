"""What every engine module provides, so the pipeline and the cross-engine rules need not
know which engine they are looking at.

An engine module turns parameters into a Layout its own way; the rest of rankmap asks it
only the questions below: how to resolve, lay out, explain and print a configuration, and
the few sizes that cross-engine rules (TP across nodes, heads, experts, layers) need.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from diagnose.model import Evidence, Group, Layout, Param, Placement, Source, SourceKind


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """`0.5.8.post1` → (0, 5, 8): releases compare as tuples against layout boundaries."""
    if not text:
        return None
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", str(text).strip())
    return tuple(int(x) for x in m.groups(default="0")) if m else None


@dataclass(frozen=True)
class Derived:
    """A size the engine computes from the parameters, with the arithmetic spelled out."""

    name: str
    value: int
    formula: str


@dataclass(frozen=True)
class Shape:
    """The engine-neutral sizes cross-engine rules read.

    `params` maps a role ("tp", "ep", …) to the engine's parameter names, so findings cite
    the lines that set them; `hints` holds a rule's fix in the engine's own flags.
    """

    tp: int
    pp: int
    nnodes: int
    gpus_used_per_node: int
    attention_width: int
    attention_width_name: str
    ep: int
    moe_tp: int
    ep_kind: str | None
    a2a_backend: str | None
    allreduce_kinds: tuple[str, ...]
    layer_split: Callable[[int, int], list[int]]
    replicas: int = 1
    pp_kind: str = "pp"
    training: bool = False  # training engines: no KV cache, costs per step not per token
    uneven_experts: bool = False  # the engine gives remainder experts to the first ranks
    per_node_formula: str = ""
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)

    def fix(self, rule_id: str, default: str) -> str:
        """The engine's own wording of a rule's fix (its flags), else the rule's."""
        return self.hints.get(rule_id, default)


class Values:
    """What every engine's resolved configuration shares: its parameters by name (or by one
    of the engine's ALIASES), each with where it came from, and the rewrites the engine's
    own code made to them, recorded as that code would make them."""

    ALIASES: ClassVar[dict[str, str]] = {}
    params: dict[str, Param]
    rewrites: list[str]

    def __getitem__(self, name: str) -> Any:
        return self.params[self.ALIASES.get(name, name)].value

    def src(self, name: str) -> str:
        return str(self.params[self.ALIASES.get(name, name)].source)

    def rewrite(self, name: str, value: Any, why: str, kind: SourceKind = "engine rewrite") -> None:
        """Set `name` as the engine's code would set it, `why` saying which rule did; only
        an engine rewrite is listed among the rewrites."""
        if self[name] == value:
            return
        self.params[name] = Param(name, value, Source(kind, why=why))
        if kind == "engine rewrite":
            self.rewrites.append(f"{name} = {value!r}: {why}")


class EngineConfig(Protocol):
    """A resolved configuration: parameters with provenance plus the engine's arithmetic."""

    engine: str
    params: dict[str, Param]
    version: str | None
    layout_version: str
    rewrites: list[str]

    def __getitem__(self, name: str) -> Any: ...

    def src(self, name: str) -> str: ...

    def derived(self) -> list[Derived]: ...

    def shape(self, model: Any) -> Shape: ...

    @property
    def world_size(self) -> int: ...

    @property
    def replicas(self) -> int: ...


@dataclass
class EngineLog:
    """What every engine's log parser returns; the assembly step reads only these fields.

    `config` is the engine's own dump of its configuration (SGLang's `server_args=`, vLLM's
    engine config line, Megatron's argument dump) as Params with file:line sources.
    `prefixes` has one row per line that states a rank's coordinates: columns `line`,
    `text`, optionally `ts`, `rank` (global rank) and `host`, and any coordinate columns
    (`tp`, `pp`, `dp`, …) the engine prints. `hosts` has columns line, host, ip, kind.
    NCCL's own lines are not an engine's to read: parsers.nccl_log reads them in every file.
    """

    engine: str
    path: str
    version: str | None
    config: dict[str, Param]
    config_line: Evidence | None
    commands: list[Any]  # LaunchCommand
    prefixes: pl.DataFrame
    events: list[Evidence]
    hosts: pl.DataFrame


@dataclass(frozen=True)
class Engine:
    """One engine's entry points, registered in diagnose.engines.registry."""

    name: str
    title: str
    resolve: Callable[[dict[str, Param], str | None, Any], EngineConfig]
    layout: Callable[[Any, dict[int, str]], Layout]
    placement: Callable[[Any], list[Placement]]
    annotate: Callable[[Any, list[Group]], None]
    coordinates: Callable[[Any, int, int], list[str]]
    key_params: Sequence[str]
    layout_errors: tuple[type[Exception], ...]
    sniff: Callable[[str], bool]
    parse_log: Callable[[Path, str, pl.DataFrame | None], Any]  # path, display, lines read
    parse_command: Callable[..., Any]
    priority: int = 50  # lower sniffs first
