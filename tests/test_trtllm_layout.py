"""TensorRT-LLM layouts against the reference's worked examples and a naive reference."""

from __future__ import annotations

import itertools

import pytest

from diagnose.engines import trtllm
from diagnose.model import Param
from tests.trtllm_reference import CREATION_ORDER, naive_groups

VERSIONS = {"a": "0.21.0", "b": "1.2.1", "c": "1.3.0rc1"}


def cfg(version: str | None = None, **values):
    return trtllm.resolve({k: Param(k, v) for k, v in values.items()}, version)


def groups_of(c) -> dict[str, object]:
    return {g.kind: g for g in trtllm.layout(c).groups}


def test_worked_example_tp8_pp2_ep4_attention_dp():
    c = cfg(tp_size=8, pp_size=2, moe_ep_size=4, enable_attention_dp=True)
    g = groups_of(c)
    assert c["moe_tp_size"] == 2 and c.params["moe_tp_size"].source.kind == "engine rewrite"
    assert g["tp_group"].ranks == [list(range(8)), list(range(8, 16))]
    assert g["pp_group"].ranks == [[i, i + 8] for i in range(8)]
    assert g["moe_ep_group"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert g["moe_tp_group"].ranks[:5] == [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12]]
    assert c.attention_dp_size == 8
    assert g["attn_dp_group"].alias_of == "tp_group" and not g["attn_dp_group"].built
    assert g["attn_tp_group"].ranks == [[r] for r in range(16)]


