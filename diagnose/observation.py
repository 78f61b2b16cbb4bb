"""What the inputs show actually formed, laid over the expected layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diagnose import nccl_groups, watchdog
from diagnose.model import Layout
from diagnose.observed import ObservedGroup
from diagnose.reconcile import Reconciliation, reconcile
from parsers.nccl_log import NcclFacts
from parsers.torch_dist_log import TorchDistFacts


@dataclass
class Observation:
    """Communicators, process groups and hangs the logs show, and how they fit the plan."""

    nccl: nccl_groups.NcclView
    nccl_facts: list[NcclFacts]
    torch_facts: list[TorchDistFacts]
    groups: list[ObservedGroup]
    recon: Reconciliation | None
    hangs: list[dict[str, Any]] = field(default_factory=list)

    def kinds_of_nccl(self) -> list[list[str]]:
        """The expected kinds each NCCL communicator confirmed (same order as nccl.groups)."""
        if self.recon is None:
            return [[] for _ in self.nccl.groups]
        return self.recon.kinds_of[: len(self.nccl.groups)]


def observe(
    nccl: list[NcclFacts], torch: list[TorchDistFacts], layout: Layout | None, world: int | None
) -> Observation:
    view = nccl_groups.view(nccl, world)
    pgs = watchdog.torch_groups(torch)
    groups = view.groups + pgs
    recon = reconcile(layout, groups) if layout is not None else None
    obs = Observation(view, nccl, torch, groups, recon)
    pg_kinds = {}
    if recon is not None:
        offset = len(view.groups)
        for group, kinds in zip(pgs, recon.kinds_of[offset:], strict=True):
            if kinds and group.name is not None:
                pg_kinds[group.name] = kinds[0]
    obs.hangs = watchdog.torch_hangs(torch, pgs, pg_kinds) + watchdog.nccl_stalls(
        view, obs.kinds_of_nccl()
    )
    return obs
