"""Model shape against the split: heads, KV heads, experts and layers."""

from __future__ import annotations

from collections.abc import Iterable

from diagnose.model import Finding
from rules.base import Context, Rule


def _model_ev(ctx: Context) -> tuple:
    assert ctx.shape is not None
    return ctx.evidence_for(*ctx.shape.params.get("attention", ()))


def _heads(ctx: Context) -> Iterable[Finding]:
    m, shape = ctx.model, ctx.shape
    if m is None or not m.num_attention_heads or ctx.layout is None or shape is None:
        return
    w, name = shape.attention_width, shape.attention_width_name
    if m.num_attention_heads % w:
        yield HEADS.finding(
            f"{m.name} has {m.num_attention_heads} attention heads, not divisible by {name} = "
            f"{w}: the engine asserts this while building the attention layers.",
            _model_ev(ctx),
        )


HEADS = Rule(
    "RM201",
    "Attention heads must divide over the attention-TP width",
    "error",
    "num_attention_heads % width == 0, where width is attn_tp_size for MoE / MLA models "
    "(DeepSeek, Qwen3-MoE) and tp_size for dense models.",
    "Each attention-TP rank computes num_heads / width whole heads; SGLang asserts this "
    "(bare assert) while building the attention layer, after minutes of weight loading "
    "(64 heads on TP 6 would be 10.7 heads per rank).",
    "Choose a TP (or tp / dp / attn_cp) width that divides the head count, e.g. 64 heads → "
    "1, 2, 4, 8, 16.",
    _heads,
)


def _kv_heads(ctx: Context) -> Iterable[Finding]:
    m, shape = ctx.model, ctx.shape
    if m is None or m.is_mla or not m.num_key_value_heads or ctx.layout is None or shape is None:
        return
    kv = m.num_key_value_heads
    w, name = shape.attention_width, shape.attention_width_name
    if kv >= w and kv % w:
        yield KV_HEADS.finding(
            f"{m.name} has {kv} KV heads, not divisible by {name} = {w}: the engine asserts.",
            _model_ev(ctx),
            severity="error",
        )
    elif kv < w and w % kv:
        yield KV_HEADS.finding(
            f"{name} = {w} is not a multiple of {m.name}'s {kv} KV heads: the engine asserts.",
            _model_ev(ctx),
            severity="error",
        )
    elif kv < w:
        yield KV_HEADS.finding(
            f"{name} = {w} is larger than {m.name}'s {kv} KV heads: every KV head is "
            f"replicated on {w // kv} ranks, so the KV cache holds {w // kv}× the bytes it "
            "needs and serves that many times fewer tokens.",
            _model_ev(ctx),
        )


KV_HEADS = Rule(
    "RM202",
    "KV heads replicated over attention TP",
    "warning",
    "If width > num_key_value_heads the width must be a multiple and KV heads are replicated "
    "width / kv times; otherwise kv must be divisible by the width.",
    "A replicated KV head stores the same cache on several GPUs: with 8 KV heads on TP 16 "
    "each head lives twice and KV capacity halves.",
    "Keep the attention width ≤ the KV head count (use DP attention or PP for the rest).",
    _kv_heads,
)


def _mla_tp(ctx: Context) -> Iterable[Finding]:
    m, shape = ctx.model, ctx.shape
    if m is None or not m.is_mla or ctx.layout is None or shape is None or shape.training:
        return  # training keeps no KV cache
    w = shape.attention_width
    if w <= 1:
        return
    yield MLA_TP.finding(
        f"{m.name} uses MLA (one latent KV of rank {m.kv_lora_rank} per token): with attention "
        f"TP {w} every rank stores the same latent KV, {w}× the KV memory for no gain.",
        _model_ev(ctx),
        fix=shape.fix(MLA_TP.id, MLA_TP.fix),
    )


MLA_TP = Rule(
    "RM203",
    "MLA model with attention TP > 1",
    "warning",
    "A model with multi-head latent attention (kv_lora_rank set: DeepSeek V2/V3/R1, Kimi-K2) "
    "whose attention-TP width is above 1.",
    "MLA has a single latent KV per token; tensor parallel attention replicates it on every "
    "attention-TP rank, so TP 8 keeps 8 copies of the KV cache (SGLang's DP-attention guide "
    "gives exactly this reason for DP attention).",
    "Enable DP attention so attention-TP shrinks (--dp N --enable-dp-attention).",
    _mla_tp,
)


