"""What each group kind means in general, for `rankmap explain NAME`.

The per-layout explanations (with the user's numbers) are written by the engine
modules; these are the engine-independent definitions behind them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    name: str
    title: str
    cut: str
    meaning: str
    traffic: str
    engines: str


TERMS: tuple[Term, ...] = (
    Term(
        "TP",
        "Tensor parallel",
        "parameters",
        "Every weight matrix is split across the ranks of a TP group; each rank computes its "
        "slice of every layer and the slices are summed.",
        "Two all-reduces of hidden_size × dtype bytes per token per layer (after attention and "
        "after the MLP): the busiest traffic of a model, so TP wants NVLink.",
        "SGLang --tp-size (the whole world of one PP stage; DP attention and the MoE "
        "dimensions are carved out of it); vLLM --tensor-parallel-size; Megatron "
        "--tensor-model-parallel-size.",
    ),
    Term(
        "PP",
        "Pipeline parallel",
        "parameters",
        "Layers are split into consecutive stages; each rank of a PP group holds one stage and "
        "passes activations to the next.",
        "Point-to-point send/recv of one activation tensor per micro-batch at each stage "
        "boundary — little traffic, so PP is the dimension to stretch across nodes.",
        "SGLang/vLLM --pipeline-parallel-size; Megatron --pipeline-model-parallel-size.",
    ),
    Term(
        "DP",
        "Data parallel",
        "requests",
        "Whole model replicas that serve different requests (inference) or different batches "
        "(training, with a gradient all-reduce).",
        "Inference: none between replicas. Training: gradient all-reduce / reduce-scatter once "
        "per step.",
        "SGLang --dp-size without --enable-dp-attention launches separate replicas whose rank "
        "numbers repeat; with DP attention see ATTN_DP.",
    ),
    Term(
        "ATTN_TP",
        "Attention tensor parallel",
        "parameters",
        "The TP width of the attention layers when attention is split differently from the rest "
        "of the model. In SGLang attn_tp_size = tp_size / attn_dp_size / attn_cp_size; its "
        "process group is named `attention_tp`.",
        "The attention all-reduce of each layer runs on it (and the vocab-sharded embedding "
        "under DP attention).",
        "SGLang: derived from --tp-size, --dp-size with --enable-dp-attention (or "
        "--attn-dp-size), and --attn-cp-size.",
    ),
    Term(
        "ATTN_DP",
        "Attention data parallel (DP attention)",
        "requests",
        "Inside one TP group, attention is run by attn_dp_size independent schedulers, each "
        "with its own batch and KV cache; the MoE/MLP part still uses the whole TP group. It "
        "is not replica DP: no extra GPUs, the TP group is subdivided. SGLang builds no "
        "communicator for it — the ranks of one ATTN_DP rank are an ATTN_TP × ATTN_CP block, "
        "and the log prefix token DPn is the attention-DP rank.",
        "Tokens of all DP ranks are gathered for the MoE layers (all-gather / all-to-all on the "
        "TP or EP group).",
        "SGLang --dp-size N --enable-dp-attention (≤ 0.5.22), --attn-dp-size N (0.5.23+).",
    ),
    Term(
        "ATTN_CP",
        "Attention context parallel",
        "sequences",
        "The tokens of one request are split across the ranks of an ATTN_CP group so that long "
        "prompts are prefilled in parallel; each rank holds the same attention weights slice "
        "(its ATTN_TP slice) and a part of the sequence. In SGLang the ATTN_CP groups are the "
        "ranks with the same attn_tp rank inside one attention-DP block (stride attn_tp_size).",
        "KV / partial attention results exchanged between CP partners (all-gather) during prefill.",
        "SGLang --attn-cp-size N (or set to tp_size / dp_size by --enable-prefill-cp / "
        "DSA and MLA prefill context parallel).",
    ),
    Term(
        "MOE_DP",
        "MoE data parallel (also spelled MOEDP)",
        "requests",
        "Copies of the expert layout that each serve a different share of the tokens: the TP "
        "group is split into moe_dp_size × ep_size × moe_tp_size. In SGLang, when attn_cp_size "
        "> moe_dp_size the MOE_DP group IS the ATTN_CP group (the CP partners exchange their "
        "tokens through the MoE-DP gather), so it has attn_cp_size members even with "
        "--moe-dp-size 1.",
        "Token gather/scatter between the MoE replicas around each MoE layer.",
        "SGLang --moe-dp-size N; aliased to ATTN_CP when --attn-cp-size is larger.",
    ),
    Term(
        "MOE_EP",
        "MoE expert parallel",
        "experts",
        "The routed experts are divided across the ranks of an EP group; each token is sent to "
        "the ranks that hold its experts. In SGLang ep_size is a width inside the TP group, "
        "not a multiple of it.",
        "All-to-all dispatch and combine per MoE layer (DeepEP/Mooncake/… with an a2a "
        "backend, otherwise all-reduce/all-gather based dispatch).",
        "SGLang --ep-size (forced to tp_size by --moe-a2a-backend deepep/mooncake/nixl/…).",
    ),
    Term(
        "MOE_TP",
        "MoE tensor parallel",
        "parameters",
        "Each expert's weights are split across the ranks of a MOE_TP group: moe_tp_size = "
        "tp_size / ep_size / moe_dp_size.",
        "All-reduce of the expert outputs inside the group.",
        "SGLang: derived from --tp-size, --ep-size and --moe-dp-size.",
    ),
    Term(
        "EP",
        "Expert parallel",
        "experts",
        "Experts of an MoE layer are placed on different ranks; tokens travel to their experts.",
        "All-to-all per MoE layer; wants NVLink inside a node and RDMA (with an a2a backend "
        "such as DeepEP) across nodes.",
        "SGLang --ep-size; vLLM --enable-expert-parallel (EP is always the whole dp × pcp × tp "
        "plane of a stage; the flag decides whether experts are split or TP-sharded over it); "
        "Megatron --expert-model-parallel-size; DeepSpeed ep_size.",
    ),
    Term(
        "CP",
        "Context parallel",
        "sequences",
        "The sequence dimension of one sample/request is split across ranks (ring or all-gather "
        "attention).",
        "KV exchange (ring send/recv or all-gather) per attention layer.",
        "SGLang --attn-cp-size; vLLM --prefill-context-parallel-size / "
        "--decode-context-parallel-size; Megatron --context-parallel-size.",
    ),
    Term(
        "SP",
        "Sequence parallel",
        "sequences",
        "Activations outside the TP-split matmuls (layer norms, dropout) are split along the "
        "sequence over the TP group; the TP all-reduce becomes reduce-scatter + all-gather.",
        "Same bytes as TP's all-reduce, on the TP group.",
        "Megatron --sequence-parallel (needs TP > 1).",
    ),
)

TERMS += (
    Term(
        "DP-CP",
        "Data parallel with context parallel",
        "requests",
        "Megatron's gradient and optimizer group: every rank holding the same weights (same TP "
        "and PP rank), that is DP × CP ranks.",
        "Gradient reduce-scatter / all-reduce and parameter all-gather once per step.",
        "Megatron DATA_PARALLEL_GROUP_WITH_CP (world / (tp·pp·cp) × cp ranks).",
    ),
    Term(
        "EDP",
        "Expert data parallel",
        "requests",
        "Replicas of the same experts in Megatron's expert grid (and DeepSpeed's expert-data "
        "groups): edp = world / (etp·ep·pp).",
        "Expert gradient reduction once per step.",
        "Megatron EXPERT_DATA_PARALLEL_GROUP; DeepSpeed expert-data-parallel groups (ep_size).",
    ),
    Term(
        "ETP",
        "Expert tensor parallel (Megatron) / Engram tensor parallel (vLLM)",
        "parameters",
        "Megatron: each expert's weights split over etp ranks, independent of the attention TP "
        "(default etp = tp). vLLM 0.30+: the Engram embedding's TP group, the `tp` group under "
        "another name unless an Engram config widens it to tp × dp.",
        "All-reduce / reduce-scatter of expert outputs per MoE layer (Megatron).",
        "Megatron --expert-tensor-parallel-size; vLLM etp (Engram models).",
    ),
    Term(
        "MP",
        "Model parallel",
        "parameters",
        "Every TP and PP rank of one Megatron model replica (CP not included).",
        "Small all-reduces (gradient norm, inf/NaN checks) per step.",
        "Megatron MODEL_PARALLEL_GROUP.",
    ),
    Term(
        "EMB",
        "Embedding group",
        "parameters",
        "The first and last pipeline stage, which hold the tied word embeddings.",
        "One all-reduce of the embedding gradient per step.",
        "Megatron EMBEDDING_GROUP (and POSITION_EMBEDDING_GROUP).",
    ),
    Term(
        "DISTOPT",
        "Distributed-optimizer instance",
        "world",
        "All ranks of one distributed-optimizer instance (world / "
        "num_distributed_optimizer_instances).",
        "Gradient-norm and zero-count reductions.",
        "Megatron INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP.",
    ),
    Term(
        "DCP",
        "Decode context parallel",
        "sequences",
        "The KV cache of one request split over ranks of the TP group, so long contexts fit "
        "during decode; it brings no GPUs of its own.",
        "Partial attention results combined across the group each decode step.",
        "vLLM -dcp / --decode-context-parallel-size; SGLang --dcp-size (0.5.23+).",
    ),
    Term(
        "PCP",
        "Prefill context parallel",
        "sequences",
        "The tokens of one prefill split over ranks that have GPUs of their own (vLLM's PCP "
        "axis sits between PP and TP: stride tp).",
        "KV exchange between the PCP ranks during prefill.",
        "vLLM -pcp / --prefill-context-parallel-size.",
    ),
    Term(
        "EPLB",
        "Expert-parallel load balancing",
        "experts",
        "A second communicator over the EP ranks that moves expert weights to rebalance hot "
        "experts at run time.",
        "Occasional expert-weight transfers between EP ranks.",
        "vLLM --enable-eplb; SGLang --enable-eplb (needs ep_size > 1).",
    ),
    Term(
        "HCP",
        "Hierarchical context parallel",
        "sequences",
        "A CP group split into levels (e.g. inside a node, then across nodes) so that the KV "
        "exchange uses NVLink for the inner level.",
        "Ring / all-gather KV exchange per level.",
        "Megatron --hierarchical-context-parallel-sizes.",
    ),
)

ALIASES: dict[str, str] = {
    "MOEDP": "MOE_DP",
    "ATTENTION_TP": "ATTN_TP",
    "ATTNTP": "ATTN_TP",
    "ATTNCP": "ATTN_CP",
    "ATTNDP": "ATTN_DP",
    "MOEEP": "MOE_EP",
    "MOETP": "MOE_TP",
    "ATTN_CP_SIZE": "ATTN_CP",
    "DPCP": "DP-CP",
    "DP_CP": "DP-CP",
    "EMBEDDING": "EMB",
}


def find_term(name: str) -> Term | None:
    key = name.strip().upper().replace("-", "_")
    key = ALIASES.get(key, key)
    return next((t for t in TERMS if t.name == key), None)
