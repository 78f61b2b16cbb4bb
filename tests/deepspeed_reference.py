"""A deliberately naive DeepSpeed group builder, written from groups.py's range formulas and
the pipeline grid's coordinate rule.

It shares no code with diagnose/: the loops of `_create_expert_and_data_parallel`'s legacy
path, `_create_zero_param_parallel_group` and `PipelineParallelGrid` written out by hand,
in DeepSpeedEngine's creation order.
"""

from __future__ import annotations


def naive_groups(
    world: int,
    ep: int | None = None,
    pp: int = 1,
    hpz: int = 1,
    zero_stage: int = 0,
    data_before_expert: bool = False,
    tp: int = 1,
) -> list[tuple[str, list[list[int]]]]:
    """(kind, rank lists) in creation order."""
    out: list[tuple[str, list[list[int]]]] = [("world", [list(range(world))])]
    dp = world // (pp * tp)
    if pp > 1:
        # rank = pipe * dp + data (axes ['pipe', 'data'], row-major)
        per_data = [[s * dp + d for s in range(pp)] for d in range(dp)]
        out.append(("model_parallel", per_data))
        out.append(("data_parallel", [[s * dp + d for d in range(dp)] for s in range(pp)]))
        out.append(("pipe_parallel", per_data))
        out.append(("slice_parallel", [[r] for r in range(world)]))
    elif tp > 1:
        out.append(("data_parallel", [list(range(t, world, tp)) for t in range(tp)]))
        blocks = [list(range(d * tp, (d + 1) * tp)) for d in range(dp)]
        out.append(("tensor_model_parallel", blocks))
        out.append(("model_parallel", blocks))
    if ep is not None:
        stride = world // pp
        ep_stride = stride // ep
        edp, eps = [], []
        for start in range(0, world, stride):
            for i in range(ep):
                if data_before_expert:
                    edp.append(list(range(start + i * ep_stride, start + (i + 1) * ep_stride)))
                else:
                    edp.append(list(range(start + i, start + stride, ep)))
        if data_before_expert:
            for start in range(0, world, stride):
                for i in range(ep_stride):
                    eps.append(list(range(start + i, start + stride, ep_stride)))
        else:
            for i in range(world // ep):
                eps.append(list(range(i * ep, (i + 1) * ep)))
        out.append(("expert_data_parallel", edp))
        out.append(("expert_parallel", eps))
    if pp == 1 and tp == 1:
        out.append(("data_parallel", [list(range(world))]))
    if zero_stage == 3 and hpz > 1:
        size = min(hpz, world)
        out.append(
            (
                "zero_param_intra_parallel",
                [list(range(i * size, (i + 1) * size)) for i in range(world // size)],
            )
        )
    return out
