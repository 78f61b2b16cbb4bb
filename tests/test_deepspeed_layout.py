"""DeepSpeed layouts against groups.py's documented examples and a naive reference."""

from __future__ import annotations

import itertools

import pytest

from diagnose.engines import deepspeed
from diagnose.model import Param
from tests.deepspeed_reference import naive_groups


def cfg(**values):
    return deepspeed.resolve({k: Param(k, v) for k, v in values.items()})


def groups_of(c) -> dict[str, object]:
    return {g.kind: g for g in deepspeed.layout(c).groups}


def test_groups_docstring_world16_ep2():
    g = groups_of(cfg(dist_world_size=16, ep_size=2))
    assert g["expert_parallel"].ranks[:5] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert g["expert_data_parallel"].ranks == [list(range(0, 16, 2)), list(range(1, 16, 2))]
    assert g["data_parallel"].ranks == [list(range(16))]


def test_creation_order_moe_before_the_data_parallel_clone():
    c = cfg(dist_world_size=8, ep_size=4, zero_stage=3, zero_hpz_partition_size=4)
    kinds = [g.kind for g in deepspeed.layout(c).groups]
    assert kinds == [
        "world",
        "expert_data_parallel",
        "expert_parallel",
        "data_parallel",
        "zero_param_intra_parallel",
    ]


def test_pipeline_grid_examples():
    g = groups_of(cfg(dist_world_size=8, pp_size=2))
    assert g["pipe_parallel"].ranks == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert g["data_parallel"].ranks == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert g["model_parallel"].ranks == g["pipe_parallel"].ranks
    assert g["slice_parallel"].ranks == [[r] for r in range(8)]


def test_no_moe_is_plain_data_parallel():
    c = cfg(dist_world_size=16, zero_stage=3)
    assert [g.kind for g in deepspeed.layout(c).groups] == ["world", "data_parallel"]
    assert c.dp == 16


def test_world_from_the_launcher_in_order_of_trust():
    c = cfg(num_gpus=8, nnodes=2)
    assert c.world == 16 and c.params["dist_world_size"].source.kind == "inferred"
    c = cfg(world_info={"worker-0": [0, 1, 2, 3], "worker-1": [0, 1, 2, 3]})
    assert c.world == 8 and c["nnodes"] == 2
    place = deepspeed.placement(c)
    assert [(p.host, p.gpu) for p in place][3:5] == [("worker-0", 3), ("worker-1", 0)]
    c = cfg(cuda_visible_devices="2,3,4,5")
    assert c.world == 4 and [p.gpu for p in deepspeed.placement(c)] == [2, 3, 4, 5]
    c = cfg(world_size=8, pp_size=2)
    assert c.world == 16
    with pytest.raises(deepspeed.LayoutError, match="world size is unknown"):
        deepspeed.layout(cfg())


def test_batch_arithmetic_fills_in_like_deepspeed_config():
    c = cfg(dist_world_size=8, train_batch_size=64, train_micro_batch_size_per_gpu=3)
    assert c.batch() == (64, 3, 2)
    c = cfg(dist_world_size=8, train_micro_batch_size_per_gpu=4, gradient_accumulation_steps=2)
    assert c.batch() == (64, 4, 2)
    c = cfg(dist_world_size=16, pp_size=2, train_batch_size=64)
    assert c.batch() == (64, 8, 1)


def test_coordinates_and_tokens():
    c = cfg(dist_world_size=8, ep_size=4)
    assert deepspeed.coordinates(c, 6) == {"dp": 6, "edp": 1, "ep": 2}
    assert deepspeed.coordinate_tokens(c, 6) == ["DP6", "EDP1", "EP2"]
    c = cfg(dist_world_size=8, pp_size=2)
    assert deepspeed.coordinate_tokens(c, 5) == ["PP1", "DP1"]


def test_layer_split_is_partition_uniform():
    assert deepspeed.layer_split(30, 4) == [8, 8, 7, 7]


def _configs() -> list[tuple[int, int | None, int, int, int, bool, int]]:
    out = []
    for world, ep, pp, hpz, stage, dbe, tp in itertools.product(
        (4, 8, 16, 32), (None, 1, 2, 4, 8), (1, 2, 4), (1, 2, 8), (0, 3), (False, True), (1, 2, 4)
    ):
        if world % (pp * tp) or (pp > 1 and tp > 1):
            continue
        if ep is not None and ((world // pp) % ep or tp > 1):
            continue
        if dbe and ep is None:
            continue
        if hpz > 1 and (stage != 3 or world % hpz):
            continue
        out.append((world, ep, pp, hpz, stage, dbe, tp))
    return out


CONFIGS = _configs()


def test_enough_configurations():
    assert len(CONFIGS) >= 100


@pytest.mark.parametrize(("world", "ep", "pp", "hpz", "stage", "dbe", "tp"), CONFIGS)
def test_layout_matches_naive_reference(world, ep, pp, hpz, stage, dbe, tp):
    values = {
        "dist_world_size": world,
        "pp_size": pp,
        "zero_hpz_partition_size": hpz,
        "zero_stage": stage,
        "use_data_before_expert_parallel_": dbe,
        "autotp_size": tp,
    }
    if ep is not None:
        values["ep_size"] = ep
    layout = deepspeed.layout(cfg(**values))
    got = [(g.kind, g.ranks) for g in layout.groups]
    assert got == naive_groups(world, ep, pp, hpz, stage, dbe, tp)
    for g in layout.groups:
        members = sorted(r for ranks in g.ranks for r in ranks)
        assert members == list(range(world)), g.kind


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"dist_world_size": 12, "ep_size": 8}, "12 is not divisible by 8"),
        ({"dist_world_size": 8, "ep_size": 64}, "8 is not divisible by 64"),
        ({"dist_world_size": 8, "pp_size": 3}, "not divisible by autotp × stages × SP = 3"),
        ({"dist_world_size": 8, "ep_size": 2, "autotp_size": 2}, "not modelled"),
    ],
)
def test_refused_sizes_give_no_layout(values, needle):
    with pytest.raises(deepspeed.LayoutError, match=needle):
        deepspeed.layout(cfg(**values))
