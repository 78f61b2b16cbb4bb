"""What kind of group a process group is, from the name its framework gave it.

Profiler traces and Flight Recorder dumps carry each group's `group_desc`. Frameworks that
name their groups follow fixed conventions, so the description alone says the kind:
SGLang's GroupCoordinator creates `<name>:device` (NCCL) and `<name>:cpu` (gloo) for every
logical group, Megatron-core uses its `*_GROUP` constants (with `_GLOO` twins on gloo), and
torch calls its default group `default_pg` and any unnamed one `undefined`. vLLM,
DeepSpeed and TensorRT-LLM name none, so their groups are matched by rank set instead
(diagnose.reconcile).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from diagnose.engines import sglang
from diagnose.model import Evidence, Layout
from diagnose.observed import ObservedGroup

DEFAULT_PG = "default_pg"
UNDEFINED = "undefined"
NAMING_ENGINES = ("sglang", "megatron")
# The kind each engine's layout gives the whole world, where it has one.
WORLD_KINDS: dict[str, str | None] = {
    "sglang": "world",
    "vllm": "world",
    "trtllm": "world",
    "deepspeed": "world",
    "megatron": None,  # Megatron-core builds no group of kind "world"
}

_SGLANG = re.compile(r"^(?P<name>[a-z][a-z0-9_]*):(?P<device>device|cpu)$")
_MEGATRON = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*GROUP[A-Z0-9_]*?)(?P<gloo>_GLOO)?$")
_SPLIT = re.compile(r":split:\d+$")


@dataclass(frozen=True)
class DescInfo:
    """A description read against the conventions.

    `convention` is the framework whose naming it follows; `twin` is True for the gloo copy
    of a device group (SGLang `:cpu`, Megatron `_GLOO`), which has the same ranks and the
    same kind but carries only CPU-side control traffic.
    """

    kind: str | None
    convention: str | None
    twin: bool = False


def describe_desc(engine: str | None, desc: str | None) -> DescInfo:
    """Read `desc` with the conventions of `engine` (or of any engine when None)."""
    if not desc or desc == UNDEFINED or _SPLIT.search(desc):
        # split_group's `<parent>:split:<n>` has other ranks than its parent: no kind.
        return DescInfo(None, None)
    if desc == DEFAULT_PG:
        kind = WORLD_KINDS.get(engine, "world") if engine else "world"
        return DescInfo(kind, None)
    m = _SGLANG.match(desc)
    if m and m.group("name") in sglang.LABELS and engine in (None, "sglang"):
        return DescInfo(m.group("name"), "sglang", twin=m.group("device") == "cpu")
    m = _MEGATRON.match(desc)
    if m and engine in (None, "megatron"):
        return DescInfo(m.group("name"), "megatron", twin=m.group("gloo") is not None)
    return DescInfo(None, convention_of(desc))


def kind_of_desc(engine: str | None, desc: str | None) -> str | None:
    """The group kind `desc` names under `engine`'s conventions, or None.

    SGLang `tp:device` -> "tp", `attention_tp:cpu` -> "attention_tp" (the CPU twin; see
    describe_desc); Megatron descs are kinds as they are (`DATA_PARALLEL_GROUP_GLOO` ->
    `DATA_PARALLEL_GROUP`); `default_pg` -> the engine's world kind; `undefined` -> None.
    """
    return describe_desc(engine, desc).kind


def convention_of(desc: str | None) -> str | None:
    """Which framework names its groups like `desc` ("sglang", "megatron"), if any."""
    if not desc:
        return None
    m = _SGLANG.match(desc)
    if m and m.group("name") in sglang.LABELS:
        return "sglang"
    return "megatron" if _MEGATRON.match(desc) else None


def merge_observed(groups: list[ObservedGroup]) -> list[ObservedGroup]:
    """One group per (source, name, ranks): every rank's trace or dump lists its groups, so
    the same group arrives once per member; its evidence names every file that showed it."""
    merged: dict[tuple[object, ...], ObservedGroup] = {}
    files: dict[tuple[object, ...], list[str]] = {}
    for g in groups:
        key = (g.source, g.name, tuple(g.ranks) if g.ranks is not None else None, g.desc)
        first = merged.get(key)
        if first is None:
            merged[key] = ObservedGroup(**{**g.__dict__, "evidence": list(g.evidence)})
            files[key] = [e.file for e in g.evidence]
            continue
        first.late = first.late or g.late
        first.hosts = sorted(set(first.hosts) | set(g.hosts))
        first.kind = first.kind or g.kind
        files[key] += [e.file for e in g.evidence if e.file not in files[key]]
    for key, g in merged.items():
        if len(files[key]) > 1:
            shown = ", ".join(files[key][:4]) + (" …" if len(files[key]) > 4 else "")
            g.evidence.append(
                Evidence(g.evidence[0].file, None, f"listed by {len(files[key])} files: {shown}")
            )
    return list(merged.values())


def kind_resolver(
    engine: str | None, layout: Layout | None, observed: list[ObservedGroup]
) -> Callable[[str | None, str | None], str | None]:
    """A `kind_of(pg_name, pg_desc)` for diagnose.traffic and diagnose.hang.

    The description's kind when its convention names one; otherwise the group's ranks
    (known by its pg name from `observed`) looked up among the layout's groups, built
    kinds before aliases. Engines that name no group (vLLM, DeepSpeed) need the second.
    """
    ranks_by_name = {g.name: frozenset(g.ranks) for g in observed if g.name and g.ranks}
    by_set: dict[frozenset[int], str] = {}
    if layout is not None:
        for group in sorted(layout.groups, key=lambda g: g.alias_of is not None):
            for ranks in group.ranks:
                by_set.setdefault(frozenset(ranks), group.kind)

    def kind_of(name: str | None, desc: str | None) -> str | None:
        kind = kind_of_desc(engine, desc)
        if kind is not None:
            return kind
        ranks = ranks_by_name.get(name or "")
        return by_set.get(ranks) if ranks else None

    return kind_of
