"""rankmap's Megatron layout against the reference's worked example and a naive reference.

Expected rank lists come from /work/shared/reference (§4.4, executed with megatron-core)
copied in below, and from tests/megatron_reference.py, which re-derives every group from
rank coordinates without rankmap's Mesh. The recorded runs of megatron-core itself are
checked in test_megatron_recorded.py.
"""

from __future__ import annotations

import pytest

from diagnose.engines import megatron
from diagnose.model import Param
from tests import megatron_reference as ref

PARAM_NAMES = {
    "tp": "tensor_model_parallel_size",
    "pp": "pipeline_model_parallel_size",
    "cp": "context_parallel_size",
    "ep": "expert_model_parallel_size",
    "etp": "expert_tensor_parallel_size",
    "instances": "num_distributed_optimizer_instances",
    "world": "world_size",
    "nnodes": "nnodes",
    "nproc": "nproc_per_node",
}


def cfg_of(version: str | None = None, order: str = "tp-cp-ep-dp-pp", **sizes: object):
    given = {PARAM_NAMES[k]: Param(PARAM_NAMES[k], v) for k, v in sizes.items()}
    if order != "tp-cp-ep-dp-pp":
        given["use_tp_pp_dp_mapping"] = Param("use_tp_pp_dp_mapping", True)
    return megatron.resolve(given, version)


def groups_of(**kw: object) -> dict[str, list[list[int]]]:
    return {g.kind: g.ranks for g in megatron.layout(cfg_of(**kw)).groups}


# §4.4 (executed): tp=2, cp=2, pp=2, ep=2, W=16, default order.
WORKED = {
    "TENSOR_MODEL_PARALLEL_GROUP": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 13],
                                    [14, 15]],
    "CONTEXT_PARALLEL_GROUP": [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9, 11], [12, 14],
                               [13, 15]],
    "DATA_PARALLEL_GROUP": [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13], [10, 14], [11, 15]],
    "DATA_PARALLEL_GROUP_WITH_CP": [[0, 2, 4, 6], [1, 3, 5, 7], [8, 10, 12, 14], [9, 11, 13, 15]],
    "PIPELINE_MODEL_PARALLEL_GROUP": [[0, 8], [1, 9], [2, 10], [3, 11], [4, 12], [5, 13],
                                      [6, 14], [7, 15]],
    "EMBEDDING_GROUP": [[0, 8], [1, 9], [2, 10], [3, 11], [4, 12], [5, 13], [6, 14], [7, 15]],
    "POSITION_EMBEDDING_GROUP": [[0], [1], [2], [3], [4], [5], [6], [7]],
    "MODEL_PARALLEL_GROUP": [[0, 1, 8, 9], [2, 3, 10, 11], [4, 5, 12, 13], [6, 7, 14, 15]],
    "TENSOR_AND_CONTEXT_PARALLEL_GROUP": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11],
                                          [12, 13, 14, 15]],
    "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP": [list(range(8)), list(range(8, 16))],
    "EXPERT_MODEL_PARALLEL_GROUP": [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9, 11], [12, 14],
                                    [13, 15]],
    "EXPERT_TENSOR_PARALLEL_GROUP": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 13],
                                     [14, 15]],
    "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11],
                                               [12, 13, 14, 15]],
    "EXPERT_DATA_PARALLEL_GROUP": [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13], [10, 14],
                                   [11, 15]],
}  # fmt: skip

# §4.3: rank 0's process-group names (new_group call numbers) in that run, no gloo groups.
WORKED_PG_NAMES = {
    "DATA_PARALLEL_GROUP_WITH_CP": 1,
    "DATA_PARALLEL_GROUP": 5,
    "CONTEXT_PARALLEL_GROUP": 13,
    "MODEL_PARALLEL_GROUP": 21,
    "TENSOR_MODEL_PARALLEL_GROUP": 25,
    "PIPELINE_MODEL_PARALLEL_GROUP": 33,
    "EMBEDDING_GROUP": 34,
    "POSITION_EMBEDDING_GROUP": 35,
    "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP": 57,
    "TENSOR_AND_DATA_PARALLEL_GROUP": 59,
    "TENSOR_AND_CONTEXT_PARALLEL_GROUP": 63,
    "EXPERT_MODEL_PARALLEL_GROUP": 67,
    "EXPERT_TENSOR_PARALLEL_GROUP": 75,
    "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP": 83,
    "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP": 87,
    "EXPERT_DATA_PARALLEL_GROUP": 89,
    "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP": 97,
}
# Groups Megatron creates right after each group of another kind, in the same loop.
INTERLEAVED = {"EMBEDDING_GROUP": "PIPELINE_MODEL_PARALLEL_GROUP",
               "POSITION_EMBEDDING_GROUP": "PIPELINE_MODEL_PARALLEL_GROUP"}  # fmt: skip


