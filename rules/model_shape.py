"""Model shape against the split: heads, KV heads, experts and layers."""

from __future__ import annotations

from collections.abc import Iterable

from diagnose.model import Finding
from rules.base import Context, Rule


def _attn_width(ctx: Context) -> tuple[int, str]:
    """The width attention heads are split over: attention TP in MoE/MLA-aware models."""
    c, m = ctx.cfg, ctx.model
    if m.is_moe or m.is_mla:
        return c.attn_tp_size, "attn_tp_size"
    return c["tp_size"], "tp_size"


def _model_ev(ctx: Context) -> tuple:
    return ctx.evidence_for("tp_size", "dp_size", "attn_cp_size", "model_path")


def _heads(ctx: Context) -> Iterable[Finding]:
    m = ctx.model
    if m is None or not m.num_attention_heads or ctx.layout is None:
        return
    w, name = _attn_width(ctx)
    if m.num_attention_heads % w:
        yield HEADS.finding(
            f"{m.name} has {m.num_attention_heads} attention heads, not divisible by {name} = "
            f"{w}: SGLang's `assert total_num_heads % attn_tp_size == 0` fails while loading.",
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
    m = ctx.model
    if m is None or m.is_mla or not m.num_key_value_heads or ctx.layout is None:
        return
    kv = m.num_key_value_heads
    w, name = _attn_width(ctx)
    if kv >= w and kv % w:
        yield KV_HEADS.finding(
            f"{m.name} has {kv} KV heads, not divisible by {name} = {w}: SGLang asserts.",
            _model_ev(ctx),
            severity="error",
        )
    elif kv < w and w % kv:
        yield KV_HEADS.finding(
            f"{name} = {w} is not a multiple of {m.name}'s {kv} KV heads: SGLang asserts.",
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
    m, c = ctx.model, ctx.cfg
    if m is None or not m.is_mla or ctx.layout is None or c.attn_tp_size <= 1:
        return
    yield MLA_TP.finding(
        f"{m.name} uses MLA (one latent KV of rank {m.kv_lora_rank} per token): with attention "
        f"TP {c.attn_tp_size} every rank stores the same latent KV, {c.attn_tp_size}× the KV "
        "memory for no gain.",
        _model_ev(ctx),
        fix=f"Use DP attention wide enough for attn_tp_size 1: --dp "
        f"{c['tp_size'] // c['attn_cp_size']} --enable-dp-attention.",
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
    m, c = ctx.model, ctx.cfg
    if m is None or not m.is_moe or ctx.layout is None:
        return
    ep, mtp = c["ep_size"], c.moe_tp_size
    ev = ctx.evidence_for("ep_size", "tp_size", "moe_a2a_backend")
    if m.n_routed_experts % ep:
        yield EXPERTS.finding(
            f"{m.name} has {m.n_routed_experts} routed experts, not divisible by ep_size {ep}: "
            "SGLang asserts while building the MoE layer.",
            ev,
        )
    if m.moe_intermediate_size and m.moe_intermediate_size % mtp:
        yield EXPERTS.finding(
            f"moe_intermediate_size {m.moe_intermediate_size} is not divisible by moe_tp_size "
            f"{mtp} (tp_size {c['tp_size']} / ep_size {ep} / moe_dp_size {c['moe_dp_size']}).",
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


def _split(layers: int, pp: int) -> list[int]:
    """SGLang's even split: the last `layers % pp` stages take one extra layer."""
    base, extra = divmod(layers, pp)
    return [base + (1 if i >= pp - extra else 0) for i in range(pp)]


def _layers(ctx: Context) -> Iterable[Finding]:
    m, c = ctx.model, ctx.cfg
    pp = c["pp_size"]
    if m is None or not m.num_hidden_layers or pp <= 1 or ctx.layout is None:
        return
    if m.num_hidden_layers < pp:
        yield LAYERS.finding(
            f"{m.name} has {m.num_hidden_layers} layers for {pp} pipeline stages: some stages "
            "get no layer.",
            ctx.evidence_for("pp_size"),
            severity="error",
        )
        return
    split = _split(m.num_hidden_layers, pp)
    if len(set(split)) > 1:
        yield LAYERS.finding(
            f"{m.num_hidden_layers} layers over {pp} stages do not divide evenly; SGLang gives "
            f"the last {m.num_hidden_layers % pp} stage(s) one more: {split}. The slowest stage "
            "sets the pace.",
            ctx.evidence_for("pp_size"),
        )


LAYERS = Rule(
    "RM205",
    "Layers over pipeline stages",
    "info",
    "num_hidden_layers against pp_size, with SGLang's actual split.",
    "SGLang splits layers evenly and gives the remainder to the last stages (61 layers on "
    "PP 4 → [15, 15, 15, 16]); the stage with most layers sets the throughput.",
    "Pick pp_size dividing the layer count, or set SGLANG_PP_LAYER_PARTITION to balance "
    "embedding/head-heavy stages.",
    _layers,
)


def _ep_on_dense(ctx: Context) -> Iterable[Finding]:
    m, c = ctx.model, ctx.cfg
    if m is None or m.is_moe or c["ep_size"] <= 1:
        return
    yield EP_DENSE.finding(
        f"ep_size {c['ep_size']} is set but {m.name} has no experts: the flag changes nothing "
        "(the MOE_EP groups exist and stay idle).",
        ctx.evidence_for("ep_size", "moe_a2a_backend"),
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
