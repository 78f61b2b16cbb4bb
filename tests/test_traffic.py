"""Traffic per group kind and the rank × rank matrix, from the generated NCCL traces."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from diagnose.classify import kind_of_desc
from diagnose.traffic import KindOf, traffic
from parsers.kineto import KinetoTrace, parse_kineto

GENERATED = Path(__file__).parent / "data" / "generated"


@cache
def traces(family: str, layout: str) -> tuple[KinetoTrace, ...]:
    files = sorted((GENERATED / family / layout / "trace").glob("rank*.json.gz"))
    return tuple(parse_kineto(f, f.name) for f in files)


def kinds(engine: str) -> KindOf:
    return lambda name, desc: kind_of_desc(engine, desc)


def row(doc: dict, kind: str, op: str) -> dict:
    return next(r for r in doc["per_group"] if (r["group_kind"], r["op"]) == (kind, op))


def test_megatron_counts_bytes_and_matrix() -> None:
    doc = traffic(list(traces("nccl_1gpu_torch2.11", "megatron_tp2_pp2_dp2")), kinds("megatron"))
    tp = row(doc, "TENSOR_MODEL_PARALLEL_GROUP", "all_reduce")
    # 2 all_reduces of 4096 floats per rank on 8 ranks; 2·B/n to the one peer each time.
    assert (tp["calls"], tp["bytes"]) == (16, 16 * 16384)
    assert tp["ranks"] == list(range(8))
    assert [p["calls"] for p in tp["per_rank"]] == [2] * 8
    send = row(doc, "PIPELINE_MODEL_PARALLEL_GROUP", "send")
    assert (send["calls"], send["bytes"]) == (16, 8 * (8192 + 2048))
    assert row(doc, "PIPELINE_MODEL_PARALLEL_GROUP", "recv")["bytes"] == 0
    assert all(r["op"] not in ("wait", "init") for r in doc["per_group"])
    assert row(doc, "CONTEXT_PARALLEL_GROUP", "all_reduce")["bytes"] == 0  # size-1 group
    matrix = doc["matrix"]
    assert matrix["ranks"] == list(range(8))
    grid = matrix["bytes"]
    assert all(grid[r][r] == 0 for r in range(8))
    assert grid == [list(col) for col in zip(*grid, strict=True)]  # every op here is symmetric
    assert sum(map(sum, grid)) == sum(r["bytes"] for r in doc["per_group"])
    # PP pairs (0, 4) exchange the sends; TP pairs (0, 1) and DP pairs (0, 2) all-reduces.
    assert grid[0][4] >= 8192 + 2048 and grid[0][1] > 0 and grid[0][2] > 0
    assert grid[0][7] == 0  # ranks 0 and 7 share only the world (barrier: no bytes)


def test_sglang_uneven_all_to_all_and_late_group() -> None:
    doc = traffic(list(traces("nccl_1gpu_torch2.11", "sglang_tp8_attncp2_moeep4")), kinds("sglang"))
    a2a = row(doc, "moe_ep", "all_to_all")
    assert a2a["calls"] == 32  # two even and two uneven rounds on each of 8 ranks
    assert row(doc, "attention_tp", "all_reduce")["calls"] == 8
    assert row(doc, "late_created:device", "all_reduce")["calls"] == 8  # kind_of: no kind
    grid = doc["matrix"]["bytes"]
    assert grid[0][5] == 4096  # only the tp all_reduce: 2 · 16384 / 8


def test_recv_counts_when_the_sender_left_no_trace() -> None:
    rank4 = [t for t in traces("nccl_1gpu_torch2.11", "megatron_tp2_pp2_dp2") if t.rank == 4]
    doc = traffic(rank4, kinds("megatron"))
    grid = doc["matrix"]["bytes"]
    assert grid[0][4] == 8192 + 2048  # rank 0's sends, seen from rank 4's recvs
    assert grid[4][0] >= 8192 + 2048


def test_gloo_traces_have_no_traffic_and_say_why() -> None:
    doc = traffic(list(traces("gloo_cpu_torch2.13", "megatron_tp2_pp2_dp2")), kinds("megatron"))
    assert doc["per_group"] == [] and doc["matrix"] == {"ranks": [], "bytes": []}
    assert any("gloo records none" in n for n in doc["notes"])
