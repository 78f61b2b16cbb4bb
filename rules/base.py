"""What a rule is and what it may read.

Rules never open files: they read the resolved configuration, the expected layout, the
placement graph and the evidence the parsers found, all gathered in a Context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from diagnose.model import Evidence, Finding, Layout, Severity

if TYPE_CHECKING:
    import networkx as nx

    from diagnose.engines.base import Shape
    from diagnose.observation import Observation


@dataclass
class Context:
    """Everything a rule may look at for one analysed job."""

    cfg: Any
    layout: Layout | None
    shape: Shape | None = None
    model: Any = None
    gpus_per_node: int | None = None
    graph: nx.Graph | None = None
    param_evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    events: list[Evidence] = field(default_factory=list)
    prefixes: list[tuple[Evidence, dict[str, int]]] = field(default_factory=list)
    conflicts: list[tuple[str, list[tuple[Any, Evidence]]]] = field(default_factory=list)
    nccl_comms: pl.DataFrame = field(default_factory=pl.DataFrame)
    engine_files: dict[str, list[str]] = field(default_factory=dict)
    observation: Observation | None = None

    def evidence_for(self, *names: str) -> tuple[Evidence, ...]:
        """Evidence lines of the given parameters, without repeats."""
        seen: dict[tuple[str, int | None], Evidence] = {}
        for name in names:
            for ev in self.param_evidence.get(name, []):
                seen.setdefault((ev.file, ev.line), ev)
        return tuple(seen.values())

    def events_of(self, kind: str) -> list[Evidence]:
        return [e for e in self.events if e.kind == kind]


Check = Callable[[Context], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """One documented check, in the manner of a linter's rule page."""

    id: str
    title: str
    severity: Severity
    what: str
    why: str
    fix: str
    check: Check
    engines: tuple[str, ...] | None = None  # None: every engine

    def finding(
        self,
        message: str,
        evidence: Iterable[Evidence] = (),
        fix: str | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        return Finding(
            self.id, severity or self.severity, message, fix or self.fix, tuple(evidence)
        )

    def doc(self) -> str:
        return (
            f"{self.id} — {self.title} ({self.severity})\n\n"
            f"What it checks\n  {self.what}\n\nWhy it matters\n  {self.why}\n\n"
            f"How to fix\n  {self.fix}\n"
        )
