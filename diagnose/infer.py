"""The configuration a job ran with, found from the groups it formed.

When a directory holds only traces or Flight Recorder dumps there is no launch command or
config to read, but the rank sets of the groups that formed are known. Every engine builds
its groups from a few sizes with fixed formulas, so the configuration is the one whose
layout reproduces those rank sets: this module tries each registered engine over the
factorisations of the world size into its main size parameters (each size limited to
sizes some observed group has, or 1, which keeps the search small at any scale), lays each
candidate out with the engine's own code and scores it against the observations.

Scoring, best first: no observed rank set left unexplained, no named group (a pg_desc the
engine's convention maps to a kind) placed outside its kind, then the most sets explained.
Candidates equal on those fit the evidence equally and are flagged as a tie; among them the
one predicting the fewest groups nobody observed, then the one with fewest non-trivial
sizes, comes first. SGLang and Megatron-core name every group, so descriptions in their
conventions restrict the search to that engine, and groups named otherwise (or left
`undefined`) rule both out.
Groups created after profiling started and size-1 or whole-world sets say nothing about
the sizes and are not scored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from diagnose.classify import DEFAULT_PG, NAMING_ENGINES, convention_of, kind_of_desc
from diagnose.engines.base import Engine
from diagnose.engines.registry import ENGINES
from diagnose.model import Layout, Param, Source
from diagnose.observed import ObservedGroup

WHY = "inferred from observed groups"
SOURCE = Source("inferred", why=WHY)
MAX_CANDIDATES = 4000  # per engine; the size filter keeps real searches far below this
MAX_RESULTS = 10


@dataclass
class InferredConfig:
    """One configuration that reproduces (some of) the observed groups.

    `params` holds the searched sizes with provenance `inferred from observed groups`;
    `cfg` and `layout` are the engine's resolution and layout of them. `tie` is True when
    another configuration explains the observations exactly as well.
    """

    engine: str
    title: str
    params: dict[str, Param]
    cfg: Any
    layout: Layout
    observed: int
    explained: int
    unexplained: list[list[int]]
    named_agree: int
    named_disagree: list[str]
    unseen: int
    tie: bool = False
    ties: list[str] = field(default_factory=list)

    @property
    def evidence_score(self) -> tuple[int, int, int, int]:
        return (-len(self.unexplained), -len(self.named_disagree), self.named_agree, self.explained)

    @property
    def rank_key(self) -> tuple[Any, ...]:
        nontrivial = sum(
            1 for n, p in self.params.items() if n not in FIXED and _nontrivial(p.value)
        )
        return (*self.evidence_score, -self.unseen, -nontrivial)

    def sizes_text(self) -> str:
        shown = [
            f"{n}={p.value}"
            for n, p in self.params.items()
            if n not in FIXED and _nontrivial(p.value)
        ]
        return ", ".join(shown) or "all sizes 1"

    @property
    def summary(self) -> str:
        text = (
            f"{self.title} {self.sizes_text()} reproduces {self.explained} of {self.observed} "
            f"observed rank sets"
        )
        if self.unexplained:
            text += f"; {len(self.unexplained)} not reproduced ({self.unexplained[:3]})"
        if self.named_disagree:
            text += f"; named groups placed elsewhere: {', '.join(self.named_disagree[:3])}"
        if self.tie:
            text += f"; fits equally well: {'; '.join(self.ties[:4])}"
        return text


FIXED = frozenset({"world_size", "dist_world_size"})  # given, not searched


def _nontrivial(value: Any) -> bool:
    return value is True or (isinstance(value, int) and not isinstance(value, bool) and value > 1)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# A candidate: the engine parameters, and the size of each group kind they give (what the
# cheap pre-filter compares with the observations before any layout is built).
Candidate = tuple[dict[str, Any], dict[str, int]]
Space = Callable[[int, list[int]], Iterator[Candidate]]


def _sglang(world: int, sizes: list[int]) -> Iterator[Candidate]:
    """tp × pp = world; attention and MoE splits of tp (DP attention through attn_tp)."""
    for pp in sizes:
        if world % pp:
            continue
        tp = world // pp
        inner = [s for s in sizes if tp % s == 0]
        for cp, attn_tp in itertools.product(inner, inner):
            if tp % (cp * attn_tp):
                continue
            attn_dp = tp // (cp * attn_tp)
            for ep, moe_dp in itertools.product(inner, inner):
                if tp % (ep * moe_dp):
                    continue
                values = {
                    "tp_size": tp,
                    "pp_size": pp,
                    "dp_size": attn_dp,
                    "enable_dp_attention": attn_dp > 1,
                    "attn_cp_size": cp,
                    "ep_size": ep,
                    "moe_dp_size": moe_dp,
                }
                kinds = {"world": world, "tp": tp, "pp": pp, "attn_cp": cp}
                kinds |= {"attention_tp": attn_tp, "moe_dp": moe_dp, "moe_ep": ep}
                yield values, kinds | {"moe_tp": tp // (ep * moe_dp)}


def _vllm(world: int, sizes: list[int]) -> Iterator[Candidate]:
    """tp × pp × pcp × dp = world (DP shares the world only for MoE models); dcp splits tp."""
    for tp, pp, pcp in itertools.product(sizes, sizes, sizes):
        if world % (tp * pp * pcp):
            continue
        dp = world // (tp * pp * pcp)
        for dcp in (s for s in sizes if tp % s == 0):
            values = {
                "tensor_parallel_size": tp,
                "pipeline_parallel_size": pp,
                "prefill_context_parallel_size": pcp,
                "decode_context_parallel_size": dcp,
                "data_parallel_size": dp,
                "is_moe": dp > 1,
            }
            kinds = {"world": world, "tp": tp, "pp": pp, "pcp": pcp, "dcp": dcp, "dp": dp}
            yield values, kinds | {"ep": dp * pcp * tp}


def _megatron(world: int, sizes: list[int]) -> Iterator[Candidate]:
    """tp × pp × cp divides the world (dp the rest); ep splits the expert grid."""
    for tp, pp, cp, ep in itertools.product(sizes, sizes, sizes, sizes):
        if world % (tp * pp * cp) or world % (tp * ep * pp):
            continue
        dp, edp = world // (tp * pp * cp), world // (tp * ep * pp)
        values = {
            "tensor_model_parallel_size": tp,
            "pipeline_model_parallel_size": pp,
            "context_parallel_size": cp,
            "expert_model_parallel_size": ep,
            "world_size": world,
        }
        kinds = {
            "TENSOR_MODEL_PARALLEL_GROUP": tp,
            "PIPELINE_MODEL_PARALLEL_GROUP": pp,
            "CONTEXT_PARALLEL_GROUP": cp,
            "DATA_PARALLEL_GROUP": dp,
            "DATA_PARALLEL_GROUP_WITH_CP": dp * cp,
            "MODEL_PARALLEL_GROUP": tp * pp,
            "TENSOR_AND_DATA_PARALLEL_GROUP": tp * dp,
            "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP": tp * dp * cp,
            "TENSOR_AND_CONTEXT_PARALLEL_GROUP": tp * cp,
            "EMBEDDING_GROUP": min(pp, 2),
            "EXPERT_MODEL_PARALLEL_GROUP": ep,
            "EXPERT_TENSOR_PARALLEL_GROUP": tp,
            "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP": tp * ep,
            "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP": tp * ep * pp,
            "EXPERT_DATA_PARALLEL_GROUP": edp,
            "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP": world,
        }
        yield values, kinds


def _deepspeed(world: int, sizes: list[int]) -> Iterator[Candidate]:
    """Pipeline stages, AutoTP or Ulysses SP (one of them), expert parallel size."""
    for pp, tp, sp, ep in itertools.product(sizes, sizes, sizes, sizes):
        if (tp > 1 and sp > 1) or world % (pp * tp * sp) or (world // pp) % ep:
            continue
        values: dict[str, Any] = {
            "dist_world_size": world,
            "pp_size": pp,
            "autotp_size": tp if tp > 1 else 0,
            "sequence_parallel_size": sp,
            "ep_size": ep,
        }
        if ep > 1:
            values["num_experts"] = ep
        kinds = {"world": world, "pipe_parallel": pp, "data_parallel": world // (pp * tp * sp)}
        kinds |= {"tensor_model_parallel": tp, "sequence_parallel": sp, "expert_parallel": ep}
        yield values, kinds | {"expert_data_parallel": world // pp // ep}


def _trtllm(world: int, sizes: list[int]) -> Iterator[Candidate]:
    """tp × pp × cp = world; MoE EP inside tp; attention DP on or off."""
    for tp, pp in itertools.product(sizes, sizes):
        if world % (tp * pp):
            continue
        cp = world // (tp * pp)
        for ep in (s for s in sizes if tp % s == 0):
            for adp in (False, True) if tp > 1 else (False,):
                values = {
                    "tp_size": tp,
                    "pp_size": pp,
                    "cp_size": cp,
                    "moe_ep_size": ep,
                    "enable_attention_dp": adp,
                }
                kinds = {"world": world, "tp_group": tp, "pp_group": pp, "cp_group": cp}
                kinds |= {"moe_ep_group": ep, "moe_tp_group": tp // ep}
                yield values, kinds | {"attn_tp_group": 1 if adp else tp}


SPACES: dict[str, Space] = {
    "sglang": _sglang,
    "vllm": _vllm,
    "megatron": _megatron,
    "deepspeed": _deepspeed,
    "trtllm": _trtllm,
}


def _scored_sets(observed: list[ObservedGroup], world: int) -> list[ObservedGroup]:
    """The observations that constrain the sizes: known ranks, 1 < size < world, not late."""
    out, seen = [], set()
    for g in observed:
        if g.ranks is None or g.late or not 1 < len(set(g.ranks)) < world:
            continue
        key = (frozenset(g.ranks), g.desc)
        if key not in seen:
            seen.add(key)
            out.append(g)
    return out


def _engines(observed: list[ObservedGroup]) -> list[Engine]:
    """Engines whose naming conventions agree with the descriptions seen."""
    conventions = {convention_of(g.desc) for g in observed} - {None}
    if conventions:
        return [ENGINES[name] for name in sorted(conventions) if name in ENGINES]
    # Groups named outside both conventions (or left undefined) were not made by them.
    foreign = any(g.desc and g.desc != DEFAULT_PG for g in observed)
    return [e for e in ENGINES.values() if not (foreign and e.name in NAMING_ENGINES)]


def _named_sizes(engine: str, observed: list[ObservedGroup]) -> dict[str, int]:
    """The size of each kind the observations name under `engine`'s conventions."""
    out = {}
    for g in observed:
        kind = kind_of_desc(engine, g.desc)
        if kind is not None:
            out[kind] = len(set(g.ranks or ()))
    return out


