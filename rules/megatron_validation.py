"""Megatron's own start-up checks, with Megatron's own messages.

A configuration that fails one of these dies in `validate_args`, `TransformerConfig` or
`initialize_model_parallel`, usually after the job waited in the queue for its nodes;
saying so before launch, in the words the traceback would use, saves the allocation.
Messages are quoted from megatron/training/arguments.py, megatron/core/parallel_state.py,
model_parallel_config.py and transformer_config.py (core_v0.13 – main), typos included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from diagnose.engines.megatron import PP_DP_ORDER, MegatronConfig
from diagnose.model import Finding, Severity
from rules.base import Context, Rule

ENGINES = ("megatron",)


@dataclass(frozen=True)
class Condition:
    """One failing condition and the text Megatron raises for it."""

    fails: Callable[[MegatronConfig, Context], bool]
    message: Callable[[MegatronConfig, Context], str]
    params: tuple[str, ...]


def _sizes_ok(c: MegatronConfig) -> bool:
    names = (
        "tensor_model_parallel_size",
        "pipeline_model_parallel_size",
        "context_parallel_size",
        "expert_model_parallel_size",
        "expert_tensor_parallel_size",
        "num_distributed_optimizer_instances",
        "world_size",
    )
    return all(isinstance(c[n], int) and c[n] > 0 for n in names)


def _rule(
    rule_id: str,
    title: str,
    severity: Severity,
    what: str,
    why: str,
    fix: str,
    conditions: tuple[Condition, ...],
    prefix: str = "Megatron refuses to start: ",
) -> Rule:
    def check(ctx: Context) -> Iterable[Finding]:
        c = ctx.cfg
        if not _sizes_ok(c):
            return
        for cond in conditions:
            if cond.fails(c, ctx):
                yield rule.finding(prefix + cond.message(c, ctx), ctx.evidence_for(*cond.params))

    rule = Rule(rule_id, title, severity, what, why, fix, check, engines=ENGINES)
    return rule


def _min_gpus(c: MegatronConfig) -> int:
    return c.pp * max(c.tp * c.cp, c.ep * c.etp)


def _layers(c: MegatronConfig, ctx: Context) -> int | None:
    """Transformer layers from --num-layers, else from the model's config.json."""
    if c["num_layers"]:
        return c["num_layers"]
    return ctx.model.num_hidden_layers if ctx.model is not None else None


def _uneven(c: MegatronConfig) -> bool:
    return (
        c["decoder_first_pipeline_num_layers"] is not None
        or c["decoder_last_pipeline_num_layers"] is not None
        or c["pipeline_model_parallel_layout"] is not None
    )


def _layer_total(c: MegatronConfig, layers: int) -> int:
    return (
        layers
        + int(bool(c["account_for_embedding_in_pipeline_split"]))
        + int(bool(c["account_for_loss_in_pipeline_split"]))
    )


def _middle(c: MegatronConfig, layers: int) -> tuple[int, int]:
    """(layers, stages) left for the middle stages after the first/last-stage counts."""
    first, last = c["decoder_first_pipeline_num_layers"], c["decoder_last_pipeline_num_layers"]
    stages = c.pp - (first is not None) - (last is not None)
    return layers - (first or 0) - (last or 0), stages


def _vpp_active(c: MegatronConfig) -> bool:
    return bool(c["virtual_pipeline_model_parallel_size"]) or bool(
        c["num_layers_per_virtual_pipeline_stage"] or c["num_virtual_stages_per_pipeline_rank"]
    )


