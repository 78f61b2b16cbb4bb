"""rankmap's vLLM layout against rank lists recorded from vLLM's own initialize_model_parallel.

The fixtures in tests/data/vllm_recorded come from scripts/record_vllm_groups.py, which ran
the function of each release (0.11.2 – 0.33.0) on CPU with a recording group constructor;
see scripts/README.md. Each holds, per configuration, the groups in creation order, the
aliases (a global that is another group's coordinator) and every rank's rank_in_group.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.engines import vllm
from diagnose.model import Param, Source
from parsers.hf_config import resolve_model

FIXTURES = sorted((Path(__file__).parent / "data" / "vllm_recorded").glob("vllm-*.json"))
MOE = resolve_model("deepseek-ai/DeepSeek-V3")
DENSE = resolve_model("meta-llama/Llama-3.1-8B-Instruct")
CLI = Source("command line")


def _cases():
    for path in FIXTURES:
        doc = json.loads(path.read_text())
        for case in doc["configs"]:
            size = "-".join(f"{k}{v}" for k, v in case["sizes"].items())
            flags = ("moe" if case["moe"] else "dense") + ("-eplb" if case["eplb"] else "")
            yield pytest.param(doc["version"], case, id=f"{doc['version']}-{size}-{flags}")


def _config(version: str, case: dict) -> vllm.VLLMConfig:
    s = case["sizes"]
    given = {
        "tensor_parallel_size": s["tp"],
        "pipeline_parallel_size": s["pp"],
        "data_parallel_size": s["dp"],
        "prefill_context_parallel_size": s["pcp"],
        "decode_context_parallel_size": s["dcp"],
        "enable_eplb": case["eplb"],
        "enable_expert_parallel": case["eplb"],
        # The recorder calls initialize_model_parallel directly, as torchrun + the external
        # launcher does: no engine core splits a dense model's DP ranks into own worlds.
        "distributed_executor_backend": "external_launcher",
    }
    params = {k: Param(k, v, CLI) for k, v in given.items()}
    return vllm.resolve(params, version, MOE if case["moe"] else DENSE)


@pytest.mark.parametrize(("version", "case"), list(_cases()))
def test_groups_and_ranks_match_vllm(version: str, case: dict):
    cfg = _config(version, case)
    s = case["sizes"]
    if s["tp"] % s["dcp"] and (s["pcp"] == 1 or cfg.release < (0, 26)):
        # vLLM's ParallelConfig refuses these sizes before the function runs (RM401).
        with pytest.raises(vllm.LayoutError, match="not divisible by dcp"):
            vllm.layout(cfg)
        return
    layout = vllm.layout(cfg)
    built = [(g.kind, g.ranks) for g in layout.groups if g.built and g.kind != "world"]
    want = [(g["kind"], g["ranks"]) for g in case["groups"] if g["alias_of"] is None]
    assert built == want
    aliases = {(g.kind, g.alias_of, str(g.ranks)) for g in layout.groups if not g.built}
    want_aliases = {(g["kind"], g["alias_of"], str(g["ranks"])) for g in case["groups"]}
    assert aliases == {a for a in want_aliases if a[1] is not None}
    for rank, coords in case["coords"].items():
        assert vllm.coordinates(cfg, int(rank)) == coords, rank


def test_fixtures_cover_every_layout_boundary_from_dcp_on():
    versions = {json.loads(p.read_text())["version"] for p in FIXTURES}
    assert {"0.11.2", "0.12.0", "0.14.0", "0.17.0", "0.25.0", "0.26.0", "0.30.0"} <= versions
