"""SGLang's own start-up checks, with SGLang's own messages.

A configuration that fails one of these never gets past ServerArgs; saying so before
launch, in the words the user would see in the traceback, saves a node allocation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from diagnose.engines.sglang import LAYOUT_CURRENT, LAYOUT_V0523, SGLangConfig
from diagnose.model import Finding
from rules.base import Context, Rule


@dataclass(frozen=True)
class Condition:
    """One failing condition and the text SGLang raises for it."""

    fails: Callable[[SGLangConfig], bool]
    message: Callable[[SGLangConfig], str]
    params: tuple[str, ...]


def _cp_on(c: SGLangConfig) -> bool:
    return c["attn_cp_size"] > 1


def _dsa_cp(c: SGLangConfig) -> bool:
    return bool(
        c["enable_nsa_prefill_context_parallel"] or c["enable_dsa_prefill_context_parallel"]
    )


def _any_prefill_cp(c: SGLangConfig) -> bool:
    return bool(c["enable_prefill_cp"] or c["enable_prefill_context_parallel"] or _dsa_cp(c))


def _validation_rule(
    rule_id: str, title: str, what: str, why: str, fix: str, conditions: tuple[Condition, ...]
) -> Rule:
    def check(ctx: Context) -> Iterable[Finding]:
        for cond in conditions:
            try:
                failed = cond.fails(ctx.cfg)
            except (TypeError, ZeroDivisionError):
                continue  # a malformed size is reported by RM013
            if failed:
                yield rule.finding(
                    f"SGLang refuses to start: {cond.message(ctx.cfg)}",
                    ctx.evidence_for(*cond.params),
                )

    rule = Rule(rule_id, title, "error", what, why, fix, check, engines=("sglang",))
    return rule


def _divisible(a: int, b: int) -> bool:
    return b > 0 and a % b == 0


RULES: tuple[Rule, ...] = (
    _validation_rule(
        "RM001",
        "tp_size × pp_size must divide evenly over the nodes",
        "`(tp_size × pp_size) % nnodes == 0` — SGLang's ServerArgs check.",
        "Each node launches tp_size × pp_size / nnodes schedulers; a remainder has no node to "
        "run on (--tp 12 on 5 nodes would be 2.4 ranks per node), so SGLang asserts before "
        "loading anything.",
        "Choose --tp-size × --pp-size as a multiple of --nnodes (e.g. --tp 16 on 2 nodes).",
        (
            Condition(
                lambda c: not _divisible(c["tp_size"] * c["pp_size"], c["nnodes"]),
                lambda c: "tp_size must be divisible by number of nodes",
                ("tp_size", "pp_size", "nnodes"),
            ),
        ),
    ),
    _validation_rule(
        "RM002",
        "DP replicas cannot span nodes",
        "`dp_size > 1` without DP attention on more than one node.",
        "Without DP attention SGLang's DataParallelController launches dp_size separate worlds "
        "on one node only; multi-node DP is only supported as attention DP inside one TP group: "
        "--tp 8 --dp 2 --nnodes 2 is refused, --tp 16 --dp 2 --enable-dp-attention --nnodes 2 is "
        "not.",
        "Run one SGLang server per node behind a router (sglang_router), or use "
        "--enable-dp-attention (0.5.23+: --attn-dp-size) so DP lives inside the TP group.",
        (
            Condition(
                lambda c: c["dp_size"] > 1 and c["nnodes"] != 1 and not c["enable_dp_attention"],
                lambda c: (
                    "multi-node data-parallel replicas are not supported; use attention DP "
                    "(--attn-dp-size) across nodes"
                    if c.layout_version == LAYOUT_V0523
                    else "multi-node data parallel is not supported unless dp attention!"
                ),
                ("dp_size", "nnodes", "enable_dp_attention"),
            ),
        ),
    ),
    _validation_rule(
        "RM003",
        "Attention DP must divide the TP group",
        "With DP attention, `tp_size % dp_size == 0` (attention DP groups are carved out of "
        "the TP group).",
        "Each attention-DP rank gets tp_size / dp_size GPUs for its attention; SGLang asserts "
        "this with a bare `assert`, so the traceback shows no message at all (--tp 12 --dp 8 "
        "would give 1.5 GPUs each).",
        "Pick --dp-size as a divisor of --tp-size (e.g. --tp 12 --dp 4, 6 or 12).",
        (
            Condition(
                lambda c: c.attn_dp_size > 1 and not _divisible(c["tp_size"], c.attn_dp_size),
                lambda c: (
                    f"tp_size ({c['tp_size']}) is not divisible by the attention DP size "
                    f"({c.attn_dp_size}); SGLang's `assert self.tp_size % self.dp_size == 0` "
                    "fails with an empty AssertionError"
                ),
                ("tp_size", "dp_size", "attn_dp_size", "enable_dp_attention"),
            ),
        ),
    ),
    _validation_rule(
        "RM004",
        "Attention CP must divide the attention-DP share of TP",
        "With attn_cp_size > 1: `tp_size % attn_cp_size == 0` and "
        "`tp_size % (dp_size × attn_cp_size) == 0`.",
        "ATTN_CP groups are carved from each attention-DP block of the TP group: "
        "attn_tp_size = tp_size / attn_dp_size / attn_cp_size must be a whole number. SGLang "
        "uses dp_size here even when DP attention is off (--tp 8 --dp 8 --attn-cp-size 2 needs "
        "16).",
        "Choose --attn-cp-size so that --tp-size is a multiple of dp × attn_cp "
        "(e.g. --tp 8 --dp 2 --attn-cp-size 2).",
        (
            Condition(
                lambda c: _cp_on(c) and not _divisible(c["tp_size"], c["attn_cp_size"]),
                lambda c: "tp_size must be divisible by attn_cp_size",
                ("tp_size", "attn_cp_size"),
            ),
            Condition(
                lambda c: (
                    _cp_on(c)
                    and _divisible(c["tp_size"], c["attn_cp_size"])
                    and not _divisible(
                        c["tp_size"],
                        (c.attn_dp_size if c.layout_version == LAYOUT_V0523 else c["dp_size"])
                        * c["attn_cp_size"],
                    )
                ),
                lambda c: (
                    "tp_size must be divisible by attn_dp_size * attn_cp_size"
                    if c.layout_version == LAYOUT_V0523
                    else "tp_size must be divisible by dp_size * attn_cp_size"
                ),
                ("tp_size", "dp_size", "attn_cp_size"),
            ),
        ),
    ),
    _validation_rule(
        "RM005",
        "MoE DP must fit the TP group",
        "With moe_dp_size > 1: tp divisible by moe_dp, ep × moe_dp ≤ tp, pp == 1, and "
        "ep × moe_dp == tp when ep > 1; and attn_cp_size == moe_dp_size unless moe_dp_size == 1.",
        "The MoE mesh (moe_dp, ep, moe_tp) must tile the TP group exactly; SGLang supports "
        "MoE DP only without PP and only matched with attention CP (tp 8 = moe_dp 2 × ep 4 × "
        "moe_tp 1).",
        "Set --moe-dp-size equal to --attn-cp-size (or leave it at 1: MOE_DP then aliases "
        "ATTN_CP), with --ep-size = tp / moe_dp.",
        (
            Condition(
                lambda c: c["moe_dp_size"] > 1 and not _divisible(c["tp_size"], c["moe_dp_size"]),
                lambda c: "tp_size must be divisible by moe_dp_size",
                ("tp_size", "moe_dp_size"),
            ),
            Condition(
                lambda c: c["moe_dp_size"] > 1 and c["ep_size"] * c["moe_dp_size"] > c["tp_size"],
                lambda c: "ep_size * moe_dp_size must be less than or equal to tp_size",
                ("tp_size", "ep_size", "moe_dp_size"),
            ),
            Condition(
                lambda c: c["moe_dp_size"] > 1 and c["pp_size"] != 1,
                lambda c: "PP is not supported with context parallelism",
                ("moe_dp_size", "pp_size"),
            ),
            Condition(
                lambda c: (
                    c["moe_dp_size"] > 1
                    and c["ep_size"] > 1
                    and c["ep_size"] * c["moe_dp_size"] < c["tp_size"]
                ),
                lambda c: "ep_size * moe_dp_size must be equal to tp_size",
                ("tp_size", "ep_size", "moe_dp_size"),
            ),
            Condition(
                lambda c: (
                    c.layout_version in (LAYOUT_CURRENT, LAYOUT_V0523)
                    and c["attn_cp_size"] != c["moe_dp_size"]
                    and c["moe_dp_size"] != 1
                ),
                lambda c: "attn_cp_size != moe_dp_size is only supported when moe_dp_size == 1",
                ("attn_cp_size", "moe_dp_size"),
            ),
        ),
    ),
    _validation_rule(
        "RM006",
        "moe_dense_tp_size takes only None, 1 or tp_size",
        "`moe_dense_tp_size in (None, 1, tp_size)`.",
        "The dense MLP layers under DP attention run either fully replicated per rank (1) or "
        "over the whole TP group; other widths (e.g. 4 of tp 8) have no kernel path in SGLang.",
        "Use --moe-dense-tp-size 1 (recommended with DP attention across nodes) or drop it.",
        (
            Condition(
                lambda c: c["moe_dense_tp_size"] not in (None, 1, c["tp_size"]),
                lambda c: "moe_dense_tp_size only supports None, 1, or tp_size currently",
                ("moe_dense_tp_size", "tp_size"),
            ),
        ),
    ),
    _validation_rule(
        "RM007",
        "Options that need DP attention or EP",
        "--enable-dp-lm-head needs DP attention; --enable-eplb needs ep_size > 1; the "
        "flashinfer all-to-all needs DP attention with dp_size == tp_size.",
        "These features work on the attention-DP or EP groups; without those groups SGLang "
        "asserts at start-up (flashinfer's all-to-all needs one rank per DP rank: dp 8 on tp 8).",
        "Enable DP attention / EP as the message says, or drop the option.",
        (
            Condition(
                lambda c: c["enable_dp_lm_head"] and not c["enable_dp_attention"],
                lambda c: "Please enable dp attention when setting enable_dp_lm_head. ",
                ("enable_dp_lm_head", "enable_dp_attention"),
            ),
            Condition(
                lambda c: c["enable_eplb"] and c["ep_size"] <= 1,
                lambda c: "enable_eplb requires ep_size > 1 (bare `assert self.ep_size > 1`)",
                ("enable_eplb", "ep_size"),
            ),
            Condition(
                lambda c: (
                    c["moe_a2a_backend"] == "flashinfer"
                    and not (c["enable_dp_attention"] and c["dp_size"] == c["tp_size"])
                ),
                lambda c: (
                    "Flashinfer MoE A2A is only supported with dp_size == tp_size and "
                    "--enable-dp-attention"
                ),
                ("moe_a2a_backend", "dp_size", "tp_size", "enable_dp_attention"),
            ),
            Condition(
                lambda c: c["enable_pdmux"] and c["pp_size"] > 1,
                lambda c: (
                    "PD-Multiplexing is only supported with pipeline parallelism disabled "
                    "(pp_size=1)."
                ),
                ("enable_pdmux", "pp_size"),
            ),
        ),
    ),
    _validation_rule(
        "RM008",
        "Prefill context parallel settings",
        "--enable-prefill-cp needs --cp-strategy; the two legacy CP flags are exclusive; DSA CP "
        "stays on one machine (tp_size ≤ 8); interleave DSA CP needs dp_size == 1; CP is "
        "prefill-only under PD disaggregation.",
        "Prefill CP turns the whole TP group into one CP group (attn_cp_size = tp / dp); SGLang "
        "limits it to a single NVLink domain (tp ≤ 8) because cross-machine CP had precision "
        "issues.",
        "Set --cp-strategy zigzag|interleave, keep --tp ≤ 8 for DSA CP, and use CP only on "
        "the prefill side.",
        (
            Condition(
                lambda c: c["enable_prefill_cp"] and c["cp_strategy"] is None and not _dsa_cp(c),
                lambda c: "--cp-strategy must be set when --enable-prefill-cp is enabled.",
                ("enable_prefill_cp", "cp_strategy"),
            ),
            Condition(
                lambda c: bool(c["enable_prefill_context_parallel"] and _dsa_cp(c)),
                lambda c: (
                    "--enable-prefill-context-parallel and "
                    "--enable-nsa-prefill-context-parallel are mutually exclusive."
                ),
                ("enable_prefill_context_parallel", "enable_nsa_prefill_context_parallel"),
            ),
            Condition(
                lambda c: _dsa_cp(c) and c["tp_size"] > 8,
                lambda c: (
                    "Context parallel only supports single machine (tp_size <= 8). "
                    "Cross-machine CP has precision issues."
                ),
                ("tp_size", "enable_nsa_prefill_context_parallel"),
            ),
            Condition(
                lambda c: (
                    _dsa_cp(c)
                    and (
                        c["cp_strategy"] == "interleave"
                        or c["dsa_prefill_cp_mode"] == "round-robin-split"
                    )
                    and c["dp_size"] != 1
                ),
                lambda c: "interleave DSA CP does not support DP attention.",
                ("cp_strategy", "dp_size"),
            ),
            Condition(
                lambda c: _any_prefill_cp(c) and c["disaggregation_mode"] == "decode",
                lambda c: (
                    "CP is only supported for prefill when PD disaggregation, please "
                    "remove --enable-prefill-cp."
                ),
                ("enable_prefill_cp", "disaggregation_mode"),
            ),
        ),
    ),
    _validation_rule(
        "RM009",
        "Replica DP and attention DP together",
        "0.5.23+: --dp-size M with --attn-dp-size N, both > 1.",
        "From 0.5.23 --dp-size counts whole replicas and --attn-dp-size the attention-DP "
        "groups inside one; SGLang rejects the combination (e.g. --dp 2 --attn-dp-size 2).",
        "Use --attn-dp-size alone (one world) or --dp-size alone (replicas).",
        (
            Condition(
                lambda c: (
                    c.layout_version == LAYOUT_V0523 and c["dp_size"] > 1 and c["attn_dp_size"] > 1
                ),
                lambda c: (
                    f"--dp-size {c['dp_size']} with --attn-dp-size {c['attn_dp_size']}: "
                    "data-parallel replicas combined with attention data parallelism are not "
                    "supported."
                ),
                ("dp_size", "attn_dp_size"),
            ),
        ),
    ),
)