WORLD = _rule(
    "RM501",
    "World size must divide into TP × PP × CP",
    "error",
    "world_size % (tensor_model_parallel_size × pipeline_model_parallel_size × "
    "context_parallel_size) == 0, when the world has at least that many ranks.",
    "Every GPU must sit in exactly one (tp, cp, pp) position of one data-parallel replica: "
    "dp = world / (tp × pp × cp). 24 GPUs with tp 4, pp 2, cp 2 (model size 16) would leave "
    "8 GPUs without a replica; arguments.py asserts and initialize_model_parallel raises.",
    "Choose sizes whose product divides the GPU count (nnodes × nproc_per_node), e.g. on 24 "
    "GPUs tp 4 × pp 2 × cp 1 (dp 3) or tp 4 × pp 3 (dp 2).",
    (
        Condition(
            lambda c, _: (
                c.world_size >= c.tp * c.pp * c.cp and c.world_size % (c.tp * c.pp * c.cp) != 0
            ),
            lambda c, _: (
                f"world size ({c.world_size}) is not divisible by total_model_size "
                f"(total_model_size={c.tp * c.pp * c.cp}) — parallel_state: world_size "
                f"({c.world_size}) is not divisible by {c.tp * c.pp * c.cp}"
            ),
            (
                "world_size",
                "nnodes",
                "nproc_per_node",
                "tensor_model_parallel_size",
                "pipeline_model_parallel_size",
                "context_parallel_size",
            ),
        ),
    ),
)

EXPERT_WORLD = _rule(
    "RM502",
    "World size must divide into ETP × EP × PP",
    "error",
    "world_size % (expert_tensor_parallel_size × expert_model_parallel_size × "
    "pipeline_model_parallel_size) == 0, when the world has at least that many ranks.",
    "The MoE layers lay the same GPUs out again as (etp, ep, edp, pp) with edp = world / "
    "(etp × ep × pp): 24 GPUs with etp 1, ep 16, pp 1 leave 8 GPUs without an expert "
    "replica, so initialize_model_parallel raises.",
    "Pick --expert-model-parallel-size × --expert-tensor-parallel-size × "
    "--pipeline-model-parallel-size dividing the GPU count (e.g. ep 8 on 24 GPUs).",
    (
        Condition(
            lambda c, _: (
                c.world_size >= c.etp * c.ep * c.pp and c.world_size % (c.etp * c.ep * c.pp) != 0
            ),
            lambda c, _: (
                f"world_size ({c.world_size}) is not divisible by "
                f"expert_tensor_model_pipeline_parallel size ({c.etp * c.ep * c.pp})"
            ),
            (
                "world_size",
                "expert_model_parallel_size",
                "expert_tensor_parallel_size",
                "pipeline_model_parallel_size",
            ),
        ),
    ),
)

MIN_GPUS = _rule(
    "RM503",
    "Fewer GPUs than the smallest world of this layout",
    "error",
    "world_size ≥ min GPUs = pp × max(tp × cp, ep × etp).",
    "The dense grid needs tp × cp × pp GPUs and the expert grid ep × etp × pp; both share "
    "the same GPUs per pipeline stage, so the minimum is pp × max(tp × cp, ep × etp), not "
    "the product of all sizes: tp 2, cp 2, pp 2, ep 8 needs 2 × max(4, 8) = 16 GPUs, not "
    "64. Below it Megatron fails its divisibility checks.",
    "Add GPUs (torchrun --nnodes / --nproc-per-node) or shrink the largest of tp × cp and "
    "ep × etp.",
    (
        Condition(
            lambda c, _: c.world_size < _min_gpus(c),
            lambda c, _: (
                f"world_size ({c.world_size}) is smaller than pp × max(tp × cp, ep × etp) = "
                f"{c.pp} × max({c.tp * c.cp}, {c.ep * c.etp}) = {_min_gpus(c)}"
            ),
            (
                "world_size",
                "nnodes",
                "nproc_per_node",
                "tensor_model_parallel_size",
                "context_parallel_size",
                "expert_model_parallel_size",
                "expert_tensor_parallel_size",
                "pipeline_model_parallel_size",
            ),
        ),
    ),
)

