"""The cross-engine rules (RM101–RM104, RM201–RM206) reading vLLM's Shape."""

from __future__ import annotations

import shlex

import pytest

from diagnose.analyze import Options, analyse
from diagnose.engines.registry import parse_any_command
from diagnose.reading import Inputs

DSV3 = "vllm serve deepseek-ai/DeepSeek-V3"
LLAMA = "vllm serve meta-llama/Llama-3.1-8B-Instruct"


def findings(command: str, **options) -> dict[str, list[str]]:
    cmd = parse_any_command(shlex.split(command))
    found = analyse(Inputs(), Options(**options), "check", extra_commands=[cmd]).findings
    out: dict[str, list[str]] = {}
    for f in found:
        out.setdefault(f.rule, []).append(f.message)
    return out


@pytest.mark.parametrize(
    ("command", "options", "rule", "fragment"),
    [
        (f"{DSV3} -tp 16 --nnodes 2", {}, "RM101", "The TP group of 16 spans 2 nodes"),
        (f"{DSV3} -tp 8 -dp 2 --nnodes 2", {}, "RM101", "EP group of 16 spans 2 nodes"),
        (f"{DSV3} -tp 8 -pp 2 --nnodes 2", {}, "RM103", "PP groups of 2 span nodes"),
        (f"{LLAMA} -tp 4", {"gpus_per_node": 8}, "RM102", "4 GPUs per node stay idle"),
        (f"{LLAMA} -tp 4 -pp 4", {"gpus_per_node": 8}, "RM102", "GPU ids up to 15"),
        (f"{DSV3} -tp 8 -dp 2 -ep --nnodes 2", {}, "RM104", "EP groups of 16 span nodes"),
        (f"{LLAMA} -tp 6", {}, "RM201", "32 attention heads, not divisible by"),
        (f"{LLAMA} -tp 16 --nnodes 2", {}, "RM202", "replicated on 2 ranks"),
        (f"{DSV3} -tp 8", {}, "RM203", "with attention TP 8"),
        (f"{DSV3} -tp 8 -pp 4", {}, "RM205", "splits them as [15, 15, 16, 15]"),
        (f"{LLAMA} -tp 2 -ep", {}, "RM206", "has no experts"),
        (
            f"VLLM_PP_LAYER_PARTITION=16,15,15,15 {DSV3} -tp 8 -pp 4",
            {},
            "RM205",
            "splits them as [16, 15, 15, 15]",
        ),
    ],
)
def test_rule_fires_through_the_vllm_shape(command, options, rule, fragment):
    got = findings(command, **options)
    assert rule in got, sorted(got)
    assert any(fragment in m for m in got[rule]), got[rule]


@pytest.mark.parametrize(
    ("command", "options", "rule"),
    [
        (f"{DSV3} -tp 8 -pp 2 --nnodes 2", {}, "RM101"),
        (f"{DSV3} -tp 8 -dp 2 -ep --nnodes 2 --all2all-backend deepep_low_latency", {}, "RM104"),
        (f"{LLAMA} -tp 8 -dp 2 --nnodes 2", {"gpus_per_node": 8}, "RM102"),
        (f"{LLAMA} -tp 8 -dp 2 --nnodes 2", {}, "RM101"),
        (f"{DSV3} -tp 1 -dp 8 -ep", {}, "RM203"),
    ],
)
def test_rule_stays_silent(command, options, rule):
    assert rule not in findings(command, **options)


def test_uneven_expert_split_is_not_an_error():
    assert "RM204" not in findings(f"{DSV3} -tp 3 -dp 2 -ep")
