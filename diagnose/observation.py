"""What the inputs show actually formed, laid over the expected layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from diagnose import hang, nccl_groups, traffic, watchdog
from diagnose.classify import kind_resolver, merge_observed
from diagnose.model import Layout
from diagnose.observed import ObservedGroup
from diagnose.reconcile import Reconciliation, reconcile
from parsers import flight_recorder, kineto
from parsers.flight_recorder import FRDump
from parsers.kineto import KinetoTrace
from parsers.nccl_log import NcclFacts
from parsers.torch_dist_log import TorchDistFacts


@dataclass
class Observation:
    """Communicators, process groups, traffic and hangs the inputs show, and how they fit
    the plan."""

    nccl: nccl_groups.NcclView
    nccl_facts: list[NcclFacts]
    torch_facts: list[TorchDistFacts]
    groups: list[ObservedGroup]
    recon: Reconciliation | None
    hangs: list[dict[str, Any]] = field(default_factory=list)
    traffic: dict[str, Any] | None = None
    _frames: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False)

    def nccl_frame(self, name: str) -> pl.DataFrame:
        """One NCCL fact frame (`comms`, `links`, `env`, …) of every file, with a `file`
        column; made once, since several rules read the same ones."""
        if name not in self._frames:
            self._frames[name] = nccl_groups.fact_frame(self.nccl_facts, name)
        return self._frames[name]

    def kinds_of_nccl(self) -> list[list[str]]:
        """The expected kinds each NCCL communicator confirmed (same order as nccl.groups)."""
        if self.recon is None:
            return [[] for _ in self.nccl.groups]
        return self.recon.kinds_of[: len(self.nccl.groups)]


def _distinct(hangs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per hang: a watchdog line and a Flight Recorder dump of the same stall
    (same ranks and sequence) are one hang with the evidence of both."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for h in hangs:
        key = (tuple(sorted(h.get("ranks") or [])), h.get("seq"))
        if key in out:
            out[key]["evidence"] = out[key]["evidence"] + h.get("evidence", [])[:1]
        else:
            out[key] = dict(h)
    return list(out.values())


def recorded_groups(
    traces: list[KinetoTrace], dumps: list[FRDump], engine: str | None
) -> list[ObservedGroup]:
    """Process groups from profiler traces and Flight Recorder dumps, one per group."""
    found = [g for t in traces for g in kineto.observed_groups(t, engine)]
    found += [g for d in dumps for g in flight_recorder.observed_groups(d, engine)]
    return merge_observed(found)


def observe(
    nccl: list[NcclFacts],
    torch: list[TorchDistFacts],
    traces: list[KinetoTrace],
    dumps: list[FRDump],
    layout: Layout | None,
    world: int | None,
    engine: str | None,
) -> Observation:
    view = nccl_groups.view(nccl, world)
    pgs = watchdog.torch_groups(torch)
    recorded = recorded_groups(traces, dumps, engine)
    groups = view.groups + pgs + recorded
    recon = reconcile(layout, groups) if layout is not None else None
    obs = Observation(view, nccl, torch, groups, recon)
    pg_kinds = {}
    if recon is not None:
        offset = len(view.groups)
        for group, kinds in zip(pgs, recon.kinds_of[offset : offset + len(pgs)], strict=True):
            if kinds and group.name is not None:
                pg_kinds[group.name] = kinds[0]
    kind_of = kind_resolver(engine, layout, recorded)
    obs.hangs = _distinct(
        watchdog.torch_hangs(torch, pgs, pg_kinds)
        + watchdog.nccl_stalls(view, obs.kinds_of_nccl())
        + hang.hangs(dumps, kind_of)
        + hang.trace_hangs(traces, kind_of)
    )
    if traces:
        obs.traffic = traffic.traffic(traces, kind_of)
    return obs