ORDER = _rule(
    "RM504",
    "tp-pp-dp ordering needs the same DP size in dense and MoE layers",
    "error",
    "With --use-tp-pp-dp-mapping (order tp-cp-ep-pp-dp) and pp > 1: dp == edp, i.e. "
    "tp × cp == etp × ep.",
    "With dp outermost, a PP group is spaced by tp × cp in the dense grid and by etp × ep "
    "in the expert grid; both must be the same groups, so tp 2, cp 1 with ep 4, etp 1 "
    "(dp 4 vs edp 2 on 16 GPUs, pp 2) is refused by an assert.",
    "Drop --use-tp-pp-dp-mapping (the default order keeps pp outermost) or make "
    "tp × cp equal to etp × ep.",
    (
        Condition(
            lambda c, _: (
                c.order == PP_DP_ORDER
                and c.pp > 1
                and c.world_size % (c.tp * c.pp * c.cp) == 0
                and c.world_size % (c.etp * c.ep * c.pp) == 0
                and c.dp != c.edp
            ),
            lambda c, _: (
                "When not using pp-last rank ordering, the data parallel size of the attention "
                f"and moe layers must be the same (dp {c.dp}, edp {c.edp})"
            ),
            (
                "use_tp_pp_dp_mapping",
                "pipeline_model_parallel_size",
                "tensor_model_parallel_size",
                "context_parallel_size",
                "expert_model_parallel_size",
                "expert_tensor_parallel_size",
            ),
        ),
    ),
)

DISTOPT = _rule(
    "RM505",
    "Distributed-optimizer instances must divide DP × CP and EDP",
    "error",
    "(dp × cp) % num_distributed_optimizer_instances == 0 and edp % "
    "num_distributed_optimizer_instances == 0 (the expert check from core 0.13).",
    "Each instance takes a consecutive slice of every DP-CP group (dp × cp / n ranks) and "
    "of every expert-DP group (edp / n); dp × cp 6 with 4 instances gives 1.5 ranks.",
    "Choose --num-distributed-optimizer-instances dividing both dp × cp and edp.",
    (
        Condition(
            lambda c, _: (
                c.world_size % (c.tp * c.pp * c.cp) == 0 and (c.dp * c.cp) % c.instances != 0
            ),
            lambda c, _: (
                "Data parallel size should be divisible by partial DistOpt shard factor "
                f"(dp × cp = {c.dp * c.cp}, instances {c.instances})"
            ),
            ("num_distributed_optimizer_instances", "world_size"),
        ),
        Condition(
            lambda c, _: (
                c.world_size % (c.etp * c.ep * c.pp) == 0
                and c.edp % c.instances != 0
                and not c.layout_version.startswith("core 0.12")
            ),
            lambda c, _: (
                "Expert data parallel size should be divisible by partial DistOpt shard factor "
                f"(edp = {c.edp}, instances {c.instances})"
            ),
            ("num_distributed_optimizer_instances", "expert_model_parallel_size"),
        ),
    ),
)

VPP = _rule(
    "RM506",
    "Virtual pipeline stages need pipeline parallelism",
    "error",
    "An interleaved schedule (--num-layers-per-virtual-pipeline-stage, "
    "--num-virtual-stages-per-pipeline-rank) needs pp > 1, and pp > 2 with "
    "--no-overlap-p2p-communication.",
    "Virtual stages interleave chunks of layers over the PP ranks; with pp 1 there is nothing "
    "to interleave and initialize_model_parallel raises; without p2p overlap pp 2 would "
    "send and receive twice between the same 2 ranks per batch.",
    "Drop the virtual-pipeline flags, or use --pipeline-model-parallel-size ≥ 2 (≥ 3 "
    "without p2p overlap).",
    (
        Condition(
            lambda c, _: _vpp_active(c) and c.pp <= 1,
            lambda c, _: (
                "pipeline-model-parallel size should be greater than 1 with interleaved schedule"
            ),
            (
                "pipeline_model_parallel_size",
                "num_layers_per_virtual_pipeline_stage",
                "num_virtual_stages_per_pipeline_rank",
                "virtual_pipeline_model_parallel_size",
            ),
        ),
        Condition(
            lambda c, _: (
                bool(c["virtual_pipeline_model_parallel_size"])
                and c.pp == 2
                and not c["overlap_p2p_comm"]
            ),
            lambda c, _: (
                "When interleaved schedule is used and p2p communication overlap is disabled, "
                "pipeline-model-parallel size should be greater than 2 to avoid having multiple "
                "p2p sends and recvs between same 2 ranks per communication batch"
            ),
            ("pipeline_model_parallel_size", "overlap_p2p_comm"),
        ),
    ),
)


