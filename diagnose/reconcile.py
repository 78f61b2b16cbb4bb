"""Expected groups against observed ones: which formed, which differ, which never showed.

An observed group is attributed to expected group kinds by the strongest evidence it
carries: its own name (a pg_desc such as `tp:device`), else its global rank set, else only
its size. Several kinds can share one rank set (aliases, or ATTN_TP and MOE_TP with equal
widths); an observed group then confirms all of them, which is what the engine did too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diagnose.model import Evidence, Layout
from diagnose.observed import ObservedGroup

MATCHED, DIFFERS, UNOBSERVED = "matched", "differs", "unobserved"
WORLD_KINDS = frozenset({"world", "default_pg", "WORLD"})


@dataclass
class KindStatus:
    """The observed side of one expected group kind."""

    kind: str
    status: str = UNOBSERVED
    observed: list[list[int]] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    by: str | None = None  # "name", "ranks" or "size": what decided the match
    late: bool = False


@dataclass
class Reconciliation:
    kinds: dict[str, KindStatus]
    unexpected: list[ObservedGroup]
    kinds_of: list[list[str]]  # per observed group (input order): the kinds it confirmed


def _expected_sets(layout: Layout) -> dict[str, set[frozenset[int]]]:
    return {g.kind: {frozenset(r) for r in g.ranks} for g in layout.groups}


def _candidates(
    obs: ObservedGroup, expected: dict[str, set[frozenset[int]]], sizes: dict[str, int]
) -> list[str]:
    """Kinds whose groups could be this observation (partial ones: a superset of it)."""
    if obs.ranks is None:
        return []
    seen = frozenset(obs.ranks)
    if obs.members_seen and obs.members_seen < obs.size:
        return [
            k
            for k, sets in expected.items()
            if sizes[k] == obs.size and any(seen <= s for s in sets)
        ]
    return [k for k, sets in expected.items() if seen in sets]


def reconcile(layout: Layout, observed: list[ObservedGroup]) -> Reconciliation:
    expected = _expected_sets(layout)
    sizes = {g.kind: g.size for g in layout.groups}
    labels = {g.kind: g.label for g in layout.groups}
    kinds = {g.kind: KindStatus(g.kind) for g in layout.groups}
    unexpected: list[ObservedGroup] = []
    kinds_of: list[list[str]] = []
    for obs in observed:
        if obs.kind in kinds:
            _attribute_named(kinds[obs.kind], obs, expected[obs.kind])
            kinds_of.append([obs.kind])
            continue
        candidates = sorted(
            _candidates(obs, expected, sizes),
            key=lambda k: _preference(k, labels[k], obs.desc),
        )
        if candidates:
            for kind in candidates:
                _confirm(kinds[kind], obs, "ranks")
        elif obs.ranks is not None:
            _add_unexpected(unexpected, obs)
        else:
            candidates = [k for k, n in sizes.items() if n == obs.size and n > 1]
            for kind in candidates:
                _confirm(kinds[kind], obs, "size", weak=True)
        kinds_of.append(candidates)
    return Reconciliation(kinds, unexpected, kinds_of)


def _add_unexpected(unexpected: list[ObservedGroup], obs: ObservedGroup) -> None:
    """One entry per unplanned rank set, however many sources (NCCL, PyTorch, traces,
    dumps) show it."""
    same = next((u for u in unexpected if set(u.ranks or ()) == set(obs.ranks or ())), None)
    if same is None:
        unexpected.append(obs)
        return
    same.late = same.late or obs.late
    same.desc = same.desc or obs.desc
    same.evidence += [e for e in obs.evidence[:1] if e not in same.evidence]


def _preference(kind: str, label: str, desc: str | None) -> tuple[bool, bool]:
    """Name a communicator after the kind its own description names (`TP` for a group
    described as TP), else the most specific one: the world group last."""
    named = desc is not None and desc.split(":")[0].upper() in (kind.upper(), label.upper())
    return (kind in WORLD_KINDS, not named)


def _attribute_named(status: KindStatus, obs: ObservedGroup, sets: set[frozenset[int]]) -> None:
    """An observation that names its kind: its ranks must be one of that kind's groups."""
    if obs.ranks is None or frozenset(obs.ranks) in sets:
        _confirm(status, obs, "name")
        return
    status.status = DIFFERS
    status.observed.append(list(obs.ranks))
    status.evidence += obs.evidence[:2]
    status.notes.append(
        f"{obs.desc or obs.name} has ranks {obs.ranks}, which is none of the expected groups"
    )


def _confirm(status: KindStatus, obs: ObservedGroup, by: str, weak: bool = False) -> None:
    if status.status != DIFFERS:
        status.status = MATCHED
    partial = obs.members_seen and obs.members_seen < obs.size
    if obs.ranks is not None and not partial and list(obs.ranks) not in status.observed:
        status.observed.append(list(obs.ranks))
    if partial:
        note = f"a communicator of {obs.size} of which the inputs show {obs.members_seen} members"
        if note not in status.notes:
            status.notes.append(note)
    status.evidence += [e for e in obs.evidence[:1] if e not in status.evidence][:1]
    strength = {"name": 3, "ranks": 2, "size": 1}
    if status.by is None or strength[by] > strength[status.by]:
        status.by = by
    status.late = status.late or obs.late
    if weak:
        note = f"a communicator of size {obs.size} whose global ranks are unknown"
        if note not in status.notes:
            status.notes.append(note)
