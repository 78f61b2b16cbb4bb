"""vLLM's layout against the reference's executed examples and a naive reference."""

from __future__ import annotations

import pytest

from diagnose.engines import vllm
from diagnose.model import Param, Source
from parsers.hf_config import resolve_model
from tests.vllm_reference import naive_groups

MOE = resolve_model("deepseek-ai/DeepSeek-V3")
DENSE = resolve_model("meta-llama/Llama-3.1-8B-Instruct")
CLI = Source("command line")


def config(version: str | None = None, model=MOE, **sizes) -> vllm.VLLMConfig:
    names = {
        "tp": "tensor_parallel_size",
        "pp": "pipeline_parallel_size",
        "dp": "data_parallel_size",
        "pcp": "prefill_context_parallel_size",
        "dcp": "decode_context_parallel_size",
        "ep": "enable_expert_parallel",
        "eplb": "enable_eplb",
        "nnodes": "nnodes",
        "dpl": "data_parallel_size_local",
        "backend": "distributed_executor_backend",
        "partition": "pp_layer_partition",
    }
    given = {names[k]: Param(names[k], v, CLI) for k, v in sizes.items()}
    return vllm.resolve(given, version, model)


def groups(cfg: vllm.VLLMConfig) -> dict[str, list[list[int]]]:
    return {g.kind: g.ranks for g in vllm.layout(cfg).groups}


# §2.4 worked examples, executed with vLLM's own initialize_model_parallel.
def test_tp4_pp2_dp2_moe_two_nodes():
    cfg = config(tp=4, pp=2, dp=2, ep=True, nnodes=2)
    got = groups(cfg)
    assert list(got) == ["world", "tp", "etp", "dcp", "pcp", "pp", "dp", "ep"]
    assert got["tp"] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert got["dcp"] == got["pcp"] == [[r] for r in range(16)]
    assert got["pp"] == [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13], [10, 14], [11, 15]]
    assert got["dp"] == [[0, 8], [4, 12], [1, 9], [5, 13], [2, 10], [6, 14], [3, 11], [7, 15]]
    assert got["ep"] == [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]]
    assert vllm.coordinates(cfg, 13) == {
        "dp": 1, "pp": 1, "pcp": 0, "tp": 1, "etp": 1, "dcp": 0, "ep": 5
    }  # fmt: skip
    assert vllm.coordinate_tokens(cfg, 13) == ["DP1", "PP1", "TP1", "EP5"]
    place = vllm.placement(cfg)
    assert [(p.node, p.gpu) for p in place if p.rank in (7, 8)] == [(0, 7), (1, 0)]
    layout = vllm.layout(cfg)
    assert layout.world_size == 16 and layout.replicas == 1


def test_same_sizes_without_expert_parallel_keep_the_ep_group():
    cfg = config(tp=4, pp=2, dp=2, nnodes=2)
    got = groups(cfg)
    assert got["ep"] == [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]]
    assert cfg.ep_size == 1 and cfg.moe_tp_size == 8
    assert vllm.coordinate_tokens(cfg, 13) == ["DP1", "PP1", "TP1"]
    assert cfg.shape(MOE).ep_kind is None and "ep" in cfg.shape(MOE).allreduce_kinds