def test_worked_example():
    ours = groups_of(world=16, tp=2, cp=2, pp=2, ep=2)
    for kind, ranks in WORKED.items():
        assert ours[kind] == ranks, kind


def test_worked_example_creation_order_gives_the_recorded_pg_names():
    """Replay the new_group calls in creation order; rank 0's groups get the numbers seen."""
    layout = megatron.layout(cfg_of(world=16, tp=2, cp=2, pp=2, ep=2))
    built = [g for g in layout.groups if g.built]
    calls: list[tuple[str, list[int]]] = []
    for g in built:
        if g.kind in INTERLEAVED:
            continue
        followers = [f for f in built if INTERLEAVED.get(f.kind) == g.kind]
        for i, ranks in enumerate(g.ranks):
            calls.append((g.kind, ranks))
            calls += [(f.kind, f.ranks[i]) for f in followers]
    names = {}
    for number, (kind, ranks) in enumerate(calls, start=1):
        if 0 in ranks:
            names.setdefault(kind, number)
    assert names == WORKED_PG_NAMES


def test_worked_example_other_executed_cases():
    g = groups_of(world=8, tp=2, ep=4, etp=1)
    assert g["EXPERT_MODEL_PARALLEL_GROUP"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert g["EXPERT_TENSOR_PARALLEL_GROUP"] == [[r] for r in range(8)]
    assert g["EXPERT_DATA_PARALLEL_GROUP"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert g["DATA_PARALLEL_GROUP"] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    g = groups_of(world=16, tp=2, cp=2, pp=2, ep=2, order="tp-cp-ep-pp-dp")
    assert g["PIPELINE_MODEL_PARALLEL_GROUP"][:2] == [[0, 4], [1, 5]]
    assert g["DATA_PARALLEL_GROUP"][:2] == [[0, 8], [1, 9]]
    layout = megatron.layout(
        megatron.resolve(
            {
                "world_size": Param("world_size", 16),
                "tensor_model_parallel_size": Param("t", 2),
                "context_parallel_size": Param("c", 4),
                "hierarchical_context_parallel_sizes": Param("h", [2, 2]),
            }
        )
    )
    g = {x.kind: x.ranks for x in layout.groups}
    assert [0, 2, 4, 6] in g["CONTEXT_PARALLEL_GROUP"]
    assert g["HIERARCHICAL_CONTEXT_PARALLEL_GROUP_L0"][:2] == [[0, 2], [4, 6]]
    assert g["HIERARCHICAL_CONTEXT_PARALLEL_GROUP_L1"][:2] == [[0, 4], [2, 6]]


def test_partial_distributed_optimizer_executed_case():
    g = groups_of(world=8, tp=2, ep=2, instances=2)
    assert g["DATA_PARALLEL_GROUP_WITH_CP"] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert g["INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP"] == [[0, 2], [4, 6], [1, 3], [5, 7]]
    assert g["EXPERT_DATA_PARALLEL_GROUP"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert g["HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L0"] == [
        [r] for r in (0, 4, 1, 5, 2, 6, 3, 7)
    ]
    assert g["HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L1"] == g["EXPERT_DATA_PARALLEL_GROUP"]
    assert g["INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP"] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_one_instance_aliases_the_dp_groups():
    layout = megatron.layout(cfg_of(world=8, tp=2, ep=4))
    by_kind = {g.kind: g for g in layout.groups}
    intra = by_kind["INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP"]
    assert intra.alias_of == "DATA_PARALLEL_GROUP_WITH_CP" and not intra.built
    assert intra.ranks == by_kind["DATA_PARALLEL_GROUP_WITH_CP"].ranks
    edp = by_kind["INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP"]
    assert edp.alias_of == "EXPERT_DATA_PARALLEL_GROUP"
    assert by_kind["INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP"].ranks == [list(range(8))]
    assert "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L1" not in by_kind


CONFIGS = [
    dict(world=8),
    dict(world=8, tp=8),
    dict(world=8, pp=8),
    dict(world=8, cp=8),
    dict(world=16, tp=2, pp=2),
    dict(world=16, tp=4, pp=2, cp=2),
    dict(world=32, tp=4, pp=2, cp=2, ep=4),
    dict(world=32, tp=2, pp=4, ep=8, etp=1),
    dict(world=64, tp=8, pp=4, ep=8, etp=1),
    dict(world=64, tp=4, cp=4, pp=2, ep=16, etp=1),
    dict(world=24, tp=2, pp=3, ep=4, etp=1),
    dict(world=12, tp=3, pp=2, cp=2),
    dict(world=48, tp=4, pp=3, ep=2),
    dict(world=16, tp=2, pp=2, ep=2, etp=1, order="tp-cp-ep-pp-dp"),
    dict(world=32, tp=2, cp=2, pp=2, ep=4, etp=1, order="tp-cp-ep-pp-dp"),
    dict(world=32, tp=4, pp=2, order="tp-cp-ep-pp-dp"),
    dict(world=16, tp=2, ep=2, instances=2),
    dict(world=32, tp=2, cp=2, ep=4, etp=1, instances=2),
    dict(world=64, tp=2, pp=2, ep=8, etp=2, instances=2),
    dict(world=64, tp=4, cp=2, ep=4, etp=2, instances=4),
    dict(world=16, tp=1, cp=2, ep=8, etp=1),
    dict(world=128, tp=8, pp=8, ep=16, etp=1),
    dict(world=96, tp=4, pp=4, cp=2, ep=6, etp=2),
    dict(world=8, tp=2, ep=8, etp=1),
]


@pytest.mark.parametrize("sizes", CONFIGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_layout_matches_naive_reference(sizes: dict):
    expected = ref.megatron_groups(**sizes)
    layout = megatron.layout(cfg_of(**sizes))
    built = {g.kind: g.ranks for g in layout.groups if g.built}
    assert set(built) == set(expected)
    for kind, ranks in expected.items():
        assert built[kind] == ranks, kind
    world = sizes["world"]
    for g in layout.groups:  # every rank sits in exactly one group of each partition kind
        if g.kind in ("EMBEDDING_GROUP", "POSITION_EMBEDDING_GROUP"):
            continue
        assert sorted(r for ranks in g.ranks for r in ranks) == list(range(world)), g.kind


def test_creation_order_current():
    layout = megatron.layout(cfg_of(world=16, tp=2, cp=2, pp=2, ep=2))
    assert [g.kind for g in layout.groups] == [
        "DATA_PARALLEL_GROUP_WITH_CP",
        "INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP",
        "DATA_PARALLEL_GROUP",
        "CONTEXT_PARALLEL_GROUP",
        "MODEL_PARALLEL_GROUP",
        "TENSOR_MODEL_PARALLEL_GROUP",
        "PIPELINE_MODEL_PARALLEL_GROUP",
        "EMBEDDING_GROUP",
        "POSITION_EMBEDDING_GROUP",
        "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP",
        "TENSOR_AND_DATA_PARALLEL_GROUP",
        "TENSOR_AND_CONTEXT_PARALLEL_GROUP",
        "EXPERT_MODEL_PARALLEL_GROUP",
        "EXPERT_TENSOR_PARALLEL_GROUP",
        "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP",
        "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP",
        "EXPERT_DATA_PARALLEL_GROUP",
        "INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP",
        "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP",
    ]
    labels = [g.label for g in layout.groups]
    assert labels[:4] == ["DP-CP", "INTRA_DP-CP", "DP", "CP"]
    assert {"TP", "PP", "EMB", "MP", "EP", "ETP", "EDP"} <= set(labels)


def test_version_layouts():
    old = megatron.layout(cfg_of("0.12.3", world=8, tp=2, instances=2))
    kinds = [g.kind for g in old.groups]
    assert kinds[:4] == [
        "DATA_PARALLEL_GROUP",
        "DATA_PARALLEL_GROUP_WITH_CP",
        "INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP",
        "INTER_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP",
    ]
    assert "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP" not in kinds
    new = megatron.layout(cfg_of("0.19.0", world=8, tp=2, ep=2))
    kinds = [g.kind for g in new.groups]
    assert kinds[0] == "GTP_WEIGHT_REMAT_GROUP"
    assert kinds.index("EXPERT_GTP_WEIGHT_REMAT_GROUP") < kinds.index("EXPERT_MODEL_PARALLEL_GROUP")
    assert "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP_WITH_EGTP" in kinds
    assert cfg_of("0.16.1", world=8).layout_version == megatron.LAYOUT_CURRENT
    with pytest.raises(megatron.LayoutError, match=r"before core 0\.12"):
        megatron.layout(cfg_of("0.9.0", world=8))


def test_hybrid_context_parallel_groups():
    layout = megatron.layout(
        megatron.resolve(
            {
                "world_size": Param("world_size", 8),
                "context_parallel_size": Param("c", 2),
                "hybrid_context_parallel": Param("h", True),
            },
            "0.16.1",
        )
    )
    g = {x.kind: x.ranks for x in layout.groups}
    assert g["DATA_PARALLEL_GROUP_WITH_CP"] == [list(range(8))]
    assert g["HYBRID_DP_CP_GROUP_2"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert g["HYBRID_DP_CP_GROUP_4"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert g["CONTEXT_PARALLEL_GROUP"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert g["DATA_PARALLEL_GROUP"] == [[0, 2, 4, 6], [1, 3, 5, 7]]


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (dict(world=24, tp=4, pp=2, cp=2), r"world_size \(24\) is not divisible by 16"),
        (dict(world=24, ep=16), r"expert_tensor_model_pipeline_parallel size \(16\)"),
        (
            dict(world=16, tp=2, pp=2, ep=4, etp=1, order="tp-cp-ep-pp-dp"),
            "data parallel size of the attention and moe layers must be the same",
        ),
        (dict(world=8, tp=2, instances=3), "partial DistOpt shard factor"),
        (dict(world=0), "world size is unknown"),
    ],
)
def test_impossible_layouts_raise(sizes: dict, message: str):
    with pytest.raises(megatron.LayoutError, match=message):
        megatron.layout(cfg_of(**sizes))


def test_placement_is_torchrun_order():
    cfg = cfg_of(nnodes=2, nproc=8, tp=2, cp=2, pp=2, ep=2)
    assert cfg.world_size == 16
    assert cfg.params["world_size"].source.kind == "inferred"
    places = megatron.layout(cfg, {1: "gpu-b"}).placement
    assert [(p.rank, p.node, p.gpu, p.host) for p in places[7:9]] == [
        (7, 0, 7, "node0"),
        (8, 1, 0, "gpu-b"),
    ]


def test_world_from_log_infers_processes_per_node():
    cfg = cfg_of(world=32, nnodes=4)
    assert cfg["nproc_per_node"] == 8
    assert "world_size / nnodes" in cfg.src("nproc_per_node")


def test_rewrites_are_recorded():
    cfg = megatron.resolve(
        {
            "world_size": Param("world_size", 8),
            "sequence_parallel": Param("sequence_parallel", True),
            "num_layers": Param("num_layers", 32),
            "pipeline_model_parallel_size": Param("p", 4),
            "num_layers_per_virtual_pipeline_stage": Param("v", 2),
        }
    )
    assert cfg["sequence_parallel"] is False
    assert cfg["expert_tensor_parallel_size"] == 1
    assert cfg["virtual_pipeline_model_parallel_size"] == 4
    assert any("Disabling sequence parallelism" in r for r in cfg.rewrites)
    assert cfg["tp_size"] == 1 and cfg["pp_size"] == 4  # the names the shared pipeline uses


def test_coordinates_and_tokens():
    cfg = cfg_of(world=16, tp=2, cp=2, pp=2, ep=2)
    assert megatron.coordinates(cfg, 11) == {
        "pp": 1, "dp": 0, "cp": 1, "tp": 1, "edp": 0, "ep": 1, "etp": 1,
    }  # fmt: skip
    assert megatron.coordinate_tokens(cfg, 11) == [
        "PP1",
        "DP0",
        "CP1",
        "TP1",
        "EDP0",
        "EP1",
        "ETP1",
    ]
    assert megatron.coordinate_tokens(cfg_of(world=1), 0) == ["TP0"]


def test_layer_split_follows_megatron():
    cfg = megatron.resolve(
        {
            "world_size": Param("w", 4),
            "pipeline_model_parallel_size": Param("p", 4),
            "decoder_first_pipeline_num_layers": Param("f", 13),
        }
    )
    assert cfg.layer_split(61, 4) == [13, 16, 16, 16]
    even = cfg_of(world=4, pp=4)
    assert even.layer_split(32, 4) == [8, 8, 8, 8]
