"""Where groups land on nodes and what that costs."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from diagnose.model import Evidence, Finding, Group
from rules.base import Context, Rule

NVLINK_GBPS = 450.0  # H100/H200 NVLink 4: 900 GB/s bidirectional, 450 GB/s each way
NIC_GBPS = 50.0  # one 400 Gb/s NDR InfiniBand NIC per GPU
DECODE_BATCH = 128  # tokens per decode step used to put a number on the cost

ALLREDUCE_KINDS = ("tp", "attention_tp", "moe_tp")


def _crossing(groups: list[Group]) -> list[Group]:
    return [g for g in groups if any(len(h) > 1 for h in g.hosts)]


def _busy_allreduce_groups(ctx: Context) -> list[Group]:
    """The all-reduce-carrying groups this configuration actually keeps busy."""
    c, layout = ctx.cfg, ctx.layout
    assert layout is not None
    busy = []
    model = ctx.model
    for kind in ALLREDUCE_KINDS:
        g = layout.group(kind)
        if g is None or g.size <= 1:
            continue
        if kind == "tp" and c["enable_dp_attention"] and c["moe_dense_tp_size"] == 1:
            continue  # attention on attention_tp, dense MLP replicated, experts on EP
        if kind == "moe_tp" and model is not None and not model.is_moe:
            continue
        busy.append(g)
    return busy


def _cost(ctx: Context, size: int) -> str:
    model = ctx.model
    if model is None or not model.hidden_size or not model.num_hidden_layers:
        return (
            "Each layer all-reduces about 2 × hidden_size × 2 bytes per token (pass "
            "--model-config for numbers in milliseconds)."
        )
    per_layer = 2 * model.hidden_size * model.dtype_bytes * DECODE_BATCH
    per_step = per_layer * model.num_hidden_layers
    wire = per_step * 2 * (size - 1) / size  # ring all-reduce bytes each rank sends
    nvlink_ms = wire / (NVLINK_GBPS * 1e9) * 1e3
    nic_ms = wire / (NIC_GBPS * 1e9) * 1e3
    return (
        f"For {model.name} (hidden_size {model.hidden_size}, {model.num_hidden_layers} layers) a "
        f"decode step of {DECODE_BATCH} tokens all-reduces {per_layer / 1e6:.1f} MB per layer, "
        f"{per_step / 1e6:.0f} MB per step; a ring of {size} ranks moves {wire / 1e6:.0f} MB per "
        f"rank: ≈{nvlink_ms:.2f} ms over NVLink (~{NVLINK_GBPS:.0f} GB/s per direction) but "
        f"≈{nic_ms:.1f} ms through one 400 Gb/s NIC (~{NIC_GBPS:.0f} GB/s), every step."
    )


def _spans_evidence(ctx: Context, size: int) -> list[Evidence]:
    """SGLang's own 'spans across nodes' lines and NCCL communicators of this size on >1 node."""
    out = ctx.events_of("spans_nodes")[:4]
    comms = ctx.nccl_comms
    if comms.is_empty():
        return out
    crossing = comms.filter((pl.col("nranks") == size) & (pl.col("nnodes") > 1)).head(4)
    return out + [
        Evidence(file, line, text, "nccl")
        for file, line, text in crossing.select("file", "line", "text").iter_rows()
    ]


def _allreduce_across_nodes(ctx: Context) -> Iterable[Finding]:
    if ctx.layout is None:
        return
    seen: set[tuple[tuple[int, ...], ...]] = set()
    for g in _crossing(_busy_allreduce_groups(ctx)):
        key = tuple(tuple(r) for r in g.ranks)
        if key in seen:
            continue
        seen.add(key)
        same = [
            o.label
            for o in ctx.layout.groups
            if o.kind != g.kind and [list(r) for r in o.ranks] == g.ranks and o.kind != "world"
        ]
        also = f" (the same ranks as {', '.join(same)})" if same else ""
        first = next(h for h in g.hosts if len(h) > 1)
        n_cross = sum(1 for h in g.hosts if len(h) > 1)
        c = ctx.cfg
        nodes = c["nnodes"]
        alternatives = (
            f"Keep it inside one node: --tp {g.size // len(first)} "
            f"--pp-size {nodes * c['pp_size']} puts TP on NVLink and the {nodes} nodes on "
            "pipeline stages (PP sends one activation per stage boundary, fine across nodes); "
            "or, for MoE/MLA models, DP "
            f"attention with EP: --tp {c['tp_size']} --dp {c['tp_size']} --enable-dp-attention "
            "--moe-dense-tp-size 1 --moe-a2a-backend deepep, so attention stays per rank and "
            "only the expert all-to-all crosses nodes over RDMA."
        )
        subject = (
            f"The {g.label} group of {g.size} spans"
            if n_cross == 1 and len(g.ranks) == 1
            else f"{n_cross} of {len(g.ranks)} {g.label} groups of {g.size} span"
        )
        yield TP_ACROSS_NODES.finding(
            f"{subject} {len(first)} nodes ({', '.join(first)}){also}: their per-layer "
            "all-reduces run over the network. " + _cost(ctx, g.size),
            list(ctx.evidence_for("tp_size", "nnodes")) + _spans_evidence(ctx, g.size),
            fix=alternatives,
        )