def test_dense_dp_is_two_worlds_since_0_14():
    cfg = config(tp=4, pp=2, dp=2, nnodes=2, model=DENSE)
    layout = vllm.layout(cfg)
    assert layout.world_size == 8 and layout.replicas == 2
    got = groups(cfg)
    assert "ep" not in got
    assert got["tp"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert got["pp"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert got["dp"] == [[r] for r in (0, 4, 1, 5, 2, 6, 3, 7)]
    assert [(p.replica, p.rank, p.node) for p in layout.placement][7:9] == [(0, 7, 0), (1, 0, 1)]
    assert cfg.rewrites


def test_dense_dp_before_0_14_is_one_world_with_an_ep_group():
    cfg = config("0.13.0", tp=4, pp=2, dp=2, model=DENSE)
    assert vllm.layout(cfg).world_size == 16
    assert groups(cfg)["ep"] == [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]]


def test_tp4_pcp2_dcp2_on_main_and_0_33():
    old = groups(config("0.25.0", tp=4, pcp=2, dcp=2))
    assert old["tp"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert old["dcp"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert old["pcp"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert old["ep"] == [list(range(8))]
    assert groups(config("0.33.0", tp=4, pcp=2, dcp=2))["dcp"] == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_0_33_tp2_pcp2_dcp2_dense():
    got = groups(config("0.33.0", tp=2, pcp=2, dcp=2, model=DENSE))
    assert got["tp"] == [[0, 1], [2, 3]] and got["etp"] == got["tp"]
    assert got["pcp"] == got["dcp"] == [[0, 2], [1, 3]]
    assert got["pp"] == got["dp"] == [[0], [2], [1], [3]]
    assert "ep" not in got


def test_0_33_dcp_spanning_tp_and_pcp_keeps_vllms_member_order():
    cfg = config("0.33.0", tp=2, pcp=2, dcp=4)
    got = groups(cfg)
    assert got["dcp"] == [[0, 2, 1, 3]]
    assert got["pcp"] == [[0, 2], [1, 3]] and got["ep"] == [[0, 1, 2, 3]]
    assert [vllm.coordinates(cfg, r)["dcp"] for r in range(4)] == [0, 2, 1, 3]


def test_0_33_tp4_dcp4_dp2():
    got = groups(config("0.33.0", tp=4, dcp=4, dp=2, ep=True))
    assert got["tp"] == got["dcp"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert got["dp"] == [[0, 4], [1, 5], [2, 6], [3, 7]] and got["ep"] == [list(range(8))]


CASES = [
    # (version, model, sizes)
    ("0.7.3", MOE, {"tp": 4, "pp": 2}),
    ("0.8.0", MOE, {"tp": 2, "pp": 2, "dp": 2}),
    ("0.8.3", DENSE, {"tp": 8, "pp": 2}),
    ("0.8.5", DENSE, {"tp": 2, "pp": 3, "dp": 2}),
    ("0.9.0", MOE, {"tp": 2, "pp": 2, "dp": 2, "ep": True}),
    ("0.10.1", DENSE, {"tp": 4, "dp": 2}),
    ("0.10.2", MOE, {"tp": 8, "dcp": 4}),
    ("0.11.2", MOE, {"tp": 4, "pp": 2, "dp": 2, "dcp": 2, "ep": True}),
    ("0.12.0", MOE, {"tp": 2, "pp": 2, "dp": 2, "pcp": 2}),
    ("0.13.0", DENSE, {"tp": 2, "pcp": 2, "dp": 2}),
    ("0.14.0", DENSE, {"tp": 2, "pp": 2, "dp": 3}),
    ("0.14.0", MOE, {"tp": 1, "dp": 8, "ep": True}),
    ("0.16.0", MOE, {"tp": 2, "pp": 3, "pcp": 2, "ep": True, "eplb": True}),
    ("0.17.0", MOE, {"tp": 2, "pp": 2, "dp": 2, "ep": True, "eplb": True}),
    ("0.20.0", MOE, {"tp": 4, "pcp": 2, "dcp": 4, "dp": 2}),
    ("0.25.0", MOE, {"tp": 2, "pp": 2, "pcp": 3, "dcp": 2, "dp": 2}),
    ("0.26.0", MOE, {"tp": 2, "pp": 2, "pcp": 3, "dcp": 3, "dp": 2}),
    ("0.28.0", MOE, {"tp": 2, "pcp": 2, "dcp": 4, "dp": 3, "ep": True}),
    ("0.30.0", DENSE, {"tp": 4, "pp": 2, "dp": 2}),
    ("0.31.0", MOE, {"tp": 8, "pp": 2, "dp": 2, "dcp": 8, "ep": True, "eplb": True}),
    ("0.33.0", MOE, {"tp": 2, "pp": 2, "pcp": 2, "dcp": 2, "dp": 2, "ep": True}),
    ("0.33.0", MOE, {"tp": 3, "pp": 2, "pcp": 2, "dp": 2}),
    ("0.33.0", DENSE, {"tp": 1, "pp": 4}),
    (None, MOE, {"tp": 16, "dp": 2, "ep": True, "nnodes": 4}),
]


@pytest.mark.parametrize(("version", "model", "sizes"), CASES)
def test_matches_naive_reference(version, model, sizes):
    cfg = config(version, model=model, **sizes)
    release = vllm.release_of(version)
    want = naive_groups(
        sizes["tp"],
        sizes.get("pp", 1),
        sizes.get("dp", 1),
        sizes.get("pcp", 1),
        sizes.get("dcp", 1),
        moe=model.is_moe,
        eplb=sizes.get("eplb", False),
        release=release,
    )
    assert groups(cfg) == want
    for g in vllm.layout(cfg).groups:
        if g.kind == "world":
            continue
        for rank in range(cfg.world_size):
            members = next(m for m in g.ranks if rank in m)
            coords = vllm.coordinates(cfg, rank)
            if g.kind in coords:
                assert members.index(rank) == coords[g.kind], (g.kind, rank)


def test_aliases_and_creation_order_by_release():
    assert list(groups(config("0.8.3", tp=2, pp=2))) == ["world", "tp", "pp", "dp"]
    assert list(groups(config("0.9.2", tp=2, dp=2))) == ["world", "tp", "pp", "dp", "ep"]
    order = list(groups(config("0.17.0", tp=2, dp=2, ep=True, eplb=True)))
    assert order == ["world", "tp", "dcp", "pcp", "pp", "dp", "ep", "eplb"]
    etp = vllm.layout(config(tp=2)).group("etp")
    assert etp is not None and etp.alias_of == "tp" and not etp.built
    assert vllm.layout(config(tp=2, dp=2, ep=True, eplb=True)).group("eplb").built


def test_world_size_and_placement_rules():
    # mp on one node: DP rank d starts at GPU d * pp * tp (pcp counted from 0.33 only).
    place = vllm.placement(config("0.32.0", tp=2, pcp=2, dp=2))
    assert [p.gpu for p in place] == [0, 1, 2, 3, 2, 3, 4, 5]
    place = vllm.placement(config("0.33.0", tp=2, pcp=2, dp=2))
    assert [p.gpu for p in place] == list(range(8))
    # --data-parallel-size-local below --data-parallel-size: the rest run on other nodes.
    place = vllm.placement(config(tp=4, dp=4, dpl=2, ep=True))
    assert [p.node for p in place] == [0] * 8 + [1] * 8
    assert [p.gpu for p in place][8:12] == [0, 1, 2, 3]
    # --nnodes splits the DP-major rank sequence into equal blocks, one DP rank over 2 nodes.
    place = vllm.placement(config(tp=16, nnodes=2))
    assert [(p.node, p.gpu) for p in place][7:9] == [(0, 7), (1, 0)]
    # Ray: the driver's node first, equal blocks.
    place = vllm.placement(config("0.8.3", tp=8, pp=2, nnodes=2, backend="ray"))
    assert {p.node for p in place if p.rank < 8} == {0} and {p.node for p in place[8:]} == {1}


def test_layer_split_and_partition_override():
    cfg = config(tp=8, pp=4)
    assert cfg.layer_split(61, 4) == [15, 15, 16, 15]
    assert cfg.layer_split(62, 4) == [15, 16, 16, 15]
    assert cfg.layer_split(63, 4) == [16, 16, 16, 15]
    assert cfg.layer_split(64, 4) == [16, 16, 16, 16]
    assert config(tp=8, pp=2, partition="30,31").layer_split(61, 2) == [30, 31]
    assert config(tp=8, pp=2, partition="x").layer_split(61, 2) == [31, 30]


def test_structural_problems_stop_the_layout():
    with pytest.raises(vllm.LayoutError, match="not divisible by dcp 3"):
        vllm.layout(config(tp=8, dcp=3))
    with pytest.raises(vllm.LayoutError, match="positive integer"):
        vllm.layout(config(tp=0))


def test_unknown_model_is_assumed_dense_unless_flags_say_moe():
    assert not config(model=None, tp=2)["is_moe"]
    assert config(model=None, tp=2, ep=True)["is_moe"]
    assert "assumed dense" in config(model=None, tp=2).src("is_moe")


def test_foreign_names_map_to_vllm_fields():
    inferred = Source("inferred", why="highest rank seen in the log prefixes")
    cfg = vllm.resolve(
        {
            "tensor_parallel_size": Param("tensor_parallel_size", 4, CLI),
            "pp_size": Param("pp_size", 2, inferred),
            "model_path": Param("model_path", "m", CLI),
        },
        None,
        None,
    )
    assert cfg["pp_size"] == 1 and cfg["tp_size"] == 4 and cfg["model"] == "m"
    only_prefixes = vllm.resolve({"tp_size": Param("tp_size", 8, inferred)}, None, None)
    assert only_prefixes.tp == 8


def test_external_launcher_and_external_dp_rank():
    # torchrun + external_launcher: no engine core resets a dense model's DP, one world.
    cfg = config(tp=2, dp=2, model=DENSE, backend="external_launcher")
    assert cfg.replicas == 1 and vllm.layout(cfg).world_size == 4
    assert groups(cfg)["dp"] == [[0, 2], [1, 3]]
    # --data-parallel-rank 1: this command starts DP rank 1 only; the others have no node.
    given = {
        "tensor_parallel_size": Param("tensor_parallel_size", 4, CLI),
        "data_parallel_size": Param("data_parallel_size", 2, CLI),
        "data_parallel_rank": Param("data_parallel_rank", 1, CLI),
    }
    cfg = vllm.resolve(given, None, MOE)
    place = vllm.placement(cfg)
    assert [p.node for p in place] == [None] * 4 + [0] * 4
    assert [p.gpu for p in place][4:] == [0, 1, 2, 3]
