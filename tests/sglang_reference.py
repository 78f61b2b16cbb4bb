"""A deliberately naive SGLang group builder, written from the coordinate formulas.

It shares no code with diagnose/: plain nested loops over SGLang's per-process
coordinates (tp_rank = (attn_dp_rank * attn_cp + attn_cp_rank) * attn_tp + attn_tp_rank,
and the same for the MoE side), in the loop order SGLang's initialize_model_parallel
creates the groups, plus the alias rules written out by hand.
"""

from __future__ import annotations


def naive_groups(
    tp: int, pp: int = 1, attn_dp: int = 1, cp: int = 1, ep: int = 1, moe_dp: int = 1
) -> dict[str, tuple[list[list[int]], str | None]]:
    """kind -> (rank lists, alias target) for the current (attn_cp/moe_dp) layout."""
    atp = tp // attn_dp // cp
    mtp = tp // ep // moe_dp
    out: dict[str, tuple[list[list[int]], str | None]] = {}
    out["world"] = ([list(range(tp * pp))], None)
    out["tp"] = ([[s * tp + j for j in range(tp)] for s in range(pp)], None)

    attn_cp = []
    for s in range(pp):
        for d in range(attn_dp):
            for t in range(atp):
                attn_cp.append([s * tp + (d * cp + c) * atp + t for c in range(cp)])
    attn_tp = []
    for s in range(pp):
        for d in range(attn_dp):
            for c in range(cp):
                attn_tp.append([s * tp + (d * cp + c) * atp + t for t in range(atp)])
    moe_dp_g = []
    for s in range(pp):
        for e in range(ep):
            for t in range(mtp):
                moe_dp_g.append([s * tp + (m * ep + e) * mtp + t for m in range(moe_dp)])
    moe_ep = []
    for s in range(pp):
        for m in range(moe_dp):
            for t in range(mtp):
                moe_ep.append([s * tp + (m * ep + e) * mtp + t for e in range(ep)])
    moe_tp = []
    for s in range(pp):
        for m in range(moe_dp):
            for e in range(ep):
                moe_tp.append([s * tp + (m * ep + e) * mtp + t for t in range(mtp)])
    pp_g = [[t + s * tp for s in range(pp)] for t in range(tp)]

    out["attn_cp"] = (out["tp"][0], "tp") if cp == tp else (attn_cp, None)
    out["attention_tp"] = (out["tp"][0], "tp") if atp == tp else (attn_tp, None)
    if cp > moe_dp:
        out["moe_dp"] = (out["attn_cp"][0], "attn_cp")
    elif moe_dp == tp:
        out["moe_dp"] = (out["tp"][0], "tp")
    else:
        out["moe_dp"] = (moe_dp_g, None)
    out["moe_ep"] = (out["tp"][0], "tp") if ep == tp else (moe_ep, None)
    out["moe_tp"] = (out["tp"][0], "tp") if mtp == tp else (moe_tp, None)
    out["pp"] = (pp_g, None)
    return out


CREATION_ORDER = ["world", "tp", "attn_cp", "attention_tp", "moe_dp", "moe_ep", "moe_tp", "pp"]
