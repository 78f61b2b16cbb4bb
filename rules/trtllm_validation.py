"""TensorRT-LLM's own start-up checks (`MappingBase.__init__`, the C++ world config), with
TensorRT-LLM's messages.

A configuration that fails one of these never reaches model loading: `Mapping` raises
while the LLM object is built, or the C++ runtime asserts `mpiSize == tp * pp` on every
rank. Saying so before launch, in the words the traceback would use, saves an allocation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from diagnose.engines.trtllm import (
    CP_TYPES,
    LAYOUT_MAPPING,
    SIZES,
    TrtllmConfig,
)
from diagnose.model import Finding
from rules.base import Context, Rule


@dataclass(frozen=True)
class Condition:
    """One failing condition and the text TensorRT-LLM raises for it."""

    fails: Callable[[TrtllmConfig], bool]
    message: Callable[[TrtllmConfig], str]
    params: tuple[str, ...]


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _given_bad(c: TrtllmConfig) -> list[str]:
    """Sizes given (not derived by Mapping) that are not positive integers.

    A size Mapping derived as 0 (moe_tp = 1 // 8 for --ep_size 8 on tp 1) is Mapping's own
    tiling failure, reported by RM602 in its words, not a bad input.
    """
    primary = ("tp_size", "pp_size", "cp_size")
    return [
        n
        for n in SIZES
        if not _positive(c[n])
        and (
            n in primary or c.params[n].source.kind not in ("engine rewrite", "inferred", "default")
        )
    ]


def _sized(c: TrtllmConfig) -> bool:
    """Every size an integer and none given broken: the arithmetic checks can run."""
    ints = all(isinstance(c[n], int) and not isinstance(c[n], bool) for n in SIZES)
    return ints and not _given_bad(c)


def _rule(
    rule_id: str,
    title: str,
    what: str,
    why: str,
    fix: str,
    conditions: tuple[Condition, ...],
    severity: str = "error",
    needs_sizes: bool = True,
) -> Rule:
    def check(ctx: Context) -> Iterable[Finding]:
        cfg = ctx.cfg
        if needs_sizes and not _sized(cfg):
            return
        for cond in conditions:
            if cond.fails(cfg):
                prefix = "TensorRT-LLM refuses to start: " if severity == "error" else ""
                yield rule.finding(prefix + cond.message(cfg), ctx.evidence_for(*cond.params))

    rule = Rule(rule_id, title, severity, what, why, fix, check, engines=("trtllm",))  # type: ignore[arg-type]
    return rule


def _world(c: TrtllmConfig) -> str:
    return f"{c['tp_size']} * {c['pp_size']} * {c['cp_size']}"


def _mpi_check(ctx: Context) -> Iterable[Finding]:
    """The MPI world against tp × pp × cp, from a command (mpirun -n) or the runtime's log."""
    c = ctx.cfg
    asserted = ctx.events_of("mpi_size_check")
    size = c["mpi_size"]
    if not _sized(c) and not asserted:
        return
    if size is not None and _sized(c) and size != c.world_size:
        yield MPI_WORLD.finding(
            f"TensorRT-LLM refuses to start: MPI size {size} != TP size {c['tp_size']} * PP size "
            f"{c['pp_size']} * CP Size {c['cp_size']} (the runtime's `mpiSize == tp * pp` "
            f"check; Mapping: world_size must equal to tp_size * pp_size * cp_size, but got "
            f"{size} != {_world(c)}.)",
            list(ctx.evidence_for("mpi_size", "tp_size", "pp_size", "cp_size")) + asserted[:2],
        )
    elif asserted:
        yield MPI_WORLD.finding(
            f"The runtime's world-size check failed: {asserted[0].text[-160:]}",
            asserted[:3] + list(ctx.evidence_for("mpi_size", "tp_size", "pp_size")),
        )


MPI_WORLD = Rule(
    "RM601",
    "The MPI world must be exactly tp × pp × cp ranks",
    "error",
    "mpirun's -n (or the runtime's `MPI size: N`) against tp_size × pp_size × cp_size.",
    "TensorRT-LLM starts one MPI rank per GPU and checks `mpiSize == tp * pp` (newer: "
    "× cp) before building anything: `mpirun -n 16 trtllm-serve … --tp_size 8` fails on all "
    "16 ranks, and `mpirun -n 4` with --tp_size 8 cannot form the TP group at all.",
    "Start mpirun with -n tp_size × pp_size × cp_size (e.g. -n 16 for --tp_size 8 --pp_size "
    "2), or change the sizes to the ranks you have.",
    _mpi_check,
    engines=("trtllm",),
)


def _moe_message(c: TrtllmConfig) -> str:
    if c.layout_version == LAYOUT_MAPPING:
        return (
            f"tp_size must equal to moe_tp_size * moe_ep_size * moe_cluster_size, but got "
            f"{c['tp_size']} != {c['moe_tp_size']} * {c['moe_ep_size']} * "
            f"{c['moe_cluster_size']}"
        )
    return (
        f"moe_tp_size * moe_ep_size * moe_cluster_size must equal to moe_world_size, but got "
        f"{c.moe_size} != {c.moe_world_size}"
    )


def _ulysses_cp(c: TrtllmConfig) -> bool:
    return c.ulysses or c.layout_version == LAYOUT_MAPPING


RULES: tuple[Rule, ...] = (
    MPI_WORLD,
    _rule(
        "RM602",
        "MoE sizes must tile the MoE world",
        "moe_tp_size × moe_ep_size × moe_cluster_size == moe_world_size (tp_size; tp × cp for "
        "Helix CP in 1.1+).",
        "The MoE layers reuse the TP ranks: each rank holds one (moe_tp, moe_ep) slot, so the "
        "product must be the TP width — --tp_size 8 --ep_size 3 leaves 8 // 3 = 2 for moe_tp "
        "and 2 × 3 = 6 ≠ 8.",
        "Choose --ep_size (and moe_tensor_parallel_size) so that moe_tp × moe_ep = tp_size, "
        "e.g. --tp_size 8 --ep_size 8, 4 or 2.",
        (
            Condition(
                lambda c: c.moe_size != c.moe_world_size,
                _moe_message,
                ("moe_ep_size", "moe_tp_size", "moe_cluster_size", "tp_size"),
            ),
        ),
    ),
    _rule(
        "RM603",
        "Attention sizes must tile tp × cp",
        "attn_tp_size × attn_cp_size == tp_size × cp_size, and attn_cp_size == 1 for Ulysses CP.",
        "Attention runs on the same tp × cp ranks as the rest of the model: with tp 4 and cp 2 "
        "attention may be 8 × 1 (Ulysses) or 4 × 2 (Helix), never 4 × 1.",
        "Leave attn_tp_size/attn_cp_size to Mapping's defaults, or pick a pair whose product "
        "is tp_size × cp_size.",
        (
            Condition(
                lambda c: c["attn_tp_size"] * c["attn_cp_size"] != c["tp_size"] * c["cp_size"],
                lambda c: (
                    f"tp_size * cp_size must equal to attn_tp_size * attn_cp_size, but got "
                    f"{c['tp_size']} * {c['cp_size']} != {c['attn_tp_size']} * "
                    f"{c['attn_cp_size']}"
                ),
                ("tp_size", "cp_size", "attn_tp_size", "attn_cp_size"),
            ),
            Condition(
                lambda c: c["attn_cp_size"] != 1 and _ulysses_cp(c),
                lambda c: (
                    f"attn_cp_size must be 1 for now, but got {c['attn_tp_size']}, "
                    f"{c['attn_cp_size']}."
                    if c.layout_version == LAYOUT_MAPPING
                    else f"attn_cp_size must be 1 for now for ulysses, but got "
                    f"{c['attn_tp_size']}, {c['attn_cp_size']}."
                ),
                ("attn_cp_size", "cp_type"),
            ),
        ),
    ),
    _rule(
        "RM604",
        "Context parallel and MoE expert parallel together",
        "moe_ep_size > 1 with cp_size > 1 (only Helix CP supports it); moe_cluster_size > 1 "
        "needs moe_ep_size == 1.",
        "Ulysses/Star/Ring CP reuse the TP ranks in ways the MoE kernels do not handle: "
        "--cp_size 2 --ep_size 4 raises NotImplementedError; expert clusters are an "
        "alternative to EP, so cluster 2 with EP 4 trips a bare assert.",
        "Use cp_type HELIX for CP with EP, or drop --ep_size / --cluster_size.",
        (
            Condition(
                lambda c: (
                    c["moe_ep_size"] != 1
                    and c["cp_size"] > 1
                    and str(c["cp_type"]).upper() != "HELIX"
                ),
                lambda c: (
                    "CP don't support MoE tp/ep yet"
                    if c.layout_version == LAYOUT_MAPPING
                    else f"CP {str(c['cp_type']).upper()} doesn't support MoE tp/ep yet"
                ),
                ("cp_size", "cp_type", "moe_ep_size"),
            ),
            Condition(
                lambda c: c["moe_cluster_size"] > 1 and c["moe_ep_size"] != 1,
                lambda c: (
                    f"moe_cluster_size {c['moe_cluster_size']} with moe_ep_size "
                    f"{c['moe_ep_size']}: Mapping's bare `assert moe_ep_size == 1` fails"
                ),
                ("moe_cluster_size", "moe_ep_size"),
            ),
        ),
    ),
    _rule(
        "RM605",
        "Options that need attention DP or a known CP type",
        "enable_lm_head_tp_in_adp needs enable_attention_dp; cp_type must be ULYSSES, STAR, "
        "RING or HELIX.",
        "The LM-head TP mode re-splits the head over the attention-DP ranks (8 of them with "
        "--tp_size 8); without attention DP there are none. An unknown cp_type string is "
        "rejected while the arguments are parsed (e.g. 'ulyses').",
        "Set enable_attention_dp: true with enable_lm_head_tp_in_adp, and spell cp_type as one "
        "of the four types.",
        (
            Condition(
                lambda c: bool(c["enable_lm_head_tp_in_adp"]) and not c["enable_attention_dp"],
                lambda c: "enable_lm_head_tp_in_adp requires enable_attention_dp",
                ("enable_lm_head_tp_in_adp", "enable_attention_dp"),
            ),
            Condition(
                lambda c: str(c["cp_type"]).upper() not in CP_TYPES,
                lambda c: f"Invalid cp_type: {c['cp_type']}. Must be one of: {', '.join(CP_TYPES)}",
                ("cp_type",),
            ),
        ),
        needs_sizes=False,
    ),
    _rule(
        "RM606",
        "pp_partition must list every stage",
        "len(pp_partition) == pp_size (and, with the model's layer count, sum == layers).",
        "pp_partition gives the layers of each pipeline stage; Mapping.pp_layers raises when it "
        "has 3 entries for pp_size 4 or sums to 60 for a 61-layer model.",
        "Give one entry per stage, summing to num_hidden_layers (61 on PP 4: e.g. [16, 15, 15, "
        "15]).",
        (
            Condition(
                lambda c: (
                    isinstance(c["pp_partition"], list) and len(c["pp_partition"]) != c["pp_size"]
                ),
                lambda c: (
                    f"len(self.pp_partition)={len(c['pp_partition'])} does not match "
                    f"self.pp_size={c['pp_size']}."
                ),
                ("pp_partition", "pp_size"),
            ),
        ),
    ),
    _rule(
        "RM607",
        "Parallel sizes must be positive integers",
        "tp, pp, cp and the MoE and attention sizes are positive integers after Mapping's "
        "-1 defaults are derived.",
        "Mapping divides by these sizes; 0 or a negative size (other than -1, 'derive') makes "
        "the group lists empty (--ep_size 0 would divide by zero in moe_tp = 8 // 0).",
        "Give positive sizes, or leave an MoE/attention size unset so Mapping derives it.",
        (
            Condition(
                lambda c: bool(_given_bad(c)),
                lambda c: "; ".join(
                    f"{n} must be a positive integer, got {c[n]!r}" for n in _given_bad(c)
                ),
                ("tp_size", "pp_size", "cp_size", "moe_ep_size", "moe_tp_size"),
            ),
        ),
        needs_sizes=False,
    ),
    _rule(
        "RM608",
        "mpirun's ranks per node differ from gpus_per_node",
        "mpirun's per-node process count (-N / --npernode / --map-by ppr:N:node, or the "
        "runtime's `MPI local size`) against an explicit gpus_per_node.",
        "Mapping puts rank r on node r // gpus_per_node and GPU r % gpus_per_node; with "
        "mpirun placing 4 ranks per node and gpus_per_node 8, ranks 4–7 run on the second "
        "node but Mapping treats them as node 0, so node-local decisions (multi-node checks, "
        "intra-node all-reduce) are made for the wrong ranks.",
        "Pass --gpus_per_node equal to the ranks mpirun starts on each node (or let it be "
        "detected on full nodes).",
        (
            Condition(
                lambda c: (
                    c["mpi_ranks_per_node"] is not None
                    and c.params["gpus_per_node"].source.kind not in ("inferred", "default")
                    and c["mpi_ranks_per_node"] != c["gpus_per_node"]
                ),
                lambda c: (
                    f"mpirun places {c['mpi_ranks_per_node']} ranks per node but "
                    f"gpus_per_node is {c['gpus_per_node']}: Mapping's node of rank r is "
                    f"r // {c['gpus_per_node']}."
                ),
                ("mpi_ranks_per_node", "gpus_per_node"),
            ),
        ),
        severity="warning",
    ),
)
