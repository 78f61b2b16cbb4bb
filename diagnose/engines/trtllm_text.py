"""Plain-words explanations of TensorRT-LLM's groups, with the user's own numbers.

Each explanation names the Mapping list, the formula with numbers and where each number
came from, so a reader can trace a MOE_EP group back to --ep_size.
"""

from __future__ import annotations

from diagnose.engines.trtllm import TrtllmConfig
from diagnose.model import Group


def _p(cfg: TrtllmConfig, name: str) -> str:
    return f"{name}={cfg[name]} ({cfg.src(name)})"


def _shape(group: Group) -> str:
    n = len(group.ranks)
    return f"{n} group{'s' if n != 1 else ''} of {group.size}"


def _not_built(group: Group) -> str:
    if group.alias_of:
        return (
            f" Mapping keeps no list of its own for it: it is the `{group.alias_of}` ranks, "
            "shown under the name the attention layers use."
        )
    return " Mapping keeps no list for it; it follows from the sizes."


def _order(cfg: TrtllmConfig) -> str:
    if cfg.cp_inner:
        return "CP ranks are consecutive and TP ranks stride cp_size (since PR #10350)"
    return "TP ranks are consecutive and CP ranks stride tp_size (before PR #10350)"


def explain(cfg: TrtllmConfig, group: Group) -> tuple[str, str, str]:
    """(explanation, formula, traffic) for one group kind of this configuration."""
    tp, pp, cp = cfg["tp_size"], cfg["pp_size"], cfg["cp_size"]
    mtp, mep, mcl = cfg["moe_tp_size"], cfg["moe_ep_size"], cfg["moe_cluster_size"]
    m = cfg.moe_size
    k, shape = group.kind, _shape(group)
    if k == "world":
        return (
            f"All {tp * pp * cp} MPI ranks of one TensorRT-LLM world ({shape}); mpirun must "
            "start exactly this many. MoE and attention sizes split the TP group inside it.",
            f"world_size = tp_size × pp_size × cp_size = {tp} × {pp} × {cp} = {tp * pp * cp}",
            "MPI startup; NCCL communicators are made from the lists below.",
        )
    if k == "pp_group":
        return (
            f"Pipeline parallel: {shape}; rank r and r + tp_size × cp_size = r + {tp * cp} are "
            f"consecutive stages. From {_p(cfg, 'pp_size')}.",
            f"pp_size = {pp}; stride tp_size × cp_size = {tp} × {cp} = {tp * cp}",
            "Activations sent once per stage boundary (send/recv) — cheap across nodes.",
        )
    if k == "cp_group":
        return (
            f"Context parallel: {shape}; the tokens of one request are split over cp_size "
            f"ranks; {_order(cfg)}. From {_p(cfg, 'cp_size')} with "
            f"cp_type={cfg['cp_type']} ({cfg.src('cp_type')}).",
            f"cp_size = {cp}",
            "KV / partial attention exchange between CP partners.",
        )
    if k == "tp_group":
        return (
            f"Tensor parallel: {shape}, one per (pipeline stage, CP rank); {_order(cfg)}. "
            f"From {_p(cfg, 'tp_size')}: the total TP width across nodes, not per node.",
            f"tp_size = {tp}; groups = pp_size × cp_size = {pp} × {cp}",
            "Per-layer all-reduces of attention and dense layers (without attention DP); the "
            "token all-gather / reduce-scatter around MoE layers under attention DP.",
        )
    if k == "moe_tp_group":
        return (
            f"MoE tensor parallel: {shape}; each expert's weights are split over moe_tp_size "
            f"ranks with stride moe_cluster × moe_ep = {mcl} × {mep} = {mcl * mep} inside each "
            f"block of moe_world_size = {m} ranks. From {_p(cfg, 'moe_tp_size')}.",
            f"moe_tp_size = {mtp}; moe_tp × moe_ep × moe_cluster = {mtp} × {mep} × {mcl} = {m}",
            "All-reduce of the expert outputs inside the group.",
        )
    if k == "moe_cluster_group":
        return (
            f"MoE cluster: {shape}; consecutive ranks of one MoE-TP position; from "
            f"{_p(cfg, 'moe_cluster_size')} (1 unless --cluster_size is given).",
            f"moe_cluster_size = {mcl}",
            "Expert-cluster exchange (used only when moe_cluster_size > 1).",
        )
    if k == "moe_ep_group":
        return (
            f"MoE expert parallel: {shape}; the experts are divided over moe_ep_size "
            f"consecutive ranks (EP is innermost in TensorRT-LLM, unlike SGLang where MoE-TP "
            f"is). From {_p(cfg, 'moe_ep_size')}.",
            f"moe_ep_size = {mep}; each rank holds num_experts // {mep} experts",
            "Token dispatch/combine around every MoE layer.",
        )
    if k == "attn_dp_group":
        return (
            f"Attention data parallel: {shape}. With {_p(cfg, 'enable_attention_dp')} every TP "
            f"rank runs attention for its own requests (Mapping.dp_size = tp_size = {tp}); the "
            f"TP group holds the DP ranks.{_not_built(group)}",
            f"dp_size = tp_size = {tp}",
            "No attention traffic; tokens meet again in the MoE layers.",
        )
    if k == "attn_tp_group":
        if cfg["enable_attention_dp"]:
            what = "each rank runs attention alone (attention DP), so every group is one rank"
        else:
            what = (
                f"attention is split over attn_tp_size = {cfg['attn_tp_size']} ranks "
                f"({cfg.src('attn_tp_size')})"
            )
        return (
            f"Attention tensor parallel: {shape}; {what}.{_not_built(group)}",
            f"attn_tp_size × attn_cp_size = {cfg['attn_tp_size']} × {cfg['attn_cp_size']} = "
            f"tp_size × cp_size = {tp * cp}",
            "The attention all-reduce of every layer.",
        )
    if k == "attn_cp_group":
        return (
            f"Attention context parallel ({cfg['cp_type']}): {shape}; the CP group splits the "
            f"KV of one request for attention.{_not_built(group)}",
            f"attn_cp_size = {cfg['attn_cp_size']}",
            "Partial attention results combined across the group.",
        )
    return (f"{group.label}: {shape}.", "", "")


def annotate(cfg: TrtllmConfig, groups: list[Group]) -> None:
    for group in groups:
        group.explanation, group.formula, group.traffic = explain(cfg, group)