def _plausible(kinds: dict[str, int], named: dict[str, int], sizes: list[int], world: int) -> bool:
    """Before laying a candidate out: every named kind has its observed size, and every
    observed size is the size of some kind."""
    if any(kinds.get(kind, size) != size for kind, size in named.items()):
        return False
    return set(sizes) <= {*kinds.values(), 1, world}


def _evaluate(
    engine: Engine, values: dict[str, Any], world: int, observed: list[ObservedGroup]
) -> InferredConfig | None:
    params = {name: Param(name, value, SOURCE) for name, value in values.items()}
    try:
        cfg = engine.resolve(params, None, None)
        if cfg.world_size != world or cfg.replicas != 1:
            return None
        layout = engine.layout(cfg, {})
    except (*engine.layout_errors, ValueError, KeyError):
        return None
    by_kind = {
        g.kind: {frozenset(r) for r in g.ranks}
        for g in layout.groups
        if g.built or g.alias_of is not None  # attn_dp-like kinds form no communicator
    }
    expected = set().union(*by_kind.values()) if by_kind else set()
    sets = {frozenset(g.ranks) for g in observed if g.ranks is not None}
    unexplained = [sorted(s) for s in sets if s not in expected]
    agree, disagree = 0, []
    for g in observed:
        if convention_of(g.desc) is None:
            continue
        kind = kind_of_desc(engine.name, g.desc)
        if kind in by_kind and frozenset(g.ranks or ()) in by_kind[kind]:
            agree += 1
        else:
            disagree.append(f"{g.desc} {g.ranks}")
    unseen = sum(1 for s in expected if 1 < len(s) < world and s not in sets)
    return InferredConfig(
        engine=engine.name,
        title=engine.title,
        params=params,
        cfg=cfg,
        layout=layout,
        observed=len(sets),
        explained=len(sets) - len(unexplained),
        unexplained=sorted(unexplained),
        named_agree=agree,
        named_disagree=disagree,
        unseen=unseen,
    )


