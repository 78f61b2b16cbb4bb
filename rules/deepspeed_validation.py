"""DeepSpeed's own checks on batch sizes and MoE / ZeRO group sizes, with its messages.

These fail inside deepspeed.initialize (DeepSpeedConfig's batch assertion, groups.py's
`_ensure_divisibility`, the MoE layer's assert) after every rank has loaded the model;
saying so from the launch command and the JSON config saves that start-up.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

from diagnose.engines.deepspeed import DeepSpeedConfig
from diagnose.model import Finding
from rules.base import Context, Rule


def _known_world(c: DeepSpeedConfig) -> bool:
    return isinstance(c.world, int) and c.world > 0


def _batch(ctx: Context) -> Iterable[Finding]:
    c: DeepSpeedConfig = ctx.cfg
    given = [c[n] for n in BATCH_PARAMS]
    if not _known_world(c) or all(v is None for v in given) or not c.dp:
        return
    ev = ctx.evidence_for(*BATCH_PARAMS, "dist_world_size", "num_gpus", "nnodes", "world_size")
    if given[0] is None and given[1] is None:
        yield BATCH.finding(
            "DeepSpeed refuses to start: Either train_batch_size or "
            "train_micro_batch_size_per_gpu needs to be provided",
            ev,
        )
        return
    train, micro, ga = c.batch()
    if None in (train, micro, ga):
        return
    if train <= 0 or micro <= 0 or ga <= 0:  # type: ignore[operator]
        yield BATCH.finding(
            f"DeepSpeed refuses to start: batch sizes must be > 0 (train_batch_size {train}, "
            f"micro batch {micro}, gradient accumulation {ga} after DeepSpeed fills them in "
            f"for DP {c.dp}).",
            ev,
        )
        return
    if train != micro * ga * c.dp:  # type: ignore[operator]
        filled = [n for n, v in zip(BATCH_PARAMS, given, strict=True) if v is None]
        how = f" ({', '.join(filled)} derived by DeepSpeed with integer division)" if filled else ""
        yield BATCH.finding(
            "DeepSpeed refuses to start: Check batch related parameters. train_batch_size is "
            "not equal to micro_batch_per_gpu * gradient_acc_step * world_size "
            f"{train} != {micro} * {ga} * {c.dp}{how}; world_size here is the data-parallel "
            f"size {c.dp} = {c.world} ranks / (autotp {c.tp} × stages {c['pp_size']} × SP "
            f"{c.sp}).",
            ev,
        )


BATCH_PARAMS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")

BATCH = Rule(
    "RM701",
    "train_batch_size must equal micro batch × gradient accumulation × DP size",
    "error",
    "DeepSpeedConfig's batch arithmetic: missing values are filled in with integer division, "
    "then train_batch_size == train_micro_batch_size_per_gpu × gradient_accumulation_steps × "
    "data-parallel size is asserted.",
    "The same JSON config fails when the GPU count changes: train_batch_size 64 with micro 4 "
    "and accumulation 2 fits 8 GPUs (4 × 2 × 8 = 64) but not 16 (4 × 2 × 16 = 128); with only "
    "train_batch_size 64 and micro 3 on 8 GPUs DeepSpeed derives accumulation 64 // 3 // 8 = 2 "
    "and then finds 3 × 2 × 8 = 48 ≠ 64.",
    "Give only two of the three sizes (DeepSpeed derives the third), or make "
    "train_batch_size = micro × accumulation × DP for the GPU count you launch.",
    _batch,
    engines=("deepspeed",),
)


def _ep_divides(ctx: Context) -> Iterable[Finding]:
    c: DeepSpeedConfig = ctx.cfg
    ep = c["ep_size"]
    if not (c.has_moe and _known_world(c) and isinstance(ep, int) and ep >= 1):
        return
    stage = c.stage_width
    if ep <= stage and stage % ep:
        yield EP_DIVIDES.finding(
            f"DeepSpeed refuses to start: {stage} is not divisible by {ep} (groups.py "
            f"`_ensure_divisibility(pp_stride, ep_size)`: each pipeline stage of {stage} ranks "
            f"must split into expert-parallel groups of {ep}).",
            ctx.evidence_for("ep_size", "dist_world_size", "num_gpus", "nnodes", "pp_size"),
        )


EP_DIVIDES = Rule(
    "RM702",
    "ep_size must divide the ranks of a pipeline stage",
    "error",
    "(world / pipeline stages) % ep_size == 0, DeepSpeed's `_ensure_divisibility` when the "
    "expert groups are created.",
    "Expert-parallel groups are consecutive blocks of ep_size ranks and expert-DP groups take "
    "every ep_size-th rank: 12 GPUs with ep_size 8 leave 4 ranks without a group, and "
    "DeepSpeed's assert '12 is not divisible by 8' stops every rank.",
    "Pick ep_size as a divisor of the GPU count per stage (8 GPUs: 1, 2, 4 or 8).",
    _ep_divides,
    engines=("deepspeed",),
)


def _ep_not_experts(ctx: Context) -> Iterable[Finding]:
    c: DeepSpeedConfig = ctx.cfg
    ep, experts = c["ep_size"], c["num_experts"]
    if not (c.has_moe and _known_world(c) and isinstance(ep, int)):
        return
    if ep <= c.stage_width:
        return
    same = isinstance(experts, int) and ep == experts
    hint = (
        f" ep_size equals num_experts ({experts}): ep_size counts the ranks that share the "
        f"experts of a layer, not the experts."
        if same
        else ""
    )
    yield EP_NOT_EXPERTS.finding(
        f"ep_size {ep} is larger than the {c.stage_width} ranks of a pipeline stage "
        f"(world {c.world}): no expert-parallel group of that size can exist.{hint} With "
        f"{c.stage_width} ranks, ep_size can be at most {c.stage_width}"
        + (
            f" (e.g. {experts} experts over ep_size {c.stage_width} → "
            f"{experts // c.stage_width} per rank)."
            if isinstance(experts, int) and experts % c.stage_width == 0
            else "."
        ),
        ctx.evidence_for("ep_size", "num_experts", "dist_world_size", "num_gpus"),
    )


EP_NOT_EXPERTS = Rule(
    "RM703",
    "EP size is not the number of experts",
    "error",
    "ep_size larger than the ranks of a pipeline stage — typically the expert count passed "
    "as ep_size.",
    "ep_size is the number of ranks in one expert-parallel group; DeepSpeed's inference "
    "engine once passed num_experts as ep_size (deepspeedai/DeepSpeed#7535): 64 experts on "
    "8 GPUs then asked for groups of 64 ranks, which cannot be built.",
    "Set ep_size to a divisor of the GPUs per stage (8 GPUs: ep_size 8 holds 64 experts as 8 "
    "per rank).",
    _ep_not_experts,
    engines=("deepspeed",),
)


def _experts_divide(ctx: Context) -> Iterable[Finding]:
    c: DeepSpeedConfig = ctx.cfg
    ep, experts = c["ep_size"], c["num_experts"]
    counts = experts if isinstance(experts, list) else [experts]
    if not isinstance(ep, int) or ep < 1:
        return
    for n in counts:
        if isinstance(n, int) and n % ep:
            yield EXPERTS_DIVIDE.finding(
                f"DeepSpeed refuses to start: Number of experts ({n}) should be divisible by "
                f"expert parallel size ({ep})",
                ctx.evidence_for("num_experts", "ep_size"),
            )


EXPERTS_DIVIDE = Rule(
    "RM704",
    "Experts must divide over the expert-parallel group",
    "error",
    "num_experts % ep_size == 0 for every MoE layer (deepspeed.moe.layer.MoE's assert).",
    "Each rank of an expert-parallel group holds num_experts / ep_size whole experts: 8 "
    "experts on ep_size 4 gives 2 each, on ep_size 3 the MoE layer asserts at construction.",
    "Choose ep_size as a divisor of the expert count (8 experts: 1, 2, 4 or 8).",
    _experts_divide,
    engines=("deepspeed",),
)


def _sizes_divide(ctx: Context) -> Iterable[Finding]:
    c: DeepSpeedConfig = ctx.cfg
    if not _known_world(c):
        return
    w = c.world
    checks = (
        ("tensor_parallel.autotp_size", c.tp, "autotp_size"),
        ("sequence_parallel_size", c.sp, "sequence_parallel_size"),
        ("zero_optimization.zero_hpz_partition_size", c["zero_hpz_partition_size"], None),
        ("zero_optimization.mics_shard_size", c["mics_shard_size"], None),
    )
    for label, size, _ in checks:
        if isinstance(size, int) and 1 < size <= w and w % size:  # type: ignore[operator]
            name = label.rsplit(".", 1)[-1]
            yield SIZES_DIVIDE.finding(
                f"DeepSpeed refuses to start: {w} is not divisible by {size} ({label} = {size} "
                f"on a world of {w} ranks).",
                ctx.evidence_for(name, "dist_world_size", "num_gpus", "nnodes"),
            )


SIZES_DIVIDE = Rule(
    "RM705",
    "AutoTP, sequence-parallel and ZeRO partition sizes must divide the world",
    "error",
    "world % size == 0 for tensor_parallel.autotp_size, sequence_parallel_size, "
    "zero_hpz_partition_size and mics_shard_size.",
    "Each of these cuts the world into equal consecutive groups (`_ensure_divisibility`): "
    "zero_hpz_partition_size 8 on 12 GPUs leaves 4 ranks without a secondary partition and "
    "DeepSpeed asserts '12 is not divisible by 8'.",
    "Use sizes that divide the GPU count, usually the GPUs of one node (8).",
    _sizes_divide,
    engines=("deepspeed",),
)


def _hpz_inert(ctx: Context) -> Iterable[Finding]:
    c: DeepSpeedConfig = ctx.cfg
    hpz = c["zero_hpz_partition_size"]
    if isinstance(hpz, int) and hpz > 1 and c["zero_stage"] != 3:
        yield HPZ_INERT.finding(
            f"zero_hpz_partition_size {hpz} is set but ZeRO stage is {c['zero_stage']}: hpZ "
            "partitions ZeRO-3 parameter shards, so no secondary partition group is made and "
            "the setting changes nothing.",
            ctx.evidence_for("zero_hpz_partition_size", "zero_stage"),
        )


HPZ_INERT = Rule(
    "RM706",
    "ZeRO++ hpZ without ZeRO-3",
    "warning",
    "zero_hpz_partition_size > 1 with zero_optimization.stage below 3.",
    "hpZ keeps a second copy of the ZeRO-3 parameter shards inside groups of "
    "zero_hpz_partition_size ranks (usually the 8 GPUs of a node) so forward all-gathers stay "
    "on NVLink; stages 0–2 do not shard parameters, so the option is inert and a benchmark "
    "labelled 'hpZ' measured plain ZeRO.",
    "Use zero_optimization.stage 3 with hpZ, or drop zero_hpz_partition_size.",
    _hpz_inert,
    engines=("deepspeed",),
)


def _logged_groups(ctx: Context) -> Iterable[Finding]:
    if ctx.layout is None:
        return
    expected = {
        kind: {tuple(r) for r in g.ranks}
        for kind in ("expert_parallel", "expert_data_parallel")
        if (g := ctx.layout.group(kind)) is not None
    }
    bad = []
    for ev in ctx.events_of("ds_expert_group"):
        m = re.search(
            r"(?i)expert (data )?parallel process group named \S+ with ranks: (\[.*\])", ev.text
        )
        if m is None:
            continue
        kind = "expert_data_parallel" if m.group(1) else "expert_parallel"
        ranks = tuple(ast.literal_eval(m.group(2)))
        if ranks not in expected.get(kind, set()):
            bad.append((kind, ranks, ev))
    if bad:
        kind, ranks, _ = bad[0]
        yield LOGGED_GROUPS.finding(
            f"{len(bad)} expert group(s) DeepSpeed logged differ from the layout rankmap "
            f"computed, e.g. {kind} {list(ranks)}: the logs come from another world size, "
            "ep_size or DeepSpeed version than the configuration assumed.",
            [ev for _, _, ev in bad[:3]] + list(ctx.evidence_for("ep_size", "dist_world_size")),
        )


LOGGED_GROUPS = Rule(
    "RM707",
    "Logged expert groups contradict the configuration",
    "error",
    "Every `Creating expert (data) parallel process group named ep_size_N with ranks: [...]` "
    "line against the groups the resolved configuration gives.",
    "These lines are DeepSpeed's own record of the groups (rank 0 prints one per group); when "
    "they disagree with the resolved sizes — EP [0, 2, 4, 6] where ep_size 4 on 8 ranks gives "
    "[0, 1, 2, 3] — the layout shown is not the one that ran (usually a Megatron mpu or "
    "use_data_before_expert_parallel_ the inputs do not show).",
    "Give rankmap the logs and config of one run; set use_data_before_expert_parallel_ in the "
    "config if the job used it.",
    _logged_groups,
    engines=("deepspeed",),
)

RULES: tuple[Rule, ...] = (
    BATCH,
    EP_DIVIDES,
    EP_NOT_EXPERTS,
    EXPERTS_DIVIDE,
    SIZES_DIVIDE,
    HPZ_INERT,
    LOGGED_GROUPS,
)