@pytest.mark.parametrize("cp_type", ["HELIX", "ULYSSES"])
def test_worked_example_tp4_cp2_both_orders(cp_type: str):
    new = groups_of(cfg(VERSIONS["c"], tp_size=4, cp_size=2, cp_type=cp_type))
    assert new["cp_group"].ranks == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert new["tp_group"].ranks == [[0, 2, 4, 6], [1, 3, 5, 7]]
    old = groups_of(cfg(VERSIONS["b"], tp_size=4, cp_size=2, cp_type=cp_type))
    assert old["cp_group"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert old["tp_group"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_docstring_examples_of_mapping():
    g = groups_of(cfg(tp_size=4, pp_size=2))
    assert g["tp_group"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert g["pp_group"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]
    g = groups_of(cfg(tp_size=8, moe_tp_size=2, moe_ep_size=4))
    assert g["moe_tp_group"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert g["moe_ep_group"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]
    g = groups_of(cfg(tp_size=2, pp_size=2, cp_size=2))
    assert g["cp_group"].ranks == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert g["tp_group"].ranks == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert g["pp_group"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_issue_example_tp8_ep8():
    c = cfg(tp_size=8, moe_ep_size=8, model_path="deepseek-ai/DeepSeek-V3")
    layout = trtllm.layout(c)
    assert [g.kind for g in layout.groups] == [*CREATION_ORDER, "attn_tp_group"]
    g = {x.kind: x for x in layout.groups}
    assert g["moe_ep_group"].ranks == [list(range(8))]
    assert g["moe_tp_group"].ranks == [[r] for r in range(8)]
    assert g["attn_tp_group"].alias_of == "tp_group"
    assert [(p.node, p.gpu) for p in layout.placement] == [(0, r) for r in range(8)]


def test_sglang_and_trtllm_differ_for_the_same_sizes():
    g = groups_of(cfg(tp_size=8, moe_ep_size=4))
    assert g["moe_ep_group"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]  # SGLang: [0,2,4,6],[1,3,5,7]
    assert g["moe_tp_group"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]  # SGLang: [0,1],[2,3],…


def test_first_mapping_computes_moe_over_tp_only_and_its_cluster_quirk():
    c = cfg(VERSIONS["a"], tp_size=4, cp_size=2, cp_type="HELIX", moe_ep_size=1)
    assert c.moe_world_size == 4 and c["attn_cp_size"] == 1  # Ulysses fallback for any type
    b = cfg(VERSIONS["b"], tp_size=4, cp_size=2, cp_type="HELIX", moe_ep_size=2)
    assert b.moe_world_size == 8 and b["moe_tp_size"] == 4 and b["attn_cp_size"] == 2
    g = groups_of(cfg(VERSIONS["a"], tp_size=8, moe_ep_size=8))
    assert g["moe_cluster_group"].ranks == [[0]]


def test_versions_map_to_layouts():
    assert trtllm.layout_version_for(None) == trtllm.LAYOUT_CP_INNER
    assert trtllm.layout_version_for("1.3.0rc2") == trtllm.LAYOUT_CP_INNER
    assert trtllm.layout_version_for("1.2.1") == trtllm.LAYOUT_MPI_TOPOLOGY
    assert trtllm.layout_version_for("1.1.0") == trtllm.LAYOUT_MPI_TOPOLOGY
    assert trtllm.layout_version_for("0.21.0") == trtllm.LAYOUT_MAPPING


def _configs() -> list[tuple[int, int, int, int, int, str, bool]]:
    """(tp, pp, cp, moe_ep, cluster, version, helix) combinations Mapping accepts."""
    out = []
    for tp, pp, cp, ep, cl, v in itertools.product(
        (1, 2, 4, 8, 16), (1, 2, 4), (1, 2), (1, 2, 4, 8), (1, 2), "abc"
    ):
        for helix in (False, True):
            if helix and (cp == 1 or v == "a"):
                continue
            world = tp if v == "a" or not helix else tp * cp
            if world % (ep * cl) or (ep > 1 and cp > 1 and not helix) or (cl > 1 and ep > 1):
                continue
            out.append((tp, pp, cp, ep, cl, v, helix))
    return out


CONFIGS = _configs()


def test_enough_configurations():
    assert len(CONFIGS) >= 100


@pytest.mark.parametrize(("tp", "pp", "cp", "ep", "cl", "version", "helix"), CONFIGS)
def test_layout_matches_naive_reference(tp, pp, cp, ep, cl, version, helix):
    c = cfg(
        VERSIONS[version],
        tp_size=tp,
        pp_size=pp,
        cp_size=cp,
        moe_ep_size=ep,
        moe_cluster_size=cl,
        cp_type="HELIX" if helix else "ULYSSES",
    )
    layout = trtllm.layout(c)
    got = {g.kind: g.ranks for g in layout.groups}
    want = naive_groups(tp, pp, cp, moe_ep=ep, cluster=cl, version=version, helix=helix)
    assert [g.kind for g in layout.groups][: len(CREATION_ORDER)] == CREATION_ORDER
    assert got["world"] == [list(range(tp * pp * cp))]
    for kind, ranks in want.items():
        assert got[kind] == ranks, kind


@pytest.mark.parametrize(("tp", "pp", "cp", "ep", "cl", "version", "helix"), CONFIGS[::7])
def test_coordinates_name_each_rank_in_its_groups(tp, pp, cp, ep, cl, version, helix):
    c = cfg(
        VERSIONS[version],
        tp_size=tp,
        pp_size=pp,
        cp_size=cp,
        moe_ep_size=ep,
        moe_cluster_size=cl,
        cp_type="HELIX" if helix else "ULYSSES",
    )
    g = groups_of(c)
    for rank in range(tp * pp * cp):
        co = trtllm.coordinates(c, rank)
        assert g["tp_group"].ranks[co["pp"] * cp + co["cp"]][co["tp"]] == rank
        assert g["cp_group"].ranks[co["pp"] * tp + co["tp"]][co["cp"]] == rank


def test_placement_follows_gpus_per_node_and_mpirun():
    c = cfg(tp_size=8, pp_size=2, gpus_per_node=8)
    assert c["nnodes"] == 2
    place = trtllm.placement(c)
    assert [(p.node, p.gpu) for p in place] == [(r // 8, r % 8) for r in range(16)]
    c = cfg(tp_size=16, nnodes=2)
    assert c["gpus_per_node"] == 8 and c.params["gpus_per_node"].source.kind == "inferred"
    c = cfg(tp_size=16, gpus_per_node=8, mpi_ranks_per_node=4)
    assert c["nnodes"] == 4
    assert [p.node for p in trtllm.placement(c)][:9] == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert trtllm.coordinate_tokens(cfg(tp_size=4, pp_size=2), 5) == ["RANK5", "PP1", "TP1"]


def test_layer_split_gives_extra_layers_to_the_first_stages():
    assert trtllm.layer_split(61, 4) == [16, 15, 15, 15]


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"tp_size": 8, "moe_ep_size": 3}, "is not moe_world_size 8"),
        ({"tp_size": 4, "cp_size": 2, "moe_ep_size": 2}, "does not support MoE"),
        ({"tp_size": 0}, "tp_size must be a positive integer"),
        ({"tp_size": 4, "cp_size": 2, "attn_tp_size": 4, "attn_cp_size": 1}, "attn_tp_size"),
    ],
)
def test_refused_sizes_give_no_layout(values, needle):
    with pytest.raises(trtllm.LayoutError, match=needle):
        trtllm.layout(cfg(**values))
