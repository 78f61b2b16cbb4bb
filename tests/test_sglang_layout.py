"""SGLang layouts against the worked examples and a naive reference."""

from __future__ import annotations

import itertools

import pytest

from diagnose.engines import sglang
from diagnose.model import Param
from tests.sglang_reference import CREATION_ORDER, naive_groups


def cfg(version: str | None = None, **values):
    return sglang.resolve({k: Param(k, v) for k, v in values.items()}, version)


def groups_of(c) -> dict[str, object]:
    return {g.kind: g for g in sglang.layout(c).groups}


def singletons(n: int) -> list[list[int]]:
    return [[r] for r in range(n)]


def test_example_a_tp16_dp2_dp_attention_ep16_two_nodes():
    c = cfg(tp_size=16, dp_size=2, enable_dp_attention=True, ep_size=16, nnodes=2)
    g = groups_of(c)
    assert g["tp"].ranks == [list(range(16))]
    assert g["attn_cp"].ranks == singletons(16)
    assert g["attention_tp"].ranks == [list(range(8)), list(range(8, 16))]
    assert g["moe_dp"].ranks == singletons(16)
    assert g["moe_ep"].alias_of == "tp" and g["moe_ep"].ranks == [list(range(16))]
    assert g["moe_tp"].ranks == singletons(16)
    assert g["pp"].ranks == singletons(16)
    place = sglang.placement(c)
    assert [(p.node, p.gpu) for p in place] == [(r // 8, r % 8) for r in range(16)]
    assert sglang.log_prefix(c, 9) == " DP1 TP9 EP9"


def test_example_b_tp8_on_two_nodes_leaves_gpus_idle():
    c = cfg(tp_size=8, dp_size=2, enable_dp_attention=True, ep_size=8, nnodes=2)
    g = groups_of(c)
    assert g["tp"].ranks == [list(range(8))]
    assert g["moe_ep"].alias_of == "tp"
    assert g["attention_tp"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [(p.node, p.gpu) for p in sglang.placement(c)] == [
        (0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)
    ]  # fmt: skip


def test_example_c_attn_cp2_makes_moe_dp_alias_attn_cp():
    c = cfg(tp_size=8, dp_size=2, enable_dp_attention=True, attn_cp_size=2, ep_size=8)
    g = groups_of(c)
    assert g["attention_tp"].ranks == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert g["attn_cp"].ranks == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert g["moe_dp"].alias_of == "attn_cp"
    assert g["moe_dp"].ranks == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert g["moe_ep"].alias_of == "tp"
    assert g["moe_tp"].ranks == singletons(8)
    assert sglang.log_prefix(c, 6) == " DP1 ATTN_CP1 TP6 EP6"
    built = [k.kind for k in sglang.layout(c).groups if k.built]
    assert built == ["world", "tp", "attn_cp", "attention_tp", "moe_tp", "pp"]


def test_example_d_docstring_attn_cp2_moe_dp2_ep4():
    c = cfg(tp_size=8, attn_cp_size=2, moe_dp_size=2, ep_size=4)
    g = groups_of(c)
    assert g["attn_cp"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert g["attention_tp"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert g["moe_dp"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert g["moe_dp"].alias_of is None
    assert g["moe_ep"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert g["moe_tp"].ranks == singletons(8)


def test_example_d_with_ep2():
    g = groups_of(cfg(tp_size=8, attn_cp_size=2, moe_dp_size=2, ep_size=2))
    assert g["moe_ep"].ranks == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert g["moe_tp"].ranks == [[0, 1], [2, 3], [4, 5], [6, 7]]


@pytest.mark.parametrize(
    "flags",
    [
        {
            "enable_prefill_cp": True,
            "cp_strategy": "zigzag",
            "model_path": "deepseek-ai/DeepSeek-V3.2",
        },
        {"enable_nsa_prefill_context_parallel": True},
        {"enable_prefill_context_parallel": True, "model_path": "deepseek-ai/DeepSeek-V3"},
    ],
)
def test_example_e_prefill_cp_turns_tp_into_one_cp_group(flags):
    c = cfg(tp_size=8, **flags)
    assert c["attn_cp_size"] == 8 and c["ep_size"] == 8 and c["moe_dense_tp_size"] == 1
    assert c.params["attn_cp_size"].source.kind == "engine rewrite"
    assert c["enable_dp_attention"] is False  # dp_size == 1 turns it back off
    g = groups_of(c)
    assert g["attn_cp"].alias_of == "tp"
    assert g["attention_tp"].ranks == singletons(8)
    assert g["moe_dp"].alias_of == "attn_cp" and g["moe_dp"].ranks == [list(range(8))]
    assert g["moe_ep"].alias_of == "tp"
    assert sglang.log_prefix(c, 3) == " ATTN_CP3 TP3 EP3"


def test_example_f_tp8_pp2_dp4_ep4_two_nodes():
    c = cfg(tp_size=8, pp_size=2, dp_size=4, enable_dp_attention=True, ep_size=4, nnodes=2)
    g = groups_of(c)
    assert g["tp"].ranks == [list(range(8)), list(range(8, 16))]
    assert g["pp"].ranks == [[i, i + 8] for i in range(8)]
    assert g["attention_tp"].ranks == [[i, i + 1] for i in range(0, 16, 2)]
    assert g["moe_ep"].ranks == [[0, 2, 4, 6], [1, 3, 5, 7], [8, 10, 12, 14], [9, 11, 13, 15]]
    assert g["moe_tp"].ranks == [[i, i + 1] for i in range(0, 16, 2)]
    assert g["attn_cp"].ranks == singletons(16) and g["moe_dp"].ranks == singletons(16)
    assert [p.node for p in sglang.placement(c)] == [0] * 8 + [1] * 8


def _configs():
    """Every valid current-layout config up to tp 16 / pp 2 the validation accepts."""
    out = []
    for tp, pp in itertools.product((1, 2, 4, 6, 8, 12, 16), (1, 2)):
        for adp, cp, ep in itertools.product((1, 2, 4, 8), (1, 2, 4), (1, 2, 4, 8, 16)):
            for mdp in sorted({1, cp}):
                if tp % (adp * cp) or tp % (ep * mdp):
                    continue
                if mdp > 1 and (pp != 1 or (ep > 1 and ep * mdp != tp)):
                    continue
                out.append((tp, pp, adp, cp, ep, mdp))
    return out


CONFIGS = _configs()


def test_enough_generated_configs():
    assert len(CONFIGS) >= 30


@pytest.mark.parametrize(("tp", "pp", "adp", "cp", "ep", "mdp"), CONFIGS)
def test_layout_matches_naive_reference(tp, pp, adp, cp, ep, mdp):
    values = {"tp_size": tp, "pp_size": pp, "attn_cp_size": cp, "ep_size": ep}
    values |= {"moe_dp_size": mdp, "dp_size": adp, "enable_dp_attention": adp > 1}
    layout = sglang.layout(cfg(**values))
    expected = naive_groups(tp, pp, adp, cp, ep, mdp)
    engine_groups = [g for g in layout.groups if g.kind in expected]
    assert [g.kind for g in engine_groups] == CREATION_ORDER
    for g in engine_groups:
        ranks, alias = expected[g.kind]
        assert g.ranks == ranks, g.kind
        assert g.alias_of == alias, g.kind


@pytest.mark.parametrize(("tp", "pp", "adp", "cp", "ep", "mdp"), CONFIGS[::7])
def test_prefix_coordinates_match_reference_formulas(tp, pp, adp, cp, ep, mdp):
    values = {"tp_size": tp, "pp_size": pp, "attn_cp_size": cp, "ep_size": ep}
    values |= {"moe_dp_size": mdp, "dp_size": adp, "enable_dp_attention": adp > 1}
    c = cfg(**values)
    atp = tp // adp // cp
    for rank in range(tp * pp):
        t = rank % tp
        got = sglang.coordinates(c, rank)
        assert got["attn_tp"] == t % atp
        assert got["attn_cp"] == (t // atp) % cp
        assert got.get("dp", 0) == (t // (atp * cp) if adp > 1 else 0)
        assert got["moe_dp"] == t // (tp // mdp)
        assert got["ep"] == (t % (tp // mdp)) // (tp // mdp // ep)


def test_059_builds_moe_dp_from_the_moe_mesh_even_with_attn_cp():
    c = cfg("0.5.9", tp_size=8, dp_size=2, enable_dp_attention=True, attn_cp_size=2, ep_size=8)
    g = groups_of(c)
    assert g["moe_dp"].alias_of is None and g["moe_dp"].ranks == singletons(8)
    assert g["attn_cp"].ranks == [[0, 2], [1, 3], [4, 6], [5, 7]]


def test_0410_builds_every_moe_group():
    c = cfg("0.4.10", tp_size=8, ep_size=8)
    g = groups_of(c)
    assert g["moe_ep"].alias_of is None and g["moe_ep"].ranks == [list(range(8))]
    assert g["moe_tp"].alias_of is None and g["moe_tp"].ranks == singletons(8)


def test_legacy_layout_builds_attention_tp_always_and_last():
    c = cfg("0.5.8.post1", tp_size=8, dp_size=1, ep_size=8)
    kinds = [(g.kind, g.alias_of) for g in sglang.layout(c).groups]
    assert kinds == [
        ("world", None), ("tp", None), ("moe_ep", "tp"), ("moe_tp", None), ("pp", None),
        ("attention_tp", None),
    ]  # fmt: skip
    assert sglang.layout(c).group("attention_tp").ranks == [list(range(8))]


def test_v04_layout_has_no_moe_groups():
    c = cfg("0.4.9", tp_size=4, dp_size=2, enable_dp_attention=True)
    kinds = [g.kind for g in sglang.layout(c).groups]
    assert kinds == ["world", "tp", "pp", "attention_tp", "attn_dp"]
    assert sglang.layout(c).group("attention_tp").ranks == [[0, 1], [2, 3]]


def test_v0523_attn_dp_size_and_deprecated_spelling_agree():
    new = cfg("0.5.23", tp_size=8, attn_dp_size=4, ep_size=8)
    old = cfg("0.5.23", tp_size=8, dp_size=4, enable_dp_attention=True, ep_size=8)
    assert old["attn_dp_size"] == 4 and old["dp_size"] == 1
    for c in (new, old):
        g = groups_of(c)
        assert g["attention_tp"].ranks == [[0, 1], [2, 3], [4, 5], [6, 7]]
        assert g["dp_tp"].alias_of == "attention_tp"
        assert g["self_pp"].ranks == singletons(8)


def test_v0523_dcp_groups():
    g = groups_of(cfg("0.5.23", tp_size=8, dcp_size=2))
    assert g["dcp"].ranks == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert g["attention_tp"].alias_of == "tp"


def test_dp_without_dp_attention_is_replicas_with_repeating_ranks():
    c = cfg(tp_size=4, dp_size=2)
    layout = sglang.layout(c)
    assert layout.world_size == 4 and layout.replicas == 2
    assert [(p.replica, p.rank, p.gpu) for p in layout.placement] == [
        (0, 0, 0), (0, 1, 1), (0, 2, 2), (0, 3, 3), (1, 0, 4), (1, 1, 5), (1, 2, 6), (1, 3, 7)
    ]  # fmt: skip
    assert layout.group("tp").ranks == [[0, 1, 2, 3]]
    assert sglang.log_prefix(c, 2, replica=1) == " DP1 TP2"


def test_deepep_forces_ep_to_tp_with_provenance():
    c = cfg(tp_size=16, moe_a2a_backend="deepep", ep_size=1)
    assert c["ep_size"] == 16
    assert str(c.params["ep_size"].source).startswith("engine rewrite: --moe-a2a-backend deepep")


def test_dp1_turns_dp_attention_off():
    c = cfg(tp_size=8, dp_size=1, enable_dp_attention=True)
    assert c["enable_dp_attention"] is False
    assert "dp_size == 1" in str(c.params["enable_dp_attention"].source)


def test_gpu_id_step_and_base_gpu_id():
    c = cfg(tp_size=4, base_gpu_id=1, gpu_id_step=2)
    assert [p.gpu for p in sglang.placement(c)] == [1, 3, 5, 7]


def test_impossible_sizes_raise_layout_error():
    with pytest.raises(sglang.LayoutError):
        sglang.layout(cfg(tp_size=12, dp_size=8, enable_dp_attention=True))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.4.6", sglang.LAYOUT_V04),
        ("0.4.10", sglang.LAYOUT_V0410),
        ("0.5.1.post3", sglang.LAYOUT_V0410),
        ("0.5.2", sglang.LAYOUT_V052),
        ("0.5.8.post1", sglang.LAYOUT_V052),
        ("0.5.9", sglang.LAYOUT_V059),
        ("0.5.10.post1", sglang.LAYOUT_V059),
        ("0.5.11", sglang.LAYOUT_CURRENT),
        ("0.5.23", sglang.LAYOUT_V0523),
        (None, sglang.LAYOUT_CURRENT),
    ],
)
def test_layout_version_by_release(version, expected):
    assert sglang.layout_version_for(version) == expected
