"""rankmap's Megatron layout against rank lists recorded from megatron-core's own code.

The fixtures in tests/data/megatron_recorded/ were written by
scripts/record_megatron_groups.py, which ran `parallel_state.initialize_model_parallel`
of megatron-core 0.12.3, 0.13.1, 0.16.1 (PyPI wheels), 0.18.2 and 0.19.0 (core_v* tags)
on torch's fake backend with `new_group` replaced by a recorder. Each recorded group_desc
is compared with rankmap's group of the same kind, in creation order; a configuration
Megatron refused must be refused here too, with Megatron's message. The gloo twins and
the partial-DistOpt holders (which group object a module variable keeps) are compared
with what rankmap says about them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.engines import megatron
from diagnose.engines.megatron_text import GLOO_TWINS
from diagnose.model import Param

DATA = Path(__file__).parent / "data" / "megatron_recorded"
KWARGS = {
    "tensor_model_parallel_size": "tensor_model_parallel_size",
    "pipeline_model_parallel_size": "pipeline_model_parallel_size",
    "context_parallel_size": "context_parallel_size",
    "expert_model_parallel_size": "expert_model_parallel_size",
    "expert_tensor_parallel_size": "expert_tensor_parallel_size",
    "num_distributed_optimizer_instances": "num_distributed_optimizer_instances",
    "hierarchical_context_parallel_sizes": "hierarchical_context_parallel_sizes",
    "hybrid_context_parallel": "hybrid_context_parallel",
    "virtual_pipeline_model_parallel_size": "virtual_pipeline_model_parallel_size",
}


def _load() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted(DATA.glob("megatron-core-*.json")):
        doc = json.loads(path.read_text())
        cases += [(doc["megatron_core_version"], entry) for entry in doc["configs"]]
    return cases


CASES = _load()
PARAMS = [
    pytest.param(v, e, id=f"{v}-" + "-".join(f"{k}{x}" for k, x in e["config"].items()))
    for v, e in CASES
]


def _config(version: str, entry: dict) -> megatron.MegatronConfig:
    kw = entry["kwargs"]
    given = {"world_size": Param("world_size", entry["config"]["world"])}
    given |= {name: Param(name, kw[key]) for key, name in KWARGS.items() if key in kw}
    given["use_tp_pp_dp_mapping"] = Param("m", kw["order"] == megatron.PP_DP_ORDER)
    pp = kw["pipeline_model_parallel_size"]
    if kw["virtual_pipeline_model_parallel_size"] and pp > 1:
        given["num_virtual_stages_per_pipeline_rank"] = Param(
            "v", kw["virtual_pipeline_model_parallel_size"]
        )
    return megatron.resolve(given, version)


def test_fixtures_present():
    versions = {v for v, _ in CASES}
    assert {"0.12.3", "0.13.1", "0.16.1", "0.18.2", "0.19.0"} <= versions
    for version in versions:
        assert sum(v == version for v, _ in CASES) >= 40, version


@pytest.mark.parametrize(("version", "entry"), PARAMS)
def test_layout_matches_recorded_megatron(version: str, entry: dict):
    cfg = _config(version, entry)
    if "error" in entry:
        with pytest.raises(megatron.LayoutError) as caught:
            megatron.layout(cfg)
        recorded = entry["error"].split(": ", 1)[1]
        assert recorded.split(",")[0] in str(caught.value)
        return
    layout = megatron.layout(cfg)
    built = [g for g in layout.groups if g.built]
    assert [g.kind for g in built] == [g["desc"] for g in entry["groups"]], "creation order"
    for ours, recorded in zip(built, entry["groups"], strict=True):
        assert ours.ranks == recorded["ranks"], ours.kind
    kinds = {g.kind: g for g in layout.groups}
    for holder, desc in entry["holders"].items():
        if holder == desc:
            assert kinds[holder].built
        elif desc.startswith("HIERARCHICAL_"):
            assert kinds[desc].built  # n > 1: the level group itself, named by its desc
        else:
            assert kinds[holder].alias_of == desc, holder
    twins = {GLOO_TWINS[g.kind] for g in built if g.kind in GLOO_TWINS}
    assert twins == set(entry["gloo"])
