"""Size arithmetic that must hold before any group can exist."""

from __future__ import annotations

from collections.abc import Iterable

from diagnose.engines.sglang import structural_problems
from diagnose.model import Finding
from rules.base import Context, Rule


def _invariants(ctx: Context) -> Iterable[Finding]:
    c = ctx.cfg
    bad = [p for p in structural_problems(c) if "positive integer" in p]
    if bad:
        yield INVARIANTS.finding(
            "The parallel sizes are not positive integers: " + "; ".join(bad),
            ctx.evidence_for("tp_size", "pp_size", "dp_size", "ep_size", "attn_cp_size"),
        )
        return
    tp, adp, cp, ep, mdp = (
        c["tp_size"],
        c.attn_dp_size,
        c["attn_cp_size"],
        c["ep_size"],
        c["moe_dp_size"],
    )
    if tp % (adp * cp):
        atp = tp / adp / cp
        yield INVARIANTS.finding(
            "parallel topology is inconsistent: tp_size == attn_tp_size * attn_dp_size * "
            f"attn_cp_size cannot hold — {tp} / ({adp} × {cp}) = {atp:g} is not a whole "
            "attention-TP width, so no ATTN_TP / ATTN_CP group can be built.",
            ctx.evidence_for("tp_size", "dp_size", "attn_dp_size", "attn_cp_size"),
        )
    if tp % (ep * mdp):
        mtp = tp / ep / mdp
        yield INVARIANTS.finding(
            "parallel topology is inconsistent: tp_size == moe_ep_size * moe_dp_size * "
            f"moe_tp_size cannot hold — {tp} / ({ep} × {mdp}) = {mtp:g} is not a whole MoE-TP "
            "width, so no MOE_EP / MOE_TP group can be built.",
            ctx.evidence_for("tp_size", "ep_size", "moe_dp_size"),
        )


INVARIANTS = Rule(
    "RM010",
    "The attention and MoE meshes must both tile the TP group",
    "error",
    "tp_size = attn_tp_size × attn_dp_size × attn_cp_size = moe_ep_size × moe_dp_size × "
    "moe_tp_size, with whole numbers.",
    "SGLang lays the same TP ranks out twice, once for attention and once for the MoE "
    "layers; if either product differs from tp_size some ranks would have no place (tp 12 "
    "with dp 8 gives 1.5 attention ranks per DP rank) "
    "(current SGLang raises 'parallel topology is inconsistent').",
    "Pick --dp-size, --attn-cp-size, --ep-size and --moe-dp-size as divisors whose "
    "products divide --tp-size.",
    _invariants,
    engines=("sglang",),
)

RULES: tuple[Rule, ...] = (INVARIANTS,)
