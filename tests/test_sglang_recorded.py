"""rankmap's SGLang layout against rank lists recorded from SGLang's own code.

The fixtures in tests/data/sglang_recorded/ were written by
scripts/record_sglang_groups.py, which ran SGLang's `initialize_model_parallel` (and,
before 0.5.9, `initialize_dp_attention`) for every rank with its group constructor
replaced by a recorder. Each recorded group is compared with rankmap's group of the same
kind. An alias is recorded by object identity, so it names the group that was actually
built (`moe_dp` -> `attn_cp` -> `tp` is recorded as `tp`); rankmap's alias chains are
followed to that group before comparing. `world` (built by init_distributed_environment,
not recorded) and the `attn_dp` pseudo-group (no process group) have no counterpart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.engines import sglang
from diagnose.model import Param

DATA = Path(__file__).parent / "data" / "sglang_recorded"
NOT_RECORDED = {"world", "attn_dp"}


def _load() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted(DATA.glob("sglang-*.json")):
        doc = json.loads(path.read_text())
        for cfg in doc["configs"]:
            cases.append((doc["sglang_version"], cfg))
    return cases


CASES = _load()
PARAMS = [
    pytest.param(c, id=f"{c[0]}-" + "-".join(f"{k}{v}" for k, v in c[1]["sizes"].items()))
    for c in CASES
]


def _root(groups: dict, kind: str) -> str:
    seen = set()
    while groups[kind].alias_of is not None:
        assert kind not in seen, f"alias cycle at {kind}"
        seen.add(kind)
        kind = groups[kind].alias_of
    return kind


def test_fixtures_present():
    versions = {v for v, _ in CASES}
    assert {"0.4.10", "0.5.8.post1", "0.5.9", "0.5.23"} <= versions
    for version in versions:
        assert sum(v == version for v, _ in CASES) >= 40, version


@pytest.mark.parametrize("case", PARAMS)
def test_layout_matches_recorded_sglang(case):
    version, cfg = case
    given = {k: Param(k, v) for k, v in cfg["server_args"].items()}
    layout = sglang.layout(sglang.resolve(given, version))
    ours = {g.kind: g for g in layout.groups}
    recorded = {g["name"]: g for g in cfg["groups"]}

    missing = sorted(set(recorded) - set(ours))
    assert not missing, f"SGLang creates {missing}, rankmap has no such group"
    extra = sorted(set(ours) - set(recorded) - NOT_RECORDED)
    assert not extra, f"rankmap has {extra}, SGLang does not create them"

    for name, rec in recorded.items():
        g = ours[name]
        assert g.ranks == rec["ranks"], f"{name}: rank lists differ"
        ours_alias = None if g.alias_of is None else _root(ours, name)
        assert ours_alias == rec["alias_of"], f"{name}: alias target differs"

    built_recorded = [g["name"] for g in cfg["groups"] if g["alias_of"] is None]
    built_ours = [g.kind for g in layout.groups if g.built and g.kind not in NOT_RECORDED]
    assert built_ours == built_recorded, "creation order of built groups differs"
