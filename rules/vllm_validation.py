"""vLLM's own start-up checks, in vLLM's words, plus layout smells only vLLM has.

A configuration that fails one of these never gets past `ParallelConfig`, `ModelConfig` or
`EngineArgs.create_engine_config`; saying so before launch, with the message the user would
see in the traceback (worded as the release that would run it words it), saves a node
allocation. Message texts were read from the wheels: several were reworded in 0.26/0.27.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from diagnose.engines.vllm import VLLMConfig, coordinates
from diagnose.model import Evidence, Finding
from rules.base import Context, Rule


@dataclass(frozen=True)
class Condition:
    """One failing condition and the text vLLM raises for it; `model` is ModelFacts or None."""

    fails: Callable[[VLLMConfig, Any], bool]
    message: Callable[[VLLMConfig, Any], str]
    params: tuple[str, ...]


def _validation_rule(
    rule_id: str, title: str, what: str, why: str, fix: str, conditions: tuple[Condition, ...]
) -> Rule:
    def check(ctx: Context) -> Iterable[Finding]:
        for cond in conditions:
            try:
                failed = cond.fails(ctx.cfg, ctx.model)
            except (TypeError, ZeroDivisionError, ValueError):
                continue  # a malformed size: the layout error says so
            if failed:
                yield rule.finding(
                    f"vLLM refuses to start: {cond.message(ctx.cfg, ctx.model)}",
                    ctx.evidence_for(*cond.params),
                )

    rule = Rule(rule_id, title, "error", what, why, fix, check, engines=("vllm",))
    return rule


def _nnodes(c: VLLMConfig) -> int:
    """--nnodes as vLLM got it; a node count rankmap inferred or was told is not the flag."""
    given = c.params["nnodes"].source.kind in ("command line", "file")
    return c["nnodes"] if given else 1


def _new_nnodes_texts(c: VLLMConfig) -> bool:
    return c.since(0, 27)


def _nnodes_world(c: VLLMConfig) -> int:
    """The world size `EngineArgs` checks against --nnodes (PCP counted only from 0.27)."""
    pcp = c.pcp if c.since(0, 27) else 1
    return c.dp * c.pp * c.tp * pcp


def _kv(model: Any) -> int:
    return model.num_key_value_heads or model.num_attention_heads


def _dcp_gqa(c: VLLMConfig, model: Any) -> bool:
    return model is not None and c.dcp > 1 and not model.is_mla and bool(_kv(model))


def _dcp_gqa_message(c: VLLMConfig, model: Any) -> str:
    tp, dcp, kv = c.tp, c.dcp, _kv(model)
    q = (model.num_attention_heads or kv) // kv
    new = c.since(0, 27)
    if tp <= kv:
        return (
            f"Decode context parallelism for GQA/MQA requires `--tensor-parallel-size` ({tp}) "
            f"to be greater than the model's total number of KV heads ({kv}). Increase "
            "`--tensor-parallel-size` or set `--decode-context-parallel-size 1`."
            if new
            else f"tensor parallel size {tp} must be greater than total num kv heads {kv} when "
            "enable decode context parallel for GQA/MQA"
        )
    if dcp > tp // kv:
        return (
            f"`--decode-context-parallel-size` ({dcp}) exceeds the maximum supported value "
            f"({tp // kv}) for `--tensor-parallel-size` ({tp}) and {kv} model KV heads."
            if new
            else "decode context parallel size must less than or equal to (tensor parallel "
            f"size {tp} // total num kv heads {kv}) = {tp // kv}, but got {dcp}"
        )
    return (
        f"The model's number of query heads per KV head ({q}) must be divisible by "
        f"`--decode-context-parallel-size` ({dcp}) for GQA/MQA."
        if new
        else f"Total number of q per kv attn heads ({q}) must be divisible by dcp world size "
        f"when enable decode context parallel for GQA ({dcp})."
    )


def _dcp_gqa_fails(c: VLLMConfig, model: Any) -> bool:
    if not _dcp_gqa(c, model):
        return False
    tp, dcp, kv = c.tp, c.dcp, _kv(model)
    q = (model.num_attention_heads or kv) // kv
    return tp <= kv or dcp > tp // kv or q % dcp != 0


def _partition(c: VLLMConfig) -> list[int] | None:
    """VLLM_PP_LAYER_PARTITION as integers; raises ValueError for a malformed string."""
    given = c["pp_layer_partition"]
    return [int(x) for x in str(given).split(",")] if given else None


def _partition_message(c: VLLMConfig, model: Any) -> str:
    try:
        parts = _partition(c)
    except ValueError:
        return f"Invalid partition string: {c['pp_layer_partition']}"
    assert parts is not None
    if len(parts) != c.pp:
        return f"len(partitions)={len(parts)} does not match pp_size={c.pp}."
    return (
        f"sum(partitions)={sum(parts)} does not match num_hidden_layers={model.num_hidden_layers}."
    )


def _partition_fails(c: VLLMConfig, model: Any) -> bool:
    if not c["pp_layer_partition"]:
        return False
    try:
        parts = _partition(c)
    except ValueError:
        return True
    assert parts is not None
    if len(parts) != c.pp:
        return True
    layers = model.num_hidden_layers if model is not None else None
    return layers is not None and sum(parts) != layers


def _external_dp(c: VLLMConfig) -> bool:
    return bool(c["data_parallel_external_lb"]) or c["data_parallel_rank"] is not None


RULES: tuple[Rule, ...] = (
    _validation_rule(
        "RM401",
        "Decode context parallel must fit TP (and PCP)",
        "`tensor_parallel_size % decode_context_parallel_size == 0`; from 0.26 with PCP > 1, "
        "DCP must be 1, PCP or TP × PCP.",
        "DCP groups are cut from the TP ranks (DCP brings no GPUs of its own): -tp 8 -dcp 3 "
        "would leave 2 of 8 TP ranks without a DCP partner, so ParallelConfig raises before "
        "any GPU is touched (0.20–0.25 print `must be divisible bydcp_size=`, sic).",
        "Pick -dcp as a divisor of -tp (e.g. -tp 8 -dcp 2, 4 or 8); with -pcp N use -dcp 1, "
        "N or tp × N.",
        (
            Condition(
                lambda c, m: c.dcp > 1 and (c.pcp == 1 or not c.since(0, 26)) and c.tp % c.dcp,
                lambda c, m: (
                    f"tp_size={c.tp} must be divisible by dcp_size={c.dcp}."
                    if c.since(0, 26)
                    else f"tp_size={c.tp} must be divisible bydcp_size={c.dcp}."
                ),
                ("tensor_parallel_size", "decode_context_parallel_size"),
            ),
            Condition(
                lambda c, m: c.since(0, 26) and c.pcp > 1 and c.dcp not in (1, c.pcp, c.tp * c.pcp),
                lambda c, m: (
                    "When PCP is enabled, DCP must be disabled, span the PCP axis, or span the "
                    f"full TP x PCP axis. Got TP={c.tp}, PCP={c.pcp}, DCP={c.dcp}; valid DCP "
                    f"sizes are {sorted({1, c.pcp, c.tp * c.pcp})}."
                ),
                (
                    "tensor_parallel_size",
                    "prefill_context_parallel_size",
                    "decode_context_parallel_size",
                ),
            ),
        ),
    ),
    _validation_rule(
        "RM402",
        "Data-parallel sizes and ranks out of range",
        "data_parallel_size_local ≤ data_parallel_size; 0 ≤ data_parallel_rank < "
        "data_parallel_size; external load balancing only with data_parallel_size > 1; "
        "--data-parallel-rank only with data_parallel_size_local 1.",
        "Each DP rank is one engine with its own pp × pcp × tp GPUs; a node cannot host more "
        "DP ranks than exist (-dp 2 -dpl 4 would start 4 engines for 2 ranks), and a rank "
        "number outside [0, dp) has no place in the world of dp × pp × pcp × tp ranks.",
        "Keep -dpl ≤ -dp and -dpn below -dp; with --data-parallel-rank leave -dpl at 1.",
        (
            Condition(
                lambda c, m: (c["data_parallel_size_local"] or 0) > c.dp,
                lambda c, m: (
                    f"data_parallel_size_local ({c['data_parallel_size_local']}) must be <= "
                    f"data_parallel_size ({c.dp})"
                ),
                ("data_parallel_size_local", "data_parallel_size"),
            ),
            Condition(
                lambda c, m: (
                    c.dp > 1
                    and c["data_parallel_rank"] is not None
                    and not 0 <= c["data_parallel_rank"] < c.dp
                ),
                lambda c, m: (
                    f"data_parallel_rank ({c['data_parallel_rank']}) must be in the range "
                    f"[0, {c.dp})"
                ),
                ("data_parallel_rank", "data_parallel_size"),
            ),
            Condition(
                lambda c, m: c.dp <= 1 and c["data_parallel_external_lb"],
                lambda c, m: (
                    "data_parallel_external_lb can only be set when data_parallel_size > 1"
                ),
                ("data_parallel_external_lb", "data_parallel_size"),
            ),
            Condition(
                lambda c, m: (
                    c.dp > 1
                    and c["data_parallel_rank"] is not None
                    and c["data_parallel_size_local"] not in (None, 1)
                ),
                lambda c, m: (
                    "Invalid data-parallel launch options: an external data-parallel rank "
                    "requires `--data-parallel-size-local 1`; got "
                    f"{c['data_parallel_size_local']}. Set it to 1 or omit it."
                    if c.since(0, 27)
                    else "data_parallel_size_local must be 1 or None when data_parallel_rank is set"
                ),
                ("data_parallel_rank", "data_parallel_size_local"),
            ),
            Condition(
                lambda c, m: c["data_parallel_hybrid_lb"] and c["data_parallel_external_lb"],
                lambda c, m: (
                    "Invalid data-parallel launch options: `--data-parallel-hybrid-lb` and "
                    "`--data-parallel-external-lb` cannot be enabled together. Enable only one "
                    "load-balancing mode."
                    if c.since(0, 27)
                    else "data_parallel_hybrid_lb and data_parallel_external_lb cannot both "
                    "be True."
                ),
                ("data_parallel_hybrid_lb", "data_parallel_external_lb"),
            ),
        ),
    ),
    _validation_rule(
        "RM403",
        "EPLB needs expert parallelism over more than one rank",
        "--enable-eplb needs --enable-expert-parallel and tp × pcp × dp > 1; "
        "num_redundant_experts > 0 needs --enable-eplb.",
        "EPLB moves experts between the ranks of the EP group (dp × pcp × tp ranks of a stage); "
        "with experts TP-sharded, or a single rank, there is nothing to balance, so "
        "ParallelConfig raises (e.g. -tp 1 -dp 1 --enable-eplb).",
        "Add --enable-expert-parallel with -tp or -dp above 1, or drop --enable-eplb and the "
        "redundant experts.",
        (
            Condition(
                lambda c, m: c["enable_eplb"] and not c["enable_expert_parallel"],
                lambda c, m: "enable_expert_parallel must be True to use EPLB.",
                ("enable_eplb", "enable_expert_parallel"),
            ),
            Condition(
                lambda c, m: (
                    c["enable_eplb"] and c["enable_expert_parallel"] and c.tp * c.pcp * c.dp <= 1
                ),
                lambda c, m: (
                    "EPLB requires tensor, prefill-context, or data parallelism, but got "
                    f"TP={c.tp}, PCP={c.pcp}, DP={c.dp}."
                    if c.since(0, 26)
                    else "EPLB requires tensor_parallel_size or data_parallel_size to be greater "
                    f"than 1, but got TP={c.tp},DP={c.dp}."
                ),
                ("enable_eplb", "tensor_parallel_size", "data_parallel_size"),
            ),
            Condition(
                lambda c, m: not c["enable_eplb"] and c["num_redundant_experts"],
                lambda c, m: (
                    f"num_redundant_experts is set to {c['num_redundant_experts']} but EPLB is "
                    "not enabled. Either enable EPLB or unset num_redundant_experts."
                ),
                ("num_redundant_experts", "enable_eplb"),
            ),
        ),
    ),
    _validation_rule(
        "RM404",
        "Elastic EP needs EPLB and no pipeline parallelism",
        "--enable-elastic-ep with --enable-eplb and pipeline_parallel_size 1.",
        "Elastic EP resizes the DP/EP groups at run time through stateless groups and "
        "rebalances experts with EPLB; PP stages would have to be rebuilt too, which vLLM does "
        "not do (e.g. -pp 2 --enable-elastic-ep is refused).",
        "Add --enable-eplb and run with -pp 1.",
        (
            Condition(
                lambda c, m: c["enable_elastic_ep"] and not c["enable_eplb"],
                lambda c, m: "Elastic EP is only supported with enable_eplb=True.",
                ("enable_elastic_ep", "enable_eplb"),
            ),
            Condition(
                lambda c, m: c["enable_elastic_ep"] and c["enable_eplb"] and c.pp > 1,
                lambda c, m: (
                    "Elastic EP is not supported with pipeline parallelism "
                    f"(pipeline_parallel_size={c.pp})."
                ),
                ("enable_elastic_ep", "pipeline_parallel_size"),
            ),
        ),
    ),
    _validation_rule(
        "RM405",
        "Multi-node launch (--nnodes) settings",
        "With --nnodes N > 1: dp × pp × tp (× pcp from 0.27) divisible by N, node_rank < N, "
        "the mp data-parallel backend, and an mp/uni/external_launcher executor.",
        "--nnodes splits the dp × pp × pcp × tp ranks into N equal consecutive blocks, one per "
        "node; -tp 8 -dp 3 on --nnodes 2 would need 12 ranks per node. Ray places workers "
        "itself and refuses --nnodes.",
        "Choose sizes whose product is a multiple of --nnodes (e.g. -tp 8 -dp 2 --nnodes 2), "
        "give each node --node-rank 0 … N-1, and drop --nnodes under Ray.",
        (
            Condition(
                lambda c, m: _nnodes(c) > 1 and _nnodes_world(c) % c["nnodes"],
                lambda c, m: (
                    f"Invalid data-parallel launch options: `--nnodes {c['nnodes']}` must evenly "
                    f"divide the total world size ({_nnodes_world(c)}). Adjust `--nnodes`, "
                    "`--data-parallel-size`, `--pipeline-parallel-size`, "
                    "`--tensor-parallel-size`, or `--prefill-context-parallel-size`."
                    if _new_nnodes_texts(c)
                    else f"world_size={_nnodes_world(c)} must be divisible by nnodes={c['nnodes']}."
                ),
                ("nnodes", "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"),
            ),
            Condition(
                lambda c, m: _nnodes(c) > 1 and not 0 <= c["node_rank"] < c["nnodes"],
                lambda c, m: (
                    "Invalid data-parallel launch options: `--node-rank` must be between 0 and "
                    f"{c['nnodes'] - 1}; got `--node-rank {c['node_rank']}`. Set it to this "
                    "node's zero-based index."
                    if _new_nnodes_texts(c)
                    else f"node_rank={c['node_rank']} must be less than nnodes={c['nnodes']}."
                ),
                ("node_rank", "nnodes"),
            ),
            Condition(
                lambda c, m: _nnodes(c) > 1 and c["data_parallel_backend"] != "mp",
                lambda c, m: (
                    f"Invalid data-parallel launch options: `--nnodes {c['nnodes']}` requires "
                    "`--data-parallel-backend mp`; got `--data-parallel-backend "
                    f"{c['data_parallel_backend']}`. Use the MP backend or set `--nnodes 1`."
                    if _new_nnodes_texts(c)
                    else "nnodes > 1 is only supported with data_parallel_backend=mp"
                ),
                ("nnodes", "data_parallel_backend"),
            ),
            Condition(
                lambda c, m: (
                    _nnodes(c) > 1
                    and c["distributed_executor_backend"]
                    not in (None, "mp", "uni", "external_launcher")
                ),
                lambda c, m: (
                    "nnodes > 1 can only be set when distributed executor backend is mp, uni or "
                    "external_launcher."
                ),
                ("nnodes", "distributed_executor_backend"),
            ),
        ),
    ),
    _validation_rule(
        "RM406",
        "Model features the parallel flags need",
        "--enable-expert-parallel and external DP (--data-parallel-rank) need a MoE model; "
        "decode context parallel on a GQA/MQA model needs tp > KV heads, dcp ≤ tp / KV heads "
        "and query heads per KV head divisible by dcp.",
        "EP splits routed experts (a dense model has none); DCP on GQA splits the query heads "
        "of one KV head over the DCP ranks, so Llama-3.1-8B (8 KV heads, 4 queries each) needs "
        "-tp 16 for -dcp 2. ModelConfig / EngineArgs raise after the model config is read.",
        "Drop -ep / --data-parallel-rank for dense models (run independent servers instead); "
        "size -dcp as the message says.",
        (
            Condition(
                lambda c, m: m is not None and c["enable_expert_parallel"] and not m.is_moe,
                lambda c, m: (
                    "Number of experts in the model must be greater than 0 when expert "
                    "parallelism is enabled."
                ),
                ("enable_expert_parallel", "model_path"),
            ),
            Condition(
                lambda c, m: m is not None and not m.is_moe and c.dp > 1 and _external_dp(c),
                lambda c, m: (
                    "Non-MoE models do not support external data parallel mode. For external "
                    "load balancing, launch independent vLLM instances without "
                    "--data-parallel-* arguments."
                ),
                ("data_parallel_rank", "data_parallel_external_lb", "model_path"),
            ),
            Condition(
                _dcp_gqa_fails,
                _dcp_gqa_message,
                ("decode_context_parallel_size", "tensor_parallel_size", "model_path"),
            ),
        ),
    ),
    _validation_rule(
        "RM407",
        "VLLM_PP_LAYER_PARTITION must list one layer count per stage",
        "VLLM_PP_LAYER_PARTITION is comma-separated integers, one per pipeline stage, summing "
        "to num_hidden_layers.",
        "get_pp_indices reads it on every rank while building the model: '31,30' for -pp 2 on "
        "DeepSeek-V3's 61 layers is valid, '30,30' (60) or '20,20,21' (3 stages) raise.",
        "Give exactly pipeline_parallel_size integers that add up to the layer count.",
        (
            Condition(
                _partition_fails,
                _partition_message,
                ("pp_layer_partition", "pipeline_parallel_size"),
            ),
        ),
    ),
)


def _ep_off(ctx: Context) -> Iterable[Finding]:
    c = ctx.cfg
    if not (c.is_moe and c.has_ep_group) or c["enable_expert_parallel"] or c.dp_in_world <= 1:
        return
    yield EP_OFF.finding(
        f"--enable-expert-parallel is off for a MoE model with data_parallel_size {c.dp}: every "
        f"expert is TP-sharded over dp × pcp × tp = {c.flat_moe} ranks, so each MoE layer "
        f"reduces over all {c.flat_moe} of them, across the DP replicas.",
        ctx.evidence_for("enable_expert_parallel", "data_parallel_size", "tensor_parallel_size"),
    )


EP_OFF = Rule(
    "RM408",
    "MoE with data parallel but without expert parallel",
    "warning",
    "A MoE model run with data_parallel_size > 1 and no --enable-expert-parallel.",
    "vLLM then builds the MoE layers with moe_tp = dp × pcp × tp: -dp 8 -tp 1 on DeepSeek-V3 "
    "splits each of the 256 experts' 2048-wide FFN 8 ways (256 columns per rank) and reduces "
    "every MoE layer over all 8 DP ranks, instead of giving each rank 32 whole experts.",
    "Add --enable-expert-parallel (and an --all2all-backend for multi-node).",
    _ep_off,
    engines=("vllm",),
)


def _gpu_overlap(ctx: Context) -> Iterable[Finding]:
    layout = ctx.layout
    if layout is None:
        return
    seen: dict[tuple[int | None, int | None], list[tuple[int, int]]] = {}
    for p in layout.placement:
        seen.setdefault((p.node, p.gpu), []).append((p.replica, p.rank))
    shared = {k: v for k, v in seen.items() if len(v) > 1 and None not in k}
    if not shared:
        return
    (node, gpu), who = next(iter(shared.items()))
    yield GPU_OVERLAP.finding(
        f"{len(shared)} GPU(s) would host two ranks, e.g. GPU {gpu} of node {node} gets ranks "
        f"{[r for _, r in who]}: before 0.33 a DP rank's first GPU is dp_local_rank × pp × tp, "
        f"which ignores prefill_context_parallel_size {ctx.cfg.pcp}.",
        ctx.evidence_for(
            "prefill_context_parallel_size", "data_parallel_size", "data_parallel_size_local"
        ),
    )


GPU_OVERLAP = Rule(
    "RM409",
    "Two DP ranks on the same GPUs (PCP with several local DP ranks)",
    "error",
    "Whether the placement puts two ranks on one GPU.",
    "Up to vLLM 0.32 the GPU offset of a local DP rank is dp_local_rank × pp × tp without the "
    "PCP factor: -dp 2 -pcp 2 -tp 2 on one node puts DP rank 1 on GPUs 2–5, overlapping GPUs "
    "2–3 of DP rank 0; both load the model there and run out of memory or corrupt each other.",
    "Run one DP rank per node with PCP (-dpl 1), or upgrade to vLLM 0.33+.",
    _gpu_overlap,
    engines=("vllm",),
)


def _prefix_problem(ctx: Context, tokens: dict[str, int]) -> str | None:
    """Why a rank statement cannot come from this configuration, or None."""
    c = ctx.cfg
    world = tokens.get("world_size")
    if world is not None and world != c.world_size:
        return f"world size {world} where this configuration gives {c.world_size}"
    rank = tokens.get("rank")
    if rank is None or rank >= c.world_size:
        return None if rank is None else f"rank {rank} in a world of {c.world_size}"
    expected = coordinates(c, rank)
    for key in ("dp", "pp", "pcp", "tp", "ep"):
        if key in tokens and key in expected and tokens[key] != expected[key]:
            return (
                f"rank {rank} logs {key.upper()} rank {tokens[key]} where this configuration "
                f"gives {expected[key]}"
            )
    return None


def _prefixes(ctx: Context) -> Iterable[Finding]:
    if ctx.layout is None:
        return
    bad: dict[str, Evidence] = {}
    for ev, tokens in ctx.prefixes:
        problem = _prefix_problem(ctx, tokens)
        if problem and problem not in bad:
            bad[problem] = ev
    if bad:
        shown = list(bad.items())[:5]
        yield PREFIXES.finding(
            f"{len(bad)} kind(s) of rank statement contradict the configuration, e.g. "
            + "; ".join(p for p, _ in shown)
            + ". The logs come from another configuration or another version than assumed.",
            [ev for _, ev in shown]
            + list(ctx.evidence_for("tensor_parallel_size", "data_parallel_size")),
        )


PREFIXES = Rule(
    "RM410",
    "Rank assignments in the logs contradict the configuration",
    "error",
    "Every `rank R in world size W is assigned as DP …, PP …, TP …` line and worker-name "
    "prefix against the world size and coordinates the resolved configuration gives.",
    "These lines are vLLM's own statement of each process's place; when one says world size "
    "8 where the configuration gives 16 (a dense model's DP replicas since 0.14, or another "
    "run's log), every group shown would be wrong.",
    "Point rankmap at the logs of one run, pass the launch command, or --engine-version.",
    _prefixes,
    engines=("vllm",),
)

RULES = (*RULES, EP_OFF, GPU_OVERLAP, PREFIXES)
