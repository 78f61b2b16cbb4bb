"""A deliberately naive TensorRT-LLM group builder, written from Mapping's range formulas.

It shares no code with diagnose/: the nested loops and `range(start, stop, step)` calls of
the reference (engines.md §3.3) for each of the three mapping.py versions, in the order
`_init_parallel_groups` lists them.
"""

from __future__ import annotations


def naive_groups(
    tp: int,
    pp: int = 1,
    cp: int = 1,
    moe_tp: int = -1,
    moe_ep: int = -1,
    cluster: int = -1,
    version: str = "c",
    helix: bool = False,
) -> dict[str, list[list[int]]]:
    """kind -> rank lists; version "a" (first Mapping), "b" (MpiTopology), "c" (CP innermost)."""
    w = tp * pp * cp
    cluster = 1 if cluster == -1 else cluster
    moe_world = tp if version == "a" or not helix else tp * cp
    if moe_tp == -1 and moe_ep == -1:
        moe_tp, moe_ep = moe_world // cluster, 1
    elif moe_tp == -1:
        moe_tp = moe_world // (moe_ep * cluster)
    elif moe_ep == -1:
        moe_ep = moe_world // (moe_tp * cluster)
    m = moe_tp * moe_ep * cluster
    out: dict[str, list[list[int]]] = {}
    out["pp_group"] = [list(range(i, w, tp * cp)) for i in range(tp * cp)]
    if version == "c":
        out["cp_group"] = [
            list(range(i * tp * cp + j * cp, i * tp * cp + (j + 1) * cp))
            for i in range(pp)
            for j in range(tp)
        ]
        out["tp_group"] = [
            list(range(i * tp * cp + j, (i + 1) * tp * cp + j, cp))
            for i in range(pp)
            for j in range(cp)
        ]
    else:
        out["cp_group"] = [
            list(range(i * tp * cp + j, (i + 1) * tp * cp + j, tp))
            for i in range(pp)
            for j in range(tp)
        ]
        out["tp_group"] = [
            list(range(i * tp * cp + j * tp, i * tp * cp + (j + 1) * tp))
            for i in range(pp)
            for j in range(cp)
        ]
    out["moe_tp_group"] = [
        list(range(i * m + j, (i + 1) * m, cluster * moe_ep))
        for i in range(pp)
        for j in range(cluster * moe_ep)
    ]
    if version == "a":
        out["moe_cluster_group"] = [
            list(range(i * m + j * cluster, i * m + (j + 1) * cluster))
            for i in range(pp)
            for j in range(moe_tp)
        ]
    else:
        out["moe_cluster_group"] = [
            list(range(i * m + j * cluster * moe_ep, i * m + (j + 1) * cluster * moe_ep))
            for i in range(pp)
            for j in range(moe_tp)
        ]
    out["moe_ep_group"] = [
        list(
            range(
                i * m + j * cluster * moe_ep + k * moe_ep,
                i * m + j * cluster * moe_ep + (k + 1) * moe_ep,
            )
        )
        for i in range(pp)
        for j in range(moe_tp)
        for k in range(cluster)
    ]
    return out


CREATION_ORDER = [
    "world",
    "pp_group",
    "cp_group",
    "tp_group",
    "moe_tp_group",
    "moe_cluster_group",
    "moe_ep_group",
]
