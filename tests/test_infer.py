"""Finding the configuration from the groups alone (no launch command, no config)."""

from __future__ import annotations

import time
from pathlib import Path

from diagnose.classify import merge_observed
from diagnose.engines.registry import ENGINES
from diagnose.infer import InferredConfig, infer_configs
from diagnose.model import Param
from diagnose.observed import ObservedGroup
from parsers import kineto

GENERATED = Path(__file__).parent / "data" / "generated"


def observed(family: str, layout: str) -> list[ObservedGroup]:
    files = sorted((GENERATED / family / layout / "trace").glob("rank*.json.gz"))
    traces = [kineto.parse_kineto(f, f.name) for f in files]
    return merge_observed([g for t in traces for g in kineto.observed_groups(t)])


def from_layout(engine: str, desc: str | None, **values: object) -> tuple[list[ObservedGroup], int]:
    """The groups an engine's own layout forms, as a trace without names would show them."""
    e = ENGINES[engine]
    layout = e.layout(e.resolve({k: Param(k, v) for k, v in values.items()}, None, None), {})
    groups = [
        ObservedGroup("kineto", len(r), r, desc=desc if desc else None)
        for g in layout.groups
        if g.built
        for r in g.ranks
    ]
    return groups, layout.world_size


def sizes(config: InferredConfig) -> dict[str, object]:
    return {name: p.value for name, p in config.params.items()}


def test_sglang_sample_is_found_exactly() -> None:
    best, *_ = infer_configs(observed("nccl_1gpu_torch2.11", "sglang_tp8_attncp2_moeep4"), 8)
    assert best.engine == "sglang" and not best.tie
    assert {k: v for k, v in sizes(best).items() if k != "enable_dp_attention"} == {
        "tp_size": 8, "pp_size": 1, "dp_size": 1, "attn_cp_size": 2, "ep_size": 4,
        "moe_dp_size": 2,
    }  # fmt: skip
    assert best.explained == best.observed and not best.unexplained
    assert all(p.source.kind == "inferred" for p in best.params.values())
    assert str(best.params["tp_size"].source) == "inferred: inferred from observed groups"
    assert best.layout.group("attn_cp").ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_megatron_sample_ties_with_an_unobserved_expert_size() -> None:
    results = infer_configs(observed("gloo_cpu_torch2.13", "megatron_tp2_pp2_dp2"), 8)
    best = results[0]
    assert best.engine == "megatron"
    assert sizes(best)["tensor_model_parallel_size"] == 2
    assert sizes(best)["pipeline_model_parallel_size"] == 2
    assert sizes(best)["expert_model_parallel_size"] == 1  # fewest sizes first among equals
    assert best.tie and "expert_model_parallel_size=2" in best.ties[0]
    assert "fits equally well" in best.summary


def test_vllm_groups_without_names() -> None:
    groups, world = from_layout(
        "vllm", "undefined", tensor_parallel_size=4, pipeline_parallel_size=2
    )
    results = infer_configs(groups, world)
    assert {r.engine for r in results} <= {"vllm", "trtllm", "deepspeed"}  # named ones ruled out
    best = results[0]
    assert best.explained == best.observed
    top = [(r.engine, sizes(r)) for r in results if r.tie]
    assert any(
        e == "vllm" and s["tensor_parallel_size"] == 4 and s["pipeline_parallel_size"] == 2
        for e, s in top
    )
    # TP 4 with PP 2 and TP 4 with (MoE) DP 2 form the same rank sets: several fit equally.
    assert best.tie and len(top) > 1


def test_nothing_to_infer() -> None:
    world = [ObservedGroup("kineto", 8, list(range(8)), desc="default_pg")]
    assert infer_configs(world, 8) == []
    assert infer_configs([], 8) == []


def test_large_named_world_is_fast_and_exact() -> None:
    values = {"tp_size": 64, "pp_size": 4, "attn_cp_size": 2, "ep_size": 32, "moe_dp_size": 2,
              "dp_size": 8, "enable_dp_attention": True}  # fmt: skip
    e = ENGINES["sglang"]
    layout = e.layout(e.resolve({k: Param(k, v) for k, v in values.items()}, None, None), {})
    groups = [
        ObservedGroup("kineto", len(r), r, desc=f"{g.kind}:device")
        for g in layout.groups
        if g.built
        for r in g.ranks
    ]
    start = time.perf_counter()
    best = infer_configs(groups, 256)[0]
    assert time.perf_counter() - start < 5
    assert sizes(best) == values and not best.tie
