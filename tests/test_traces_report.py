"""`rankmap report` on directories of traces, Flight Recorder dumps or PyTorch logs only."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.analyze import BadInput, Options, analyse
from diagnose.observation import recorded_groups
from diagnose.reading import read_inputs
from diagnose.report_html import render_html
from diagnose.result import document

GENERATED = Path(__file__).parent / "data" / "generated" / "nccl_1gpu_torch2.11"
CORPUS = Path(__file__).parent / "data" / "corpus"


def report(path: Path) -> dict:
    return document(analyse(read_inputs(path), Options(), "report"))


def test_sglang_like_set_matches_every_group_flags_the_late_one_and_counts_traffic():
    doc = report(GENERATED / "sglang_tp8_attncp2_moeep4")
    assert doc["engine"] == "sglang"
    assert "inferred from the observed groups" in doc["unknowns"][0]["what"]
    status = {g["kind"]: g["status"] for g in doc["groups"] if g["kind"]}
    for kind in ("tp", "attn_cp", "attention_tp", "moe_dp", "moe_ep"):
        assert status[kind] == "matched", kind
    attn_cp = next(g for g in doc["groups"] if g["kind"] == "attn_cp")
    assert sorted(map(sorted, attn_cp["observed"])) == [[0, 4], [1, 5], [2, 6], [3, 7]]
    late = [g for g in doc["groups"] if g["status"] == "unexpected" and g["late"]]
    assert sorted(g["ranks"][0] for g in late) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    kinds = {row["group_kind"] for row in doc["traffic"]}
    assert {"tp", "attention_tp"} <= kinds
    assert len(doc["traffic_matrix"]["bytes"]) == 8
    html = render_html(doc)
    assert 'id="traffic"' in html and 'id="unexpected"' in html


def test_desync_set_names_the_rank_that_never_joined():
    doc = report(GENERATED / "fr_desync_tp2x2")
    hangs = [h for h in doc["hangs"] if h["seq"] == 4]
    assert len(hangs) == 1
    assert hangs[0]["stuck_ranks"] == [3] and hangs[0]["waiting_ranks"] == [2]
    assert len(hangs[0]["evidence"]) >= 2  # the watchdog line and the dump agree


def test_trace_without_groups_invents_none():
    found = read_inputs(CORPUS / "deepseek-v3-train-ep64-rank0-trace-trimmed.log")
    assert [t.world_size for t in found.traces] == [64]
    assert recorded_groups(found.traces, found.dumps, None) == []


def _sizes(doc: dict, names: tuple[str, ...]) -> tuple[object, ...]:
    return tuple(doc["params"][name]["value"] for name in names)


def test_pytorch_distributed_logs_alone_name_the_layout() -> None:
    """ProcessGroupNCCL lines (TORCH_CPP_LOG_LEVEL=INFO) carry each group's description and
    global ranks: enough to infer the engine and sizes when no configuration is there."""
    sglang = report(GENERATED / "sglang_tp8_attncp2_moeep4" / "torch_log")
    assert sglang["engine"] == "sglang"
    assert _sizes(sglang, ("tp_size", "attn_cp_size", "ep_size")) == (8, 2, 4)
    assert "inferred from the observed groups" in sglang["unknowns"][0]["what"]
    megatron = report(GENERATED / "megatron_tp2_pp2_dp2" / "torch_log")
    names = ("tensor_model_parallel_size", "pipeline_model_parallel_size")
    assert megatron["engine"] == "megatron" and _sizes(megatron, names) == (2, 2)
    assert {g["status"] for g in megatron["groups"]} == {"matched"}


def test_nccl_communicators_alone_infer_nothing() -> None:
    """NCCL's communicators name no kind: sizes alone would fit layouts that only raise
    false alarms, so the analysis asks for a configuration instead."""
    with pytest.raises(BadInput, match="no engine configuration found"):
        report(GENERATED / "sglang_tp8_attncp2_moeep4" / "nccl_log")
