"""A deliberately naive re-statement of Megatron-core's rank groups, for tests only.

Written from the definitions in Megatron's docstrings, not from rankmap's Mesh code: a
rank's coordinates come from `rank = i_0 + s_0·(i_1 + s_1·(…))` over the order string
(leftmost token fastest); a group of tokens S is the set of ranks whose coordinates
outside S agree. Members are listed by rank and groups by their smallest rank, which is
the order `generate_masked_orthogonal_rank_groups` produces (first masked token fastest,
first unmasked token fastest).
"""

from __future__ import annotations


def coordinates(rank: int, order: str, sizes: dict[str, int]) -> dict[str, int]:
    out = {}
    for token in order.split("-"):
        out[token] = rank % sizes[token]
        rank //= sizes[token]
    return out


def groups(world: int, order: str, sizes: dict[str, int], along: str) -> list[list[int]]:
    """Ranks that differ only along the tokens of `along` (e.g. "dp-cp")."""
    varying = set(along.split("-"))
    by_key: dict[tuple[int, ...], list[int]] = {}
    for rank in range(world):
        c = coordinates(rank, order, sizes)
        key = tuple(v for t, v in c.items() if t not in varying)
        by_key.setdefault(key, []).append(rank)
    return sorted((sorted(g) for g in by_key.values()), key=lambda g: g[0])


def megatron_groups(
    world: int,
    tp: int = 1,
    cp: int = 1,
    pp: int = 1,
    ep: int = 1,
    etp: int | None = None,
    order: str = "tp-cp-ep-dp-pp",
    instances: int = 1,
) -> dict[str, list[list[int]]]:
    """Every built group of core 0.13 – 0.18 by group_desc (aliases left out)."""
    etp = tp if etp is None else etp
    dp = world // (tp * cp * pp)
    edp = world // (etp * ep * pp)
    dense = {"tp": tp, "cp": cp, "ep": 1, "dp": dp, "pp": pp}
    expert = {"tp": etp, "cp": 1, "ep": ep, "dp": edp, "pp": pp}

    def d(along: str) -> list[list[int]]:
        return groups(world, order, dense, along)

    def e(along: str) -> list[list[int]]:
        return groups(world, order, expert, along)

    out = {
        "DATA_PARALLEL_GROUP_WITH_CP": d("dp-cp"),
        "DATA_PARALLEL_GROUP": d("dp"),
        "CONTEXT_PARALLEL_GROUP": d("cp"),
        "MODEL_PARALLEL_GROUP": d("tp-pp"),
        "TENSOR_MODEL_PARALLEL_GROUP": d("tp"),
        "PIPELINE_MODEL_PARALLEL_GROUP": d("pp"),
        "EMBEDDING_GROUP": [[g[0], g[-1]] if len(g) > 1 else [g[0]] for g in d("pp")],
        "POSITION_EMBEDDING_GROUP": [[g[0]] for g in d("pp")],
        "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP": d("tp-dp-cp"),
        "TENSOR_AND_DATA_PARALLEL_GROUP": d("tp-dp"),
        "TENSOR_AND_CONTEXT_PARALLEL_GROUP": d("tp-cp"),
        "EXPERT_MODEL_PARALLEL_GROUP": e("ep"),
        "EXPERT_TENSOR_PARALLEL_GROUP": e("tp"),
        "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP": e("tp-ep"),
        "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP": e("tp-ep-pp"),
        "EXPERT_DATA_PARALLEL_GROUP": e("dp"),
    }
    if instances > 1:
        size = dp * cp // instances
        out["INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP"] = [
            g[i : i + size] for g in d("dp-cp") for i in range(0, len(g), size)
        ]
        inner = edp // instances
        out["HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L0"] = [
            g[i : i + inner] for g in e("dp") for i in range(0, len(g), inner)
        ]
        out["HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L1"] = [
            g[i::inner] for g in e("dp") for i in range(inner)
        ]
    per_instance = edp // instances
    tep = e("tp-ep-pp")
    out["INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP"] = [
        [r for g in tep[i : i + per_instance] for r in g] for i in range(0, len(tep), per_instance)
    ]
    return out