def _experts(ctx: Context) -> Iterable[Finding]:
    m, shape = ctx.model, ctx.shape
    if m is None or not m.is_moe or ctx.layout is None or shape is None:
        return
    ep, mtp = shape.ep, shape.moe_tp
    ev = ctx.evidence_for(*shape.params.get("ep", ()))
    if m.n_routed_experts % ep and not shape.uneven_experts:
        yield EXPERTS.finding(
            f"{m.name} has {m.n_routed_experts} routed experts, not divisible by the EP size "
            f"{ep}: the engine asserts while building the MoE layer.",
            ev,
        )
    if m.moe_intermediate_size and m.moe_intermediate_size % mtp:
        yield EXPERTS.finding(
            f"moe_intermediate_size {m.moe_intermediate_size} is not divisible by the MoE-TP "
            f"size {mtp}: each MoE-TP rank needs a whole slice of every expert.",
            ev,
        )


EXPERTS = Rule(
    "RM204",
    "Experts must divide over EP, expert weights over MoE-TP",
    "error",
    "n_routed_experts % ep_size == 0 and moe_intermediate_size % moe_tp_size == 0.",
    "Each EP rank holds n_routed_experts / ep_size whole experts and each MoE-TP rank a "
    "whole slice of every expert; SGLang asserts both (256 experts on EP 16 → 16 each; on "
    "EP 12 it fails).",
    "Choose --ep-size as a divisor of the expert count (and tp / ep / moe_dp dividing the "
    "expert intermediate size).",
    _experts,
)


def _layers(ctx: Context) -> Iterable[Finding]:
    m, shape = ctx.model, ctx.shape
    if m is None or shape is None or not m.num_hidden_layers or shape.pp <= 1:
        return
    pp = shape.pp
    if m.num_hidden_layers < pp:
        yield LAYERS.finding(
            f"{m.name} has {m.num_hidden_layers} layers for {pp} pipeline stages: some stages "
            "get no layer.",
            ctx.evidence_for(*shape.params.get("pp", ())),
            severity="error",
        )
        return
    split = shape.layer_split(m.num_hidden_layers, pp)
    if len(set(split)) > 1:
        yield LAYERS.finding(
            f"{m.num_hidden_layers} layers over {pp} stages do not divide evenly; the engine "
            f"splits them as {split}. The stage with most layers sets the pace.",
            ctx.evidence_for(*shape.params.get("pp", ())),
            fix=shape.fix(LAYERS.id, LAYERS.fix),
        )


LAYERS = Rule(
    "RM205",
    "Layers over pipeline stages",
    "info",
    "num_hidden_layers against the pipeline size, with the engine's actual split.",
    "Engines split layers evenly and place the remainder on some stages (SGLang: the last "
    "ones, 61 layers on PP 4 → [15, 15, 15, 16]; Megatron refuses an uneven split unless "
    "told); the stage with most layers sets the throughput.",
    "Pick a pipeline size dividing the layer count, or give the engine an explicit split "
    "(SGLANG_PP_LAYER_PARTITION, VLLM_PP_LAYER_PARTITION, Megatron's first/last-stage layer "
    "counts).",
    _layers,
)


def _ep_on_dense(ctx: Context) -> Iterable[Finding]:
    m, shape = ctx.model, ctx.shape
    if m is None or shape is None or m.is_moe or shape.ep <= 1:
        return
    yield EP_DENSE.finding(
        f"EP size {shape.ep} is set but {m.name} has no experts: the flag changes nothing "
        "(the expert-parallel groups exist and stay idle).",
        ctx.evidence_for(*shape.params.get("ep", ())),
    )


EP_DENSE = Rule(
    "RM206",
    "Expert parallel on a dense model",
    "warning",
    "ep_size > 1 (or an a2a backend that forces it) for a model without routed experts.",
    "An inert flag is worse than none: benchmark labels and capacity plans then assume an "
    "EP layout that does not exist (a recipe labelled ep=4 that ran with EP 1 is a known "
    "case).",
    "Drop --ep-size / --moe-a2a-backend for dense models.",
    _ep_on_dense,
)

RULES: tuple[Rule, ...] = (HEADS, KV_HEADS, MLA_TP, EXPERTS, LAYERS, EP_DENSE)
