"""rankmap's DeepSpeed layout against rank lists recorded from DeepSpeed's own code.

The fixtures in tests/data/deepspeed_recorded/ were written by
scripts/record_deepspeed_groups.py, which ran groups.py and the pipeline grid of DeepSpeed
0.9.3, 0.13.5, 0.16.2 and 0.19.6 for every rank with `new_group` replaced by a recorder,
phase by phase in DeepSpeedEngine's order. Each phase's calls are compared, in order, with
the groups rankmap lists for it; `world` (init_process_group) is not a `new_group` call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.engines import deepspeed
from diagnose.model import Param

DATA = Path(__file__).parent / "data" / "deepspeed_recorded"
PHASE_KINDS = {
    "pipeline_grid": ("model_parallel", "data_parallel", "pipe_parallel", "slice_parallel"),
    "moe": ("expert_data_parallel", "expert_parallel"),
    "data_parallel": ("data_parallel",),
    "zero_hpz": ("zero_param_intra_parallel",),
}


def _load() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted(DATA.glob("deepspeed-*.json")):
        doc = json.loads(path.read_text())
        cases += [(doc["deepspeed_version"], c) for c in doc["configs"]]
    return cases


CASES = _load()


def test_fixtures_present():
    versions = {v for v, _ in CASES}
    assert versions == {"0.9.3", "0.13.5", "0.16.2", "0.19.6"}
    assert len(CASES) > 400


@pytest.mark.parametrize(
    ("version", "case"),
    CASES,
    ids=[f"{v}-" + "-".join(f"{k}{x}" for k, x in c["sizes"].items()) for v, c in CASES],
)
def test_layout_matches_recorded_deepspeed(version: str, case: dict):
    sizes = case["sizes"]
    values = {"dist_world_size": sizes["world"], "pp_size": sizes["pp"]}
    if "ep" in sizes:
        values["ep_size"] = sizes["ep"]
    if sizes.get("hpz", 1) > 1:
        values.update(zero_stage=3, zero_hpz_partition_size=sizes["hpz"])
    if sizes.get("dbe"):
        values["use_data_before_expert_parallel_"] = True
    cfg = deepspeed.resolve({k: Param(k, v) for k, v in values.items()}, version)
    groups = [g for g in deepspeed.layout(cfg).groups if g.kind != "world"]
    at = 0
    for phase in case["phases"]:
        if not phase["groups"]:
            continue  # the pipeline's own DP group: no new_group call
        kinds = PHASE_KINDS[phase["phase"]]
        mine = groups[at : at + len(kinds)]
        assert [g.kind for g in mine] == list(kinds), phase["phase"]
        assert [r for g in mine for r in g.ranks] == phase["groups"], phase["phase"]
        at += len(kinds)
    assert at == len(groups)
