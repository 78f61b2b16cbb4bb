"""Plain-words explanations of DeepSpeed's groups, with the user's own numbers.

Each explanation names DeepSpeed's group (the global or grid attribute that holds it), the
formula with numbers and where each number came from: the launcher, the ds_config JSON or
the training script's MoE arguments.
"""

from __future__ import annotations

from diagnose.engines.deepspeed import DeepSpeedConfig
from diagnose.model import Group

ZERO_STAGES = {
    0: "ZeRO off: every rank keeps full parameters, gradients and optimizer state; "
    "gradients are all-reduced over the DP group",
    1: "ZeRO-1: optimizer state is sharded over the DP group",
    2: "ZeRO-2: optimizer state and gradients are sharded over the DP group "
    "(gradients reduce-scattered)",
    3: "ZeRO-3: parameters, gradients and optimizer state are sharded over the DP group; "
    "every layer all-gathers its parameters in forward and backward",
}


def _p(cfg: DeepSpeedConfig, name: str) -> str:
    return f"{name}={cfg[name]} ({cfg.src(name)})"


def _shape(group: Group) -> str:
    n = len(group.ranks)
    return f"{n} group{'s' if n != 1 else ''} of {group.size}"


def _zero(cfg: DeepSpeedConfig) -> str:
    stage = cfg["zero_stage"]
    text = ZERO_STAGES.get(stage, f"ZeRO stage {stage}")
    return f"{text} (zero_optimization.stage={stage}, {cfg.src('zero_stage')})"


def _batch(cfg: DeepSpeedConfig) -> str:
    train, micro, ga = cfg.batch()
    if None in (train, micro, ga):
        return ""
    return (
        f" Each step it averages train_batch_size = micro {micro} × grad_acc {ga} × DP "
        f"{cfg.dp} = {micro * ga * cfg.dp} samples."  # type: ignore[operator]
    )


def explain(cfg: DeepSpeedConfig, group: Group) -> tuple[str, str, str]:
    """(explanation, formula, traffic) for one group kind of this configuration."""
    w, shape, k = cfg.world_size, _shape(group), group.kind
    ep, stage = cfg["ep_size"], cfg.stage_width
    if k == "world":
        return (
            f"All {w} processes the DeepSpeed launcher starts ({shape}), from "
            f"{_p(cfg, 'dist_world_size')}.",
            f"world = {w} over {cfg['nnodes']} node(s)",
            "Startup barriers; DeepSpeed clones it as the data-parallel group.",
        )
    if k == "data_parallel":
        where = (
            "the clone of the world (`_WORLD_GROUP`) that groups._get_data_parallel_group "
            "returns without model parallelism"
            if group.size == w
            else "ranks that hold the same model slice"
        )
        return (
            f"Data parallel: {shape}, {where}. {_zero(cfg)}.{_batch(cfg)}",
            f"DP = world / (autotp × stages × SP) = {w} / ({cfg.tp} × {cfg['pp_size']} × "
            f"{cfg.sp}) = {cfg.dp}",
            "Gradient all-reduce or reduce-scatter once per step; ZeRO-3 also all-gathers "
            "parameters every layer.",
        )
    if k == "expert_data_parallel":
        return (
            f"Expert data parallel (`ep_size_{ep}`): {shape}; ranks holding the same experts, "
            f"stride ep_size = {ep} inside each stage of {stage} ranks. MoE parameters are "
            f"all-reduced here instead of over the whole DP group. From {_p(cfg, 'ep_size')}.",
            f"expert-DP = {stage} / {ep} = {stage // ep}",
            "All-reduce of the expert gradients once per step.",
        )
    if k == "expert_parallel":
        experts = cfg["num_experts"]
        local = (
            f"; {experts} experts → {experts // ep} per rank"
            if isinstance(experts, int) and ep and experts % ep == 0
            else ""
        )
        return (
            f"Expert parallel (`ep_size_{ep}`): {shape} of consecutive ranks that split the "
            f"experts of every MoE layer{local}. ep_size is the number of ranks per group, "
            f"not the number of experts. From {_p(cfg, 'ep_size')}.",
            f"ep_size = {ep}; groups = world / ep_size = {w} / {ep}",
            "All-to-all token dispatch and combine in every MoE layer.",
        )
    if k == "zero_param_intra_parallel":
        return (
            f"ZeRO++ hpZ secondary partition: {shape} of consecutive ranks that keep a "
            f"replica of the parameter shards, so forward all-gathers stay inside the group. "
            f"From {_p(cfg, 'zero_hpz_partition_size')}. Created by the ZeRO-3 optimizer (at "
            "model construction when zero.Init is used).",
            f"zero_hpz_partition_size = {cfg['zero_hpz_partition_size']}",
            "Parameter all-gathers of every layer.",
        )
    if k in ("model_parallel", "pipe_parallel"):
        alias = f" It is the `{group.alias_of}` group under another name." if group.alias_of else ""
        return (
            f"{'Pipeline' if k == 'pipe_parallel' else 'Model-parallel'} group: {shape}; one "
            f"pipeline of {cfg['pp_size']} stages per data-parallel index (rank r and r + DP = "
            f"r + {cfg.dp} are consecutive stages). From {_p(cfg, 'pp_size')}.{alias}",
            f"stages = {cfg['pp_size']}; stride DP = {cfg.dp}",
            "Activations and gradients between stages (send/recv); overflow checks on the "
            "model-parallel group.",
        )
    if k == "slice_parallel":
        return (
            f"Tensor-slicing group of the pipeline grid: {shape} (no model axis, so every rank "
            "is alone).",
            "model axis = 1",
            "None.",
        )
    if k == "tensor_model_parallel":
        return (
            f"AutoTP tensor parallel: {shape} of consecutive ranks (DeviceMesh dim "
            f"tensor_parallel). From {_p(cfg, 'autotp_size')}.",
            f"autotp_size = {cfg.tp}",
            "Per-layer all-reduces of the sliced linear layers.",
        )
    if k == "sequence_parallel":
        return (
            f"Ulysses sequence parallel: {shape} of consecutive ranks (DeviceMesh dim "
            f"sequence_parallel). From {_p(cfg, 'sequence_parallel_size')}.",
            f"sequence_parallel_size = {cfg.sp}",
            "All-to-all of attention heads and sequence chunks in every layer.",
        )
    return (f"{group.label}: {shape}.", "", "")


def annotate(cfg: DeepSpeedConfig, groups: list[Group]) -> None:
    for group in groups:
        group.explanation, group.formula, group.traffic = explain(cfg, group)