def _vpp_layers_fail(c: MegatronConfig, ctx: Context) -> str | None:
    per_stage, layers = c["num_layers_per_virtual_pipeline_stage"], _layers(c, ctx)
    if not per_stage or not layers or c.pp <= 1 or c["num_virtual_stages_per_pipeline_rank"]:
        return None
    total = _layer_total(c, layers)
    if total % c.pp:
        return (
            "number of layers of the model must be divisible pipeline model parallel size "
            f"({total} layers, pp {c.pp})"
        )
    if (total // c.pp) % per_stage:
        return (
            "number of layers per pipeline stage must be divisible number of layers per "
            f"virtual pipeline stage ({total // c.pp} per stage, {per_stage} per virtual stage)"
        )
    return None


VPP_LAYERS = _rule(
    "RM507",
    "Layers must divide into virtual pipeline stages",
    "error",
    "With --num-layers-per-virtual-pipeline-stage v: num_layers % pp == 0 and "
    "(num_layers / pp) % v == 0.",
    "Each pipeline rank holds num_layers / pp layers cut into chunks of v: 32 layers on "
    "pp 4 give 8 per rank, which v = 3 cannot cut.",
    "Pick v dividing num_layers / pp, or use --num-virtual-stages-per-pipeline-rank.",
    (
        Condition(
            lambda c, ctx: _vpp_layers_fail(c, ctx) is not None,
            lambda c, ctx: str(_vpp_layers_fail(c, ctx)),
            ("num_layers", "pipeline_model_parallel_size", "num_layers_per_virtual_pipeline_stage"),
        ),
    ),
)

SEQUENCE_PARALLEL = _rule(
    "RM508",
    "Sequence parallel needs tensor parallel",
    "warning",
    "--sequence-parallel with tensor_model_parallel_size 1.",
    "Sequence parallelism shards LayerNorm/dropout activations over the TP group; with tp 1 "
    "there is no group to shard over. Megatron's training loop silently turns it off "
    "('Disabling sequence parallelism because tensor model parallelism is disabled'), while "
    "megatron-core's ModelParallelConfig raises 'Cannot use sequence parallelism without "
    "tensor parallelism' (e.g. from NeMo 2).",
    "Drop --sequence-parallel, or use --tensor-model-parallel-size ≥ 2.",
    (
        Condition(
            lambda c, _: (
                c.tp == 1 and c.params["sequence_parallel"].source.kind == "engine rewrite"
            ),
            lambda c, _: (
                "sequence parallel was asked for with tensor_model_parallel_size 1: "
                "'Disabling sequence parallelism because tensor model parallelism is disabled'"
            ),
            ("sequence_parallel", "tensor_model_parallel_size"),
        ),
    ),
    prefix="",
)

EP_NEEDS_SP = _rule(
    "RM509",
    "Expert and tensor parallelism together need sequence parallel",
    "warning",
    "expert_model_parallel_size > 1 and tensor_model_parallel_size > 1 without "
    "--sequence-parallel.",
    "MoE token dispatch with TP expects the activations sharded over TP (sequence parallel); "
    "megatron-core warns 'When using expert parallelism and tensor parallelism for training, "
    "sequence parallelism must be used' and the MoE layer then all-gathers tp× more tokens "
    "(tp 2 → twice the dispatch volume).",
    "Add --sequence-parallel.",
    (
        Condition(
            lambda c, _: c.ep > 1 and c.tp > 1 and not c["sequence_parallel"],
            lambda c, _: (
                "When using expert parallelism and tensor parallelism for training, sequence "
                f"parallelism must be used (ep {c.ep}, tp {c.tp})"
            ),
            ("expert_model_parallel_size", "tensor_model_parallel_size", "sequence_parallel"),
        ),
    ),
    prefix="Megatron warns: ",
)

CP_SEQ = _rule(
    "RM510",
    "Sequence length must be a multiple of 2 × CP",
    "error",
    "With context_parallel_size > 1: seq_length % (2 × context_parallel_size) == 0.",
    "Context parallel load-balances causal attention by cutting each sequence into "
    "2 × cp chunks (zig-zag): 4096 tokens on cp 2 give 4 chunks of 1024; on cp 3 the 6 "
    "chunks would be 682.7 tokens, so arguments.py asserts.",
    "Use a --seq-length that is a multiple of 2 × --context-parallel-size.",
    (
        Condition(
            lambda c, _: (
                c.cp > 1 and isinstance(c["seq_length"], int) and c["seq_length"] % (2 * c.cp) != 0
            ),
            lambda c, _: (
                "seq-length should be a multiple of 2 * context-parallel-size if "
                f"context-parallel-size > 1. (seq_length {c['seq_length']}, cp {c.cp})"
            ),
            ("seq_length", "context_parallel_size"),
        ),
    ),
)

EXPERTS = _rule(
    "RM511",
    "Expert parallel needs experts that divide over it",
    "error",
    "expert_model_parallel_size > 1 needs --num-experts, and num_experts % "
    "expert_model_parallel_size == 0.",
    "Each EP rank holds num_experts / ep whole experts: 64 experts on ep 8 give 8 each, on "
    "ep 12 they would give 5.3; without --num-experts the model has no MoE layer to split.",
    "Set --num-experts, and pick --expert-model-parallel-size dividing it.",
    (
        Condition(
            lambda c, _: c.ep > 1 and c["num_experts"] is None,
            lambda c, _: "num_experts must be non None to use expert model parallelism",
            ("expert_model_parallel_size", "num_experts"),
        ),
        Condition(
            lambda c, _: (
                c.ep > 1 and isinstance(c["num_experts"], int) and c["num_experts"] % c.ep != 0
            ),
            lambda c, _: (
                "Number of experts should be a multiple of expert model parallel_size. "
                f"({c['num_experts']} experts, ep {c.ep})"
            ),
            ("expert_model_parallel_size", "num_experts"),
        ),
    ),
)

HEADS = _rule(
    "RM512",
    "Attention heads and query groups must divide over TP",
    "error",
    "num_attention_heads % tp == 0; num_query_groups a multiple or a divisor of tp.",
    "Each TP rank computes num_attention_heads / tp whole heads (32 heads on tp 6 would be "
    "5.3) and holds whole KV groups or a share of one; TransformerConfig raises before the "
    "model is built.",
    "Choose --tensor-model-parallel-size dividing --num-attention-heads and dividing (or "
    "divided by) --num-query-groups.",
    (
        Condition(
            lambda c, _: (
                isinstance(c["num_attention_heads"], int) and c["num_attention_heads"] % c.tp != 0
            ),
            lambda c, _: (
                f"num_attention_heads ({c['num_attention_heads']}) must be a multiple of "
                f"tensor_model_parallel_size ({c.tp})."
            ),
            ("num_attention_heads", "tensor_model_parallel_size"),
        ),
        Condition(
            lambda c, _: (
                isinstance(c["num_query_groups"], int)
                and c["num_query_groups"] > 0
                and c["num_query_groups"] % c.tp != 0
                and c.tp % c["num_query_groups"] != 0
            ),
            lambda c, _: (
                f"num_query_groups ({c['num_query_groups']}) must be a multiple or divisor of "
                f"tensor_model_parallel_size ({c.tp})."
            ),
            ("num_query_groups", "tensor_model_parallel_size"),
        ),
    ),
)


def _layers_fail(c: MegatronConfig, ctx: Context) -> str | None:
    layers = _layers(c, ctx)
    if not layers or c.pp <= 1 or _vpp_active(c):
        return None
    if c["pipeline_model_parallel_layout"] is not None:
        return None
    if not _uneven(c):
        total = _layer_total(c, layers)
        if total % c.pp:
            return (
                "Number of layers should be divisible by the pipeline-model-parallel size "
                f"({total} layers, pp {c.pp}; Megatron splits layers evenly)"
            )
        return None
    rest, stages = _middle(c, layers)
    if bool(rest) != bool(stages):
        return f"Mismatch: {rest} middle layers remaining but {stages} middle PP stages available."
    if stages and rest % stages:
        return (
            f"number of layers at middle stage: {rest} must be divisible bythe middle pipeline "
            f"model parallel size {stages}"
        )
    return None


LAYERS = _rule(
    "RM513",
    "Layers must split evenly over pipeline stages",
    "error",
    "num_layers % pp == 0 (+1 for each of --account-for-embedding/loss-in-pipeline-split); "
    "with --decoder-first/last-pipeline-num-layers the remaining layers must divide over "
    "the middle stages.",
    "Megatron, unlike the inference engines, never spreads a remainder: 61 layers on pp 4 "
    "are refused, where SGLang would run [15, 15, 15, 16]. Uneven first/last stages are "
    "the supported way out (61 = 13 + 3 × 16 with --decoder-first-pipeline-num-layers 13).",
    "Pick pp dividing the layer count, or set --decoder-first-pipeline-num-layers / "
    "--decoder-last-pipeline-num-layers (or --pipeline-model-parallel-layout).",
    (
        Condition(
            lambda c, ctx: _layers_fail(c, ctx) is not None,
            lambda c, ctx: str(_layers_fail(c, ctx)),
            (
                "num_layers",
                "pipeline_model_parallel_size",
                "decoder_first_pipeline_num_layers",
                "decoder_last_pipeline_num_layers",
            ),
        ),
    ),
)

HIERARCHICAL_CP = _rule(
    "RM514",
    "Hierarchical CP sizes must multiply to the CP size",
    "error",
    "prod(--hierarchical-context-parallel-sizes) == context_parallel_size; a2a+p2p CP "
    "needs the sizes.",
    "Each CP group is split level by level; sizes [2, 2] split a CP group of 4 into 2 × 2, "
    "[2, 4] would need 8 ranks. Megatron uses a bare assert, so the traceback shows no "
    "message.",
    "Give sizes whose product is --context-parallel-size (e.g. cp 8 → 2 4).",
    (
        Condition(
            lambda c, _: bool(c.hcp_sizes) and _prod(c.hcp_sizes) != c.cp,
            lambda c, _: (
                f"assert np.prod(hierarchical_context_parallel_sizes) == context_parallel_size "
                f"fails: prod({c.hcp_sizes}) = {_prod(c.hcp_sizes)}, cp = {c.cp}"
            ),
            ("hierarchical_context_parallel_sizes", "context_parallel_size"),
        ),
        Condition(
            lambda c, _: "a2a+p2p" in str(c.get("cp_comm_type")) and not c.hcp_sizes,
            lambda c, _: (
                "--hierarchical-context-parallel-sizes must be set when a2a+p2p is used in cp comm"
            ),
            ("cp_comm_type", "hierarchical_context_parallel_sizes"),
        ),
    ),
)


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


HYBRID_CP = _rule(
    "RM515",
    "Hybrid context parallel limits",
    "error",
    "--hybrid-context-parallel (core 0.16+) needs pp == 1 and an even dp × cp.",
    "Hybrid CP re-groups the DP × CP ranks per batch into power-of-two blocks; with pp 2 "
    "the stages would disagree on the blocks, and dp × cp 6 cannot be halved into powers of "
    "two, so arguments.py and initialize_model_parallel refuse.",
    "Use --pipeline-model-parallel-size 1 and an even dp × cp, or plain --context-parallel-size.",
    (
        Condition(
            lambda c, _: bool(c["hybrid_context_parallel"]) and c.pp > 1,
            lambda c, _: "Hybrid context parallelism not supported with pipeline parallelism",
            ("hybrid_context_parallel", "pipeline_model_parallel_size"),
        ),
        Condition(
            lambda c, _: (
                bool(c["hybrid_context_parallel"])
                and c.world_size % (c.tp * c.pp * c.cp) == 0
                and (c.dp * c.cp) % 2 != 0
            ),
            lambda c, _: "Hybrid context parallel requires an even number of ranks",
            ("hybrid_context_parallel", "context_parallel_size", "world_size"),
        ),
    ),
)

DEPRECATED = _rule(
    "RM516",
    "Removed and inconsistent flags",
    "error",
    "--model-parallel-size (removed); --tp-comm-overlap without --sequence-parallel.",
    "arguments.py asserts on both: --model-parallel-size 8 no longer means tp 8 and would "
    "otherwise be silently ignored; TP communication overlap pipelines the reduce-scatter "
    "/ all-gather pairs that only exist with sequence parallel.",
    "Use --tensor-model-parallel-size instead of --model-parallel-size; add "
    "--sequence-parallel to --tp-comm-overlap.",
    (
        Condition(
            lambda c, _: "model_parallel_size" in c.params,
            lambda c, _: (
                "--model-parallel-size is no longer valid, use --tensor-model-parallel-size instead"
            ),
            ("model_parallel_size",),
        ),
        Condition(
            lambda c, _: bool(c.get("tp_comm_overlap")) and not c["sequence_parallel"],
            lambda c, _: (
                "Tensor parallel communication/GEMM overlap can happen only when sequence "
                "parallelism is enabled"
            ),
            ("tp_comm_overlap", "sequence_parallel"),
        ),
    ),
)


def _launcher_world(c: MegatronConfig) -> int | None:
    """nnodes × nproc_per_node when both were given (not defaulted or inferred)."""
    n, p = c.params["nnodes"], c.params["nproc_per_node"]
    given = ("command line", "file", "option")
    known = n.source.kind in given and p.source.kind in given
    if known and isinstance(n.value, int) and isinstance(p.value, int):
        return n.value * p.value
    return None


WORLD_MISMATCH = _rule(
    "RM517",
    "The log's world size differs from the launcher's",
    "warning",
    "world_size (from `using world size:` or the argument dump) against torchrun's "
    "nnodes × nproc_per_node, and the dumped data_parallel_size against world / "
    "(tp × pp × cp).",
    "Megatron takes its world from torchrun's WORLD_SIZE; a log that says 16 next to a "
    "command for 2 × 4 = 8 processes comes from another launch (or from a node that "
    "joined another rendezvous), and the groups shown would be those of neither.",
    "Check that every node ran the same torchrun --nnodes / --nproc-per-node, and that the "
    "log and the command belong to one job.",
    (
        Condition(
            lambda c, _: (
                c.params["world_size"].source.kind == "file"
                and _launcher_world(c) is not None
                and _launcher_world(c) != c.world_size
            ),
            lambda c, _: (
                f"the log says world size {c.world_size} ({c.src('world_size')}) but torchrun "
                f"starts nnodes × nproc_per_node = {c['nnodes']} × {c['nproc_per_node']} = "
                f"{_launcher_world(c)} processes"
            ),
            ("world_size", "nnodes", "nproc_per_node"),
        ),
        Condition(
            lambda c, _: (
                "data_parallel_size" in c.params
                and isinstance(c["data_parallel_size"], int)
                and c.world_size % (c.tp * c.pp * c.cp) == 0
                and c["data_parallel_size"] != c.dp
            ),
            lambda c, _: (
                f"the log says data-parallel size {c['data_parallel_size']} "
                f"({c.src('data_parallel_size')}) but world / (tp × pp × cp) = "
                f"{c.world_size} / ({c.tp} × {c.pp} × {c.cp}) = {c.dp}"
            ),
            ("data_parallel_size", "world_size"),
        ),
    ),
    prefix="",
)

# Megatron messages a log can show, and the rule that explains each.
LOGGED: tuple[tuple[str, str], ...] = (
    (r"is not divisible by total_model_size|world_size \(\d+\) is not divisible by \d+", "RM501"),
    (r"not divisible by expert_tensor_model_pipeline_parallel size", "RM502"),
    (r"data parallel size of the attention and moe layers must be the same", "RM504"),
    (r"divisible by partial DistOpt shard factor", "RM505"),
    (
        r"should be greater than [12] with interleaved schedule|pipeline-model-parallel size "
        r"should be greater than",
        "RM506",
    ),
    (r"must be divisible (?:pipeline model parallel size|number of layers per virtual)", "RM507"),
    (r"Cannot use sequence parallelism without tensor parallelism", "RM508"),
    (r"seq-length should be a multiple of 2 \* context-parallel-size", "RM510"),
    (r"num_experts must be non None|Number of experts should be a multiple", "RM511"),
    (
        r"must be a multiple of tensor_model_parallel_size|must be a multiple or divisor of "
        r"tensor_model_parallel_size",
        "RM512",
    ),
    (
        r"Number of layers should be divisible by the pipeline-model-parallel size"
        r"|middle pipeline model parallel size",
        "RM513",
    ),
    (r"Hybrid context parallel", "RM515"),
    (r"Both EP and CP > 1 in not allow|you haven'tspecified the order", "RM504"),
)


def _logged(ctx: Context) -> Iterable[Finding]:
    seen: set[str] = set()
    for ev in ctx.events_of("exception"):
        for pattern, rule_id in LOGGED:
            if rule_id in seen or not re.search(pattern, ev.text):
                continue
            seen.add(rule_id)
            message = ev.text.split("Error: ", 1)[-1].strip()
            yield LOGGED_ASSERTION.finding(
                f"The log shows Megatron refusing the layout: {message} (see {rule_id}, "
                f"`rankmap explain {rule_id}`).",
                [ev],
            )


LOGGED_ASSERTION = Rule(
    "RM518",
    "Megatron refused the layout (from the log)",
    "error",
    "AssertionError / RuntimeError / ValueError lines in the logs that carry one of "
    "Megatron's layout validation messages (RM501 – RM515).",
    "A refused layout ends the job on all ranks before the first step, after the queue wait "
    "and the 1 – 2 minutes of start-up; the message names the arithmetic that failed, and "
    "the matching rule explains it with the sizes of this job.",
    "Fix the sizes the message names (the matching rule gives the arithmetic), then launch again.",
    _logged,
    engines=ENGINES,
)

RULES: tuple[Rule, ...] = (
    WORLD,
    EXPERT_WORLD,
    MIN_GPUS,
    ORDER,
    DISTOPT,
    VPP,
    VPP_LAYERS,
    SEQUENCE_PARALLEL,
    EP_NEEDS_SP,
    CP_SEQ,
    EXPERTS,
    HEADS,
    LAYERS,
    HIERARCHICAL_CP,
    HYBRID_CP,
    DEPRECATED,
    WORLD_MISMATCH,
    LOGGED_ASSERTION,
)
