"""The data model every part of rankmap shares.

Parsers produce Params and Evidence, engines turn Params into a Layout, rules turn a
Layout into Findings. Keeping these plain dataclasses lets the report and the JSON
output read one structure instead of each engine's private shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SourceKind = Literal["file", "command line", "default", "engine rewrite", "option", "inferred"]
Severity = Literal["error", "warning", "info"]
Cut = Literal["parameters", "requests", "sequences", "experts", "world"]

SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Source:
    """Where a value came from; the report shows it next to every number."""

    kind: SourceKind
    file: str | None = None
    line: int | None = None
    why: str | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"{self.file}:{self.line}" if self.line else str(self.file)
        if self.kind == "engine rewrite":
            return f"engine rewrite: {self.why}"
        if self.kind == "option":
            return f"rankmap option {self.why}" if self.why else "rankmap option"
        if self.kind == "inferred":
            return f"inferred: {self.why}" if self.why else "inferred"
        return self.kind


DEFAULT = Source("default")
COMMAND_LINE = Source("command line")


@dataclass(frozen=True)
class Param:
    """A configured value with its provenance."""

    name: str
    value: Any
    source: Source = DEFAULT

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": str(self.source)}


@dataclass(frozen=True)
class Evidence:
    """One line of input that supports a fact or a finding."""

    file: str
    line: int | None
    text: str
    kind: str = "line"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "text": self.text}


@dataclass(frozen=True)
class Axis:
    """One named dimension of a mesh, with the formula that sized it."""

    name: str
    size: int
    formula: str = ""


@dataclass(frozen=True)
class Mesh:
    """Ranks laid out row-major over named axes (the last axis varies fastest).

    Every engine's groups are "ranks that differ only along some axes" of such a
    mesh; computing them here once keeps the engines free of index loops.
    """

    name: str
    axes: tuple[Axis, ...]
    offset: int = 0

    @property
    def size(self) -> int:
        n = 1
        for axis in self.axes:
            n *= axis.size
        return n

    def axis(self, name: str) -> Axis:
        for axis in self.axes:
            if axis.name == name:
                return axis
        raise KeyError(f"mesh {self.name} has no axis {name}")

    def coords(self, rank: int) -> dict[str, int]:
        """Coordinates of a rank along every axis."""
        rest = rank - self.offset
        out: dict[str, int] = {}
        for axis in reversed(self.axes):
            out[axis.name] = rest % axis.size
            rest //= axis.size
        return dict(reversed(list(out.items())))

    def groups(self, *along: str) -> list[list[int]]:
        """Groups of ranks that differ only along `along`.

        Members are ordered row-major over `along` (in mesh order); groups are ordered
        row-major over the remaining axes, which is the order numpy's
        transpose-then-reshape gives and the order the engines create them in.
        """
        names = [a.name for a in self.axes]
        unknown = set(along) - set(names)
        if unknown:
            raise KeyError(f"mesh {self.name} has no axis {sorted(unknown)}")
        strides: dict[str, int] = {}
        stride = 1
        for axis in reversed(self.axes):
            strides[axis.name] = stride
            stride *= axis.size
        inner = [a for a in self.axes if a.name in along]
        outer = [a for a in self.axes if a.name not in along]
        return [
            [self.offset + base + member for member in _offsets(inner, strides)]
            for base in _offsets(outer, strides)
        ]


def _offsets(axes: list[Axis], strides: dict[str, int]) -> list[int]:
    """Rank offsets of every coordinate over `axes`, row-major."""
    offsets = [0]
    for axis in axes:
        offsets = [o + i * strides[axis.name] for o in offsets for i in range(axis.size)]
    return offsets


@dataclass
class Group:
    """All groups of one kind, e.g. every `attn_cp` group of a layout."""

    kind: str
    label: str
    cut: Cut
    ranks: list[list[int]]
    mesh: str = ""
    axes: tuple[str, ...] = ()
    alias_of: str | None = None
    built: bool = True
    explanation: str = ""
    formula: str = ""
    traffic: str = ""
    hosts: list[list[str | None]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.ranks[0]) if self.ranks else 0


@dataclass(frozen=True)
class Placement:
    """Where one rank runs. `replica` separates worlds whose rank numbers repeat."""

    rank: int
    host: str | None
    gpu: int | None
    node: int | None = None
    replica: int = 0


@dataclass
class Layout:
    """An engine's expected process-group layout for one configuration."""

    engine: str
    engine_version: str | None
    world_size: int
    replicas: int
    meshes: list[Mesh]
    groups: list[Group]
    placement: list[Placement]
    layout_version: str = ""

    def group(self, kind: str) -> Group | None:
        return next((g for g in self.groups if g.kind == kind), None)


@dataclass(frozen=True)
class Finding:
    """One thing a rule flagged or explained."""

    rule: str
    severity: Severity
    message: str
    fix: str
    evidence: tuple[Evidence, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "evidence": [e.to_json() for e in self.evidence],
            "fix": self.fix,
        }


@dataclass
class InputFile:
    """How one input file was handled; every file under LOGDIR gets one."""

    path: str
    format: str
    status: Literal["parsed", "skipped", "failed"]
    reason: str | None = None
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "status": self.status,
            "reason": self.reason,
            "size": self.size,
        }
