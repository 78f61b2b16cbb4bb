"""Plain-words explanations of SGLang's groups, with the user's own numbers.

Each explanation names the axis, the formula with numbers, and where every number came
from, so a reader can trace an ATTN_CP group back to the flag that made it.
"""

from __future__ import annotations

from diagnose.engines.sglang import SGLangConfig
from diagnose.model import Group


def _p(cfg: SGLangConfig, name: str) -> str:
    return f"{name}={cfg[name]} ({cfg.src(name)})"


def _shape(group: Group) -> str:
    n = len(group.ranks)
    return f"{n} group{'s' if n != 1 else ''} of {group.size}"


def _alias_note(group: Group) -> str:
    if group.alias_of is None:
        return ""
    return (
        f" SGLang creates no communicator for it: it is the `{group.alias_of}` group under "
        "another name, and collectives of this role run there."
    )


def _attn_dp_src(cfg: SGLangConfig) -> str:
    if cfg.attn_dp_size == 1:
        return "attn_dp_size=1 (DP attention off)"
    if "attn_dp_size" in cfg.params and cfg.params["attn_dp_size"].source.kind != "default":
        return _p(cfg, "attn_dp_size")
    return f"attn_dp_size = dp_size = {cfg.attn_dp_size} ({cfg.src('dp_size')}, DP attention on)"


def explain(cfg: SGLangConfig, group: Group) -> tuple[str, str, str]:
    """(explanation, formula, traffic) for one group kind of this configuration."""
    tp, pp = cfg["tp_size"], cfg["pp_size"]
    cp, ep, mdp = cfg["attn_cp_size"], cfg["ep_size"], cfg["moe_dp_size"]
    adp, atp, mtp = cfg.attn_dp_size, cfg.attn_tp_size, cfg.moe_tp_size
    k = group.kind
    shape = _shape(group)
    if k == "world":
        return (
            f"All {tp * pp} ranks of one SGLang world ({shape}). DP attention, attention CP and "
            "the MoE dimensions are carved out of the TP group inside it; they never add GPUs.",
            f"world_size = tp_size × pp_size = {tp} × {pp} = {tp * pp}",
            "Startup barriers and CPU-side coordination.",
        )
    if k in ("tp", "pdmux_prefill_tp"):
        return (
            f"Tensor parallel: {shape}, one per pipeline stage, consecutive ranks. "
            f"{_p(cfg, 'tp_size')} is the total TP width across nodes, not per node.",
            f"tp_size = {tp}; groups = pp_size = {pp}",
            "Per-layer all-reduces of the dense parts (and of everything not split otherwise); "
            "EP all-to-all too when ep_size = tp_size.",
        )
    if k == "attention_tp":
        return (
            f"Attention tensor parallel: {shape}. Each attention-DP rank's attention layers are "
            f"split over attn_tp_size consecutive ranks; from {_attn_dp_src(cfg)} and "
            f"{_p(cfg, 'attn_cp_size')}.{_alias_note(group)}",
            f"attn_tp_size = tp_size / attn_dp_size / attn_cp_size = {tp} / {adp} / {cp} = {atp}",
            "The attention all-reduce of every layer (and the vocab-sharded embedding under DP "
            "attention).",
        )
    if k == "attn_cp":
        return (
            f"Attention context parallel: {shape}. The tokens of one request are split over "
            f"attn_cp_size ranks that hold the same attention slice: inside each attention-DP "
            f"block, ranks with the same attn_tp rank, stride attn_tp_size = {atp}. From "
            f"{_p(cfg, 'attn_cp_size')}.{_alias_note(group)}",
            f"attn_cp_size = {cp}; stride attn_tp_size = {tp} / {adp} / {cp} = {atp}",
            "KV / partial attention exchange between CP partners during prefill.",
        )
    if k == "attn_dp":
        return (
            f"Attention data parallel: {shape} — each block of attn_cp_size × attn_tp_size = "
            f"{cp} × {atp} ranks runs its own scheduler, batch and KV cache; the prefix token "
            f"DPn is this index. SGLang builds no communicator for it (shown so the request "
            f"split is visible). From {_attn_dp_src(cfg)}.",
            f"attn_dp_size = {adp}; block = attn_cp_size × attn_tp_size = {cp} × {atp}",
            "None of its own: tokens of all DP ranks meet in the MoE layers on the TP/EP group.",
        )
    if k == "moe_dp":
        if group.alias_of == "attn_cp":
            why = (
                f"Because attn_cp_size {cp} > moe_dp_size {mdp}, SGLang makes MOE_DP the ATTN_CP "
                "group: the CP partners exchange their tokens through the MoE-DP gather, so this "
                f"group has {cp} members even though {_p(cfg, 'moe_dp_size')}."
            )
        else:
            why = (
                f"Copies of the expert layout serving different tokens, stride ep_size × "
                f"moe_tp_size = {ep} × {mtp}; from {_p(cfg, 'moe_dp_size')}.{_alias_note(group)}"
            )
        return (
            f"MoE data parallel: {shape}. {why}",
            f"moe_dp_size = {mdp}; tp_size = moe_dp_size × ep_size × moe_tp_size = "
            f"{mdp} × {ep} × {mtp} = {tp}",
            "Token gather/scatter around each MoE layer.",
        )
    if k == "moe_ep":
        return (
            f"MoE expert parallel: {shape}; the routed experts are divided over ep_size ranks "
            f"with stride moe_tp_size = {mtp}. From {_p(cfg, 'ep_size')} with "
            f"{_p(cfg, 'moe_a2a_backend')}.{_alias_note(group)}",
            f"moe_ep_size = ep_size = {ep}",
            "Token dispatch/combine per MoE layer: all-to-all with an a2a backend, "
            "all-reduce/all-gather based otherwise.",
        )
    if k == "moe_tp":
        return (
            f"MoE tensor parallel: {shape}; each expert's weights are split over moe_tp_size "
            f"consecutive ranks.{_alias_note(group)}",
            f"moe_tp_size = tp_size / ep_size / moe_dp_size = {tp} / {ep} / {mdp} = {mtp}",
            "All-reduce of expert outputs inside the group.",
        )
    if k == "pp":
        return (
            f"Pipeline parallel: {shape}; rank r and r + tp_size are consecutive stages. From "
            f"{_p(cfg, 'pp_size')}.",
            f"pp_size = {pp}; stride tp_size = {tp}",
            "Activations sent once per stage boundary per batch (send/recv) — cheap across nodes.",
        )
    if k == "dcp":
        return (
            f"Decode context parallel: {shape}, consecutive ranks inside each TP group that split "
            f"the KV cache of a request. From {_p(cfg, 'dcp_size')}.",
            f"dcp_size = {cfg['dcp_size']}",
            "Partial attention results combined across the group during decode.",
        )
    if k == "self_pp":
        return (
            f"One singleton group per rank ({shape}) used for pipeline bookkeeping.",
            "one per rank",
            "None.",
        )
    if k == "dp_tp":
        return (
            f"The TP ranks that run one DP rank's batch: {shape}.{_alias_note(group)}",
            "attention_tp when attention DP is on, else tp",
            "As its target group.",
        )
    return (f"{group.label}: {shape}.", "", "")


def annotate(cfg: SGLangConfig, groups: list[Group]) -> None:
    for group in groups:
        group.explanation, group.formula, group.traffic = explain(cfg, group)