def infer_configs(observed: list[ObservedGroup], world_size: int) -> list[InferredConfig]:
    """Configurations whose layout reproduces the observed groups, best first.

    Empty when nothing constrains the sizes (no group of size between 1 and the world).
    The first entry is the answer; `tie` on it means the evidence cannot tell it from the
    others flagged the same way, which `ties` names.
    """
    scored = _scored_sets(observed, world_size)
    if not scored or world_size < 2:
        return []
    sizes = sorted({len(set(g.ranks or ())) for g in scored} | {1})
    sizes = [s for s in sizes if world_size % s == 0]
    results: list[InferredConfig] = []
    for engine in _engines(observed):
        space = SPACES.get(engine.name)
        if space is None:
            continue
        named = _named_sizes(engine.name, scored)
        seen: set[tuple[tuple[str, Any], ...]] = set()
        for values, kinds in itertools.islice(space(world_size, sizes), MAX_CANDIDATES):
            key = tuple(sorted(values.items()))
            if key in seen or not _plausible(kinds, named, sizes, world_size):
                continue
            seen.add(key)
            found = _evaluate(engine, values, world_size, scored)
            if found is not None:
                results.append(found)
    results.sort(key=lambda c: c.rank_key, reverse=True)
    if not results:
        return []
    best = results[0].evidence_score
    equal = [c for c in results if c.evidence_score == best]
    if len(equal) > 1:
        for c in equal:
            c.tie = True
            c.ties = [f"{o.title} {o.sizes_text()}" for o in equal if o is not c]
    return results[:MAX_RESULTS]
