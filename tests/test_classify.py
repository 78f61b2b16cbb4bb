"""Group kinds from pg_desc conventions, and merging one group seen by many ranks."""

from __future__ import annotations

import pytest

from diagnose.classify import (
    convention_of,
    describe_desc,
    kind_of_desc,
    kind_resolver,
    merge_observed,
)
from diagnose.engines.registry import ENGINES
from diagnose.model import Evidence, Param
from diagnose.observed import ObservedGroup


@pytest.mark.parametrize(
    ("engine", "desc", "kind"),
    [
        ("sglang", "tp:device", "tp"),
        ("sglang", "attention_tp:cpu", "attention_tp"),
        ("sglang", "moe_ep:device", "moe_ep"),
        ("sglang", "late_created:device", None),
        ("sglang", "default_pg", "world"),
        ("sglang", "undefined", None),
        ("sglang", "TENSOR_MODEL_PARALLEL_GROUP", None),
        ("megatron", "TENSOR_MODEL_PARALLEL_GROUP", "TENSOR_MODEL_PARALLEL_GROUP"),
        ("megatron", "DATA_PARALLEL_GROUP_GLOO", "DATA_PARALLEL_GROUP"),
        ("megatron", "DATA_PARALLEL_GROUP_WITH_CP_GLOO", "DATA_PARALLEL_GROUP_WITH_CP"),
        (
            "megatron",
            "HIERARCHICAL_CONTEXT_PARALLEL_GROUP_L0",
            "HIERARCHICAL_CONTEXT_PARALLEL_GROUP_L0",
        ),
        ("megatron", "default_pg", None),  # Megatron-core builds no "world" kind
        ("megatron", "tp:device", None),
        ("vllm", "default_pg", "world"),
        ("vllm", "undefined", None),
        ("vllm", "tp:device", None),  # vLLM names no group
        ("deepspeed", "undefined", None),
        (None, "moe_dp:cpu", "moe_dp"),
        (None, "EXPERT_MODEL_PARALLEL_GROUP", "EXPERT_MODEL_PARALLEL_GROUP"),
        (None, "TP:split:1", None),
        (None, None, None),
    ],
)
def test_kind_of_desc(engine: str | None, desc: str | None, kind: str | None) -> None:
    assert kind_of_desc(engine, desc) == kind


def test_twins_and_conventions() -> None:
    assert describe_desc("sglang", "attention_tp:cpu").twin
    assert not describe_desc("sglang", "attention_tp:device").twin
    assert describe_desc("megatron", "DATA_PARALLEL_GROUP_GLOO").twin
    assert convention_of("attn_cp:device") == "sglang"
    assert convention_of("EMBEDDING_GROUP") == "megatron"
    assert convention_of("TP") is None and convention_of("undefined") is None


def test_merge_observed_keeps_one_group_per_name_and_ranks() -> None:
    def seen(file: str, late: bool = False) -> ObservedGroup:
        return ObservedGroup("kineto", 2, [0, 4], "5", "attn_cp:device", late=late,
                             evidence=[Evidence(file, None, "pg_config")])  # fmt: skip

    merged = merge_observed([seen("rank0.json"), seen("rank4.json", late=True), seen("rank0.json")])
    assert len(merged) == 1
    assert merged[0].late
    assert merged[0].evidence[-1].text == "listed by 2 files: rank0.json, rank4.json"


def test_kind_resolver_names_unnamed_groups_by_their_ranks() -> None:
    engine = ENGINES["vllm"]
    values = {"tensor_parallel_size": 2, "pipeline_parallel_size": 2}
    layout = engine.layout(engine.resolve({k: Param(k, v) for k, v in values.items()}), {})
    observed = [
        ObservedGroup("kineto", 2, [2, 3], "7", "undefined"),
        ObservedGroup("kineto", 2, [1, 3], "9", "undefined"),
        ObservedGroup("kineto", 2, [0, 3], "11", "undefined"),
    ]
    kind_of = kind_resolver("vllm", layout, observed)
    assert kind_of("7", "undefined") == "tp"  # not its alias "etp"
    assert kind_of("9", "undefined") == "pp"
    assert kind_of("11", "undefined") is None  # no such group in the layout
    assert kind_of("0", "default_pg") == "world"
    assert kind_resolver("sglang", None, [])("3", "tp:device") == "tp"