TP_ACROSS_NODES = Rule(
    "RM101",
    "A per-layer all-reduce group spans nodes",
    "warning",
    "Whether a group that all-reduces in every layer — TP, ATTN_TP or MOE_TP, whichever this "
    "configuration keeps busy — has members on more than one node.",
    "Tensor parallelism all-reduces about 2 × hidden_size × 2 bytes per token in every layer. "
    "Inside a node NVLink 4 moves ~900 GB/s (450 GB/s each way); one 400 Gb/s InfiniBand NIC "
    "moves ~50 GB/s — about 9× less — and every layer waits for it. SGLang also turns its "
    "custom all-reduce off for such groups ('this process group spans across nodes').",
    "Keep TP within one node and use PP across nodes, or use DP attention with EP "
    "(--enable-dp-attention --moe-a2a-backend deepep --moe-dense-tp-size 1).",
    _allreduce_across_nodes,
)


def _gpus_used_per_node(ctx: Context) -> int:
    c = ctx.cfg
    per_world = c["tp_size"] * c["pp_size"] // max(c["nnodes"], 1)
    return per_world * ctx.cfg.replicas * c["gpu_id_step"] + c["base_gpu_id"]


def _gpu_fit(ctx: Context) -> Iterable[Finding]:
    c, gpn = ctx.cfg, ctx.gpus_per_node
    if gpn is None or ctx.layout is None:
        return
    used = _gpus_used_per_node(ctx)
    ev = ctx.evidence_for("tp_size", "pp_size", "nnodes", "dp_size", "base_gpu_id")
    shape = f"tp_size × pp_size / nnodes = {c['tp_size']} × {c['pp_size']} / {c['nnodes']}"
    if ctx.cfg.replicas > 1:
        shape += f", × {ctx.cfg.replicas} DP replicas"
    if used > gpn:
        yield GPU_FIT.finding(
            f"Each node needs GPU ids up to {used - 1} ({shape}) but has {gpn} GPUs: the "
            "schedulers of the extra ranks fail with an invalid device ordinal.",
            ev,
            severity="error",
        )
    elif used < gpn:
        idle = gpn - used
        yield GPU_FIT.finding(
            f"Each node runs {used} of its {gpn} GPUs ({shape}); {idle} GPU"
            f"{'s' if idle > 1 else ''} per node stay idle. --tp-size is the total across "
            "nodes, not per node.",
            ev,
        )


GPU_FIT = Rule(
    "RM102",
    "Ranks per node do not match the GPUs per node",
    "warning",
    "tp_size × pp_size / nnodes (× DP replicas on one node) against the node's GPU count.",
    "SGLang places tp_size × pp_size / nnodes ranks on each node and checks nothing against "
    "the node's GPUs: --tp 8 --nnodes 2 on 2 × 8 GPUs silently leaves 4 GPUs per node idle "
    "(and puts a TP group across the nodes); too many ranks fail at CUDA device selection.",
    "Set --tp-size (× --pp-size) to nnodes × GPUs per node, e.g. --tp 16 --nnodes 2 on "
    "2 × 8 GPUs, or fewer nodes.",
    _gpu_fit,
)


def _pp_across_nodes(ctx: Context) -> Iterable[Finding]:
    if ctx.layout is None:
        return
    pp = ctx.layout.group("pp")
    if pp and pp.size > 1 and _crossing([pp]):
        yield PP_ACROSS_NODES.finding(
            f"PP groups of {pp.size} span nodes: stages hand activations across the network "
            "once per stage boundary, which is the cheap way to use several nodes.",
            ctx.evidence_for("pp_size", "nnodes"),
        )


PP_ACROSS_NODES = Rule(
    "RM103",
    "Pipeline stages across nodes (fine)",
    "info",
    "Whether PP groups span nodes.",
    "PP sends one activation tensor per micro-batch at each stage boundary: for DeepSeek-V3 "
    "and a 128-token decode step that is 128 × 7168 × 2 B ≈ 1.8 MB per boundary, against "
    "≈224 MB that TP all-reduces over all 61 layers. It is the recommended multi-node "
    "dimension.",
    "Nothing to fix.",
    _pp_across_nodes,
)


def _ep_across_nodes(ctx: Context) -> Iterable[Finding]:
    c, layout = ctx.cfg, ctx.layout
    if layout is None or c["moe_a2a_backend"] not in ("none", None):
        return
    if ctx.model is not None and not ctx.model.is_moe:
        return
    ep = layout.group("moe_ep")
    if ep and ep.size > 1 and _crossing([ep]):
        yield EP_ACROSS_NODES.finding(
            f"MOE_EP groups of {ep.size} span nodes with --moe-a2a-backend none: expert "
            "dispatch runs as all-reduce/all-gather over the network instead of an RDMA "
            "all-to-all.",
            ctx.evidence_for("ep_size", "moe_a2a_backend", "nnodes"),
        )


EP_ACROSS_NODES = Rule(
    "RM104",
    "Expert parallel across nodes without an all-to-all backend",
    "warning",
    "An MOE_EP group that spans nodes while moe_a2a_backend is 'none'.",
    "DeepEP measures ~726 GB/s for EP8 over NVLink but ~90 GB/s for EP 8×2 over CX7 RDMA; "
    "without an a2a backend SGLang dispatches tokens with all-reduce/all-gather on the "
    "group, which moves far more bytes over the slow links.",
    "Add --moe-a2a-backend deepep (or mooncake) on RDMA-capable nodes, or keep --ep-size "
    "within one node.",
    _ep_across_nodes,
)

RULES: tuple[Rule, ...] = (TP_ACROSS_NODES, GPU_FIT, PP_ACROSS_NODES, EP_ACROSS_NODES)
