"""A deliberately naive vLLM group builder, written from the formulas in the reference.

It shares no code with diagnose/: every group kind is a plain nested loop over vLLM's
coordinates with rank(d, p, c, t) = ((d * pp + p) * pcp + c) * tp + t, the loop nest being
the axis order that `all_ranks.transpose(i, j).reshape(-1, size)` enumerates for that kind
(the kind's own axis innermost). Groups are listed in vLLM's creation order per release.
"""

from __future__ import annotations


def naive_groups(
    tp: int,
    pp: int = 1,
    dp: int = 1,
    pcp: int = 1,
    dcp: int = 1,
    moe: bool = True,
    eplb: bool = False,
    release: tuple[int, ...] = (0, 33, 0),
) -> dict[str, list[list[int]]]:
    """kind -> rank lists of one torch world, in creation order (dict order)."""
    if release >= (0, 14) and not moe:
        dp = 1  # dense DP replicas are separate worlds of pp * pcp * tp ranks
    if release < (0, 12):
        pcp = 1
    world = dp * pp * pcp * tp

    def r(d: int, p: int, c: int, t: int) -> int:
        return ((d * pp + p) * pcp + c) * tp + t

    out: dict[str, list[list[int]]] = {"world": [list(range(world))]}
    out["tp"] = [
        [r(d, p, c, t) for t in range(tp)] for d in range(dp) for p in range(pp) for c in range(pcp)
    ]
    if release < (0, 8):
        stride = world // pp
        out["pp"] = [list(range(i, world, stride)) for i in range(stride)]
        return out
    if release >= (0, 30):
        out["etp"] = out["tp"]
    if release >= (0, 10, 2):
        if dcp > 1 and release >= (0, 26):
            flat = [
                r(d, p, c, t)
                for d in range(dp)
                for p in range(pp)
                for t in range(tp)
                for c in range(pcp)
            ]
        else:
            flat = list(range(world))
        out["dcp"] = [flat[i : i + dcp] for i in range(0, world, dcp)]
    if release >= (0, 12):
        out["pcp"] = [
            [r(d, p, c, t) for c in range(pcp)]
            for d in range(dp)
            for p in range(pp)
            for t in range(tp)
        ]
    out["pp"] = [
        [r(d, p, c, t) for p in range(pp)] for d in range(dp) for t in range(tp) for c in range(pcp)
    ]
    out["dp"] = [
        [r(d, p, c, t) for d in range(dp)] for t in range(tp) for p in range(pp) for c in range(pcp)
    ]
    if release >= (0, 9) and (moe or release < (0, 14)):
        out["ep"] = [
            [r(d, p, c, t) for d in range(dp) for c in range(pcp) for t in range(tp)]
            for p in range(pp)
        ]
        if eplb and release >= (0, 17):
            out["eplb"] = out["ep"]
    return out
