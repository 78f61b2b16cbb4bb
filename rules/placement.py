"""Where groups land on nodes and what that costs."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from diagnose.model import Evidence, Finding, Group
from rules.base import Context, Rule

NVLINK_GBPS = 450.0  # H100/H200 NVLink 4: 900 GB/s bidirectional, 450 GB/s each way
NIC_GBPS = 50.0  # one 400 Gb/s NDR InfiniBand NIC per GPU
DECODE_BATCH = 128  # tokens per decode step used to put a number on the cost


def _crossing(groups: list[Group]) -> list[Group]:
    return [g for g in groups if any(len(h) > 1 for h in g.hosts)]


def _busy_allreduce_groups(ctx: Context) -> list[Group]:
    """The all-reduce-carrying groups (of size > 1) the engine says this config keeps busy."""
    assert ctx.layout is not None and ctx.shape is not None
    groups = (ctx.layout.group(kind) for kind in ctx.shape.allreduce_kinds)
    return [g for g in groups if g is not None and g.size > 1]


def _cost(ctx: Context, size: int) -> str:
    model, shape = ctx.model, ctx.shape
    if model is None or not model.hidden_size or not model.num_hidden_layers:
        return (
            "Each layer all-reduces about 2 × hidden_size × 2 bytes per token (pass "
            "--model-config for numbers in milliseconds)."
        )
    per_token = 2 * model.hidden_size * model.dtype_bytes * model.num_hidden_layers
    if shape is not None and shape.training:
        return (
            f"For {model.name} (hidden_size {model.hidden_size}, {model.num_hidden_layers} "
            f"layers) that is {per_token / 1e3:.0f} kB all-reduced per token in the forward pass "
            f"and as much again in the backward pass, at ~{NIC_GBPS:.0f} GB/s through one "
            f"400 Gb/s NIC instead of ~{NVLINK_GBPS:.0f} GB/s over NVLink."
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
    if ctx.layout is None or ctx.shape is None:
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
        subject = (
            f"The {g.label} group of {g.size} spans"
            if n_cross == 1 and len(g.ranks) == 1
            else f"{n_cross} of {len(g.ranks)} {g.label} groups of {g.size} span"
        )
        yield TP_ACROSS_NODES.finding(
            f"{subject} {len(first)} nodes ({', '.join(first)}){also}: their per-layer "
            "all-reduces run over the network. " + _cost(ctx, g.size),
            list(ctx.evidence_for(*ctx.shape.params.get("tp", ()))) + _spans_evidence(ctx, g.size),
            fix=ctx.shape.fix(TP_ACROSS_NODES.id, TP_ACROSS_NODES.fix),
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


def _gpu_fit(ctx: Context) -> Iterable[Finding]:
    shape, gpn = ctx.shape, ctx.gpus_per_node
    if gpn is None or ctx.layout is None or shape is None:
        return
    used = shape.gpus_used_per_node
    ev = ctx.evidence_for(*shape.params.get("fit", ()))
    if used > gpn:
        yield GPU_FIT.finding(
            f"Each node needs GPU ids up to {used - 1} ({shape.per_node_formula}) but has {gpn} "
            "GPUs: the ranks beyond them fail with an invalid device ordinal.",
            ev,
            severity="error",
        )
    elif used < gpn:
        idle = gpn - used
        yield GPU_FIT.finding(
            f"Each node runs {used} of its {gpn} GPUs ({shape.per_node_formula}); {idle} GPU"
            f"{'s' if idle > 1 else ''} per node stay idle. The TP size is the total across "
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
    if ctx.layout is None or ctx.shape is None:
        return
    pp = ctx.layout.group(ctx.shape.pp_kind)
    if pp and pp.size > 1 and _crossing([pp]):
        yield PP_ACROSS_NODES.finding(
            f"PP groups of {pp.size} span nodes: stages hand activations across the network "
            "once per stage boundary, which is the cheap way to use several nodes.",
            ctx.evidence_for(*ctx.shape.params.get("pp", ())),
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
    shape, layout = ctx.shape, ctx.layout
    if layout is None or shape is None or shape.ep_kind is None or shape.a2a_backend != "none":
        return
    if ctx.model is not None and not ctx.model.is_moe:
        return
    ep = layout.group(shape.ep_kind)
    if ep and ep.size > 1 and _crossing([ep]):
        yield EP_ACROSS_NODES.finding(
            f"{ep.label} groups of {ep.size} span nodes without an all-to-all backend: expert "
            "dispatch runs as all-reduce/all-gather over the network instead of an RDMA "
            "all-to-all.",
            ctx.evidence_for(*shape.params.get("ep", ())),
            fix=shape.fix(EP_ACROSS_NODES.id, EP_ACROSS_NODES.fix),
        )


EP_ACROSS_NODES = Rule(
    "RM104",
    "Expert parallel across nodes without an all-to-all backend",
    "warning",
    "An expert-parallel group that spans nodes while no all-to-all backend is configured "
    "(SGLang: moe_a2a_backend 'none').",
    "DeepEP measures ~726 GB/s for EP8 over NVLink but ~90 GB/s for EP 8×2 over CX7 RDMA; "
    "without an a2a backend tokens are dispatched with all-reduce/all-gather on the group, "
    "which moves far more bytes over the slow links.",
    "Use an RDMA all-to-all backend (SGLang --moe-a2a-backend deepep or mooncake), or keep "
    "EP within one node.",
    _ep_across_nodes,
)

RULES: tuple[Rule, ...] = (TP_ACROSS_NODES, GPU_FIT, PP_ACROSS_NODES, EP_ACROSS_NODES)
