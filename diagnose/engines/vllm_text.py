"""Plain-words explanations of vLLM's groups, with the user's own numbers.

Each explanation names the axis of the (ExternalDP, DP, PP, PCP, TP) array the group is cut
along, the stride that follows from the faster axes, and the flag (with its source) that
sized it, so a reader can trace an EP group of 8 back to `-dp 2 -tp 4`.
"""

from __future__ import annotations

from diagnose.engines.vllm import VLLMConfig
from diagnose.model import Group


def _p(cfg: VLLMConfig, name: str) -> str:
    return f"{name}={cfg[name]} ({cfg.src(name)})"


def _shape(group: Group) -> str:
    n = len(group.ranks)
    return f"{n} group{'s' if n != 1 else ''} of {group.size}"


def _ep_text(cfg: VLLMConfig, group: Group) -> tuple[str, str]:
    flat = f"dp × pcp × tp = {cfg.dp_in_world} × {cfg.pcp} × {cfg.tp} = {cfg.flat_moe}"
    if cfg.expert_parallel:
        how = (
            f"--enable-expert-parallel is on ({cfg.src('enable_expert_parallel')}): the routed "
            f"experts are divided over these {cfg.flat_moe} ranks (EP rank = (dp_rank × pcp + "
            "pcp_rank) × tp + tp_rank; an uneven count gives the first ranks one more)."
        )
    elif cfg.is_moe:
        how = (
            "--enable-expert-parallel is off, yet vLLM builds this group for every MoE model and "
            f"prints an EP rank: each expert is TP-sharded over all {cfg.flat_moe} ranks instead."
        )
    else:
        how = "vLLM before 0.14 builds it for dense models too; nothing uses it there."
    return (
        f"Expert parallel: {_shape(group)}, the whole DP × PCP × TP plane of one pipeline "
        f"stage (one group per stage). {how} vLLM has no EP size: it is always {flat}.",
        f"ep = {flat}; groups = pipeline_parallel_size = {cfg.pp}",
    )


def explain(cfg: VLLMConfig, group: Group) -> tuple[str, str, str]:
    """(explanation, formula, traffic) for one group kind of this configuration."""
    tp, pp, pcp, dcp, dp = cfg.tp, cfg.pp, cfg.pcp, cfg.dcp, cfg.dp_in_world
    k = group.kind
    shape = _shape(group)
    replicas = (
        f" Each of the {cfg.replicas} DP replicas is its own world with the same rank numbers."
        if cfg.replicas > 1
        else ""
    )
    if k == "world":
        return (
            f"All {cfg.world_size} ranks of one vLLM torch world, laid out as (ExternalDP, DP, PP, "
            f"PCP, TP) = (1, {dp}, {pp}, {pcp}, {tp}) with TP fastest.{replicas}",
            f"W = dp × pp × pcp × tp = {dp} × {pp} × {pcp} × {tp} = {cfg.world_size}; "
            f"global rank = dp_rank × {cfg.engine_world} + rank inside the DP rank",
            "Startup barriers and CPU-side coordination.",
        )
    if k == "tp":
        return (
            f"Tensor parallel: {shape}, consecutive ranks (TP is the fastest axis). From "
            f"{_p(cfg, 'tensor_parallel_size')}; attention heads, MLP and vocabulary are split "
            "over it.",
            f"tensor_parallel_size = {tp}; groups = W / tp = {cfg.world_size // tp}",
            "Two all-reduces per layer (custom all-reduce inside a node, NCCL otherwise).",
        )
    if k == "etp":
        return (
            f"Engram tensor parallel: {shape}. Without an Engram config vLLM makes `etp` the "
            "`tp` coordinator itself (get_etp_group() returns tp:0) and prints it as ETP rank.",
            "etp = tp",
            "As the TP group.",
        )
    if k == "dcp":
        if dcp > 1 and pcp > 1 and cfg.since(0, 26):
            cut = "cut from each DP/PP cell's PCP × TP plane with PCP varying fastest"
        else:
            cut = "consecutive slices of each TP group (DCP reuses the TP GPUs)"
        return (
            f"Decode context parallel: {shape}, {cut}; the KV cache of a request is split "
            f"over its ranks. From {_p(cfg, 'decode_context_parallel_size')}"
            + (" — size 1, so vLLM builds one singleton group per rank." if dcp == 1 else "."),
            f"decode_context_parallel_size = {dcp}",
            "Partial attention outputs combined across the group during decode.",
        )
    if k == "pcp":
        return (
            f"Prefill context parallel: {shape}, ranks with the same TP rank, stride "
            f"tensor_parallel_size = {tp}; the tokens of a prefill are split over them and PCP "
            f"brings its own GPUs. From {_p(cfg, 'prefill_context_parallel_size')}"
            + (" — size 1, so vLLM builds one singleton group per rank." if pcp == 1 else "."),
            f"prefill_context_parallel_size = {pcp}; stride tp = {tp}",
            "KV / partial attention exchange between PCP partners during prefill.",
        )
    if k == "pp":
        return (
            f"Pipeline parallel: {shape}; rank r and r + tp × pcp = r + {tp * pcp} are "
            f"consecutive stages. From {_p(cfg, 'pipeline_parallel_size')}. vLLM lists the groups "
            "TP-index-major (transpose of the PP and TP axes).",
            f"pipeline_parallel_size = {pp}; stride tp × pcp = {tp} × {pcp} = {tp * pcp}",
            "Activations sent once per stage boundary per batch (send/recv) — cheap across nodes.",
        )
    if k == "dp":
        if cfg.replicas > 1:
            why = (
                f"{_p(cfg, 'data_parallel_size')} but the model is dense, so every DP engine is "
                "a separate world of its own and this group is one singleton per rank."
            )
        else:
            why = (
                f"From {_p(cfg, 'data_parallel_size')}; each DP rank runs its own scheduler and "
                "batch, and they step together because the MoE layers of one step span them."
            )
        return (
            f"Data parallel: {shape}; ranks with the same PP/PCP/TP place in different DP ranks, "
            f"stride pp × pcp × tp = {cfg.engine_world}, listed TP-index-major. {why}",
            f"data_parallel_size = {dp}; stride = {pp} × {pcp} × {tp} = {cfg.engine_world}",
            "A small all-reduce per step to agree on batch sizes (and padding for the MoE "
            "collectives).",
        )
    if k in ("ep", "eplb"):
        text, formula = _ep_text(cfg, group)
        if k == "eplb":
            return (
                f"Expert-parallel load balancing: a second communicator over the EP ranks "
                f"({shape}) that moves expert weights when EPLB rebalances. From "
                f"{_p(cfg, 'enable_eplb')}.",
                formula,
                "Expert weight transfers at rebalancing steps.",
            )
        traffic = (
            "Token dispatch/combine per MoE layer"
            + (
                f" through the {cfg['all2all_backend']} all2all backend."
                if cfg["all2all_backend"]
                else " (all-gather / reduce-scatter unless an all2all backend is set)."
            )
            if cfg.expert_parallel
            else "The MoE layers' reductions when the experts are TP-sharded over the plane."
        )
        return text, formula, traffic
    return (f"{group.label}: {shape}.", "", "")


def annotate(cfg: VLLMConfig, groups: list[Group]) -> None:
    for group in groups:
        group.explanation, group.formula, group.traffic = explain(cfg, group)
