"""Plain-words explanations of Megatron's groups, with the user's own numbers.

Each explanation names the grid (dense or expert), the tokens the group varies, the
formula with numbers and where every number came from, so a reader can trace an EP group
that lands on the CP positions back to the order string that put it there.
"""

from __future__ import annotations

from itertools import pairwise

from diagnose.engines.megatron import LAYOUT_V012, MegatronConfig
from diagnose.model import Group

SHORT = {
    "tensor_model_parallel_size": "tp",
    "pipeline_model_parallel_size": "pp",
    "context_parallel_size": "cp",
    "expert_model_parallel_size": "ep",
    "expert_tensor_parallel_size": "etp",
    "num_distributed_optimizer_instances": "n",
}

# group_desc of the gloo twin Megatron creates next to a group when gloo groups are on.
GLOO_TWINS = {
    "DATA_PARALLEL_GROUP_WITH_CP": "DATA_PARALLEL_GROUP_WITH_CP_GLOO",
    "INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP": "INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP_GLOO",
    "DATA_PARALLEL_GROUP": "DATA_PARALLEL_GROUP_GLOO",
    "EXPERT_DATA_PARALLEL_GROUP": "EXPERT_DATA_PARALLEL_GROUP_GLOO",
    "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L0": "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_GLOO_L0",
    "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L1": "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_GLOO_L1",
}


def _p(cfg: MegatronConfig, name: str) -> str:
    return f"{name}={cfg[name]} ({cfg.src(name)})"


def _shape(group: Group) -> str:
    n = len(group.ranks)
    return f"{n} group{'s' if n != 1 else ''} of {group.size}"


def _stride(group: Group) -> str:
    first = group.ranks[0]
    if len(first) < 2:
        return "single ranks"
    steps = {b - a for a, b in pairwise(first)}
    return f"stride {steps.pop()}" if len(steps) == 1 else "mixed strides"


def _order(cfg: MegatronConfig) -> str:
    src = _p(cfg, "use_tp_pp_dp_mapping") if cfg["use_tp_pp_dp_mapping"] else "the default"
    return f"order {cfg.order} ({src}; leftmost varies fastest)"


def _gloo(cfg: MegatronConfig, group: Group) -> str:
    twin = GLOO_TWINS.get(group.kind)
    if twin is None or group.alias_of is not None or not cfg["use_gloo_process_groups"]:
        return ""
    return (
        f" Megatron also creates a gloo twin `{twin}` over the same ranks (CPU-side "
        "checkpoint and optimizer bookkeeping; --disable-gloo-process-groups drops it)."
    )


def _dense_sizes(cfg: MegatronConfig) -> str:
    return f"tp={cfg.tp}, cp={cfg.cp}, dp={cfg.dp}, pp={cfg.pp}"


def _expert_sizes(cfg: MegatronConfig) -> str:
    return f"etp={cfg.etp}, ep={cfg.ep}, edp={cfg.edp}, pp={cfg.pp}"


def explain(cfg: MegatronConfig, group: Group) -> tuple[str, str, str]:
    """(explanation, formula, traffic) for one group kind of this configuration."""
    k = group.kind
    shape, stride = _shape(group), _stride(group)
    tp, cp, pp, dp, ep, etp, edp, w = (
        cfg.tp, cfg.cp, cfg.pp, cfg.dp, cfg.ep, cfg.etp, cfg.edp, cfg.world_size
    )  # fmt: skip
    dense = f"dense grid ({_dense_sizes(cfg)}, {_order(cfg)})"
    expert = f"expert grid ({_expert_sizes(cfg)}, same order without cp)"
    dp_formula = f"dp = world_size / (tp × pp × cp) = {w} / ({tp} × {pp} × {cp}) = {dp}"
    edp_formula = f"edp = world_size / (etp × ep × pp) = {w} / ({etp} × {ep} × {pp}) = {edp}"
    if k == "DATA_PARALLEL_GROUP_WITH_CP":
        return (
            f"Data parallel including context parallel: {shape}, {stride}; the ranks of the "
            f"{dense} that hold the same weights (same tp and pp rank). The distributed "
            f"optimizer shards over this group and gradients are reduced here, because CP "
            f"ranks hold identical weights.{_gloo(cfg, group)}",
            f"dp × cp = {dp} × {cp} = {dp * cp}; {dp_formula}",
            "Gradient reduce-scatter / all-reduce and parameter all-gather once per step "
            "(per bucket, overlapped with backward when --overlap-grad-reduce).",
        )
    if k == "INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP":
        if group.alias_of:
            return (
                "The distributed-optimizer shard group: with "
                f"{_p(cfg, 'num_distributed_optimizer_instances')} Megatron creates no group "
                "and uses DATA_PARALLEL_GROUP_WITH_CP itself (get_data_parallel_group("
                "with_context_parallel=True, partial_data_parallel=True)).",
                "n = 1: the whole DP-CP group",
                "As DATA_PARALLEL_GROUP_WITH_CP.",
            )
        n = cfg.instances
        return (
            f"One distributed-optimizer instance inside each DP-CP group: {shape}, consecutive "
            f"slices of dp × cp / n ranks. From {_p(cfg, 'num_distributed_optimizer_instances')}."
            f"{_gloo(cfg, group)}",
            f"dp × cp / n = {dp} × {cp} / {n} = {dp * cp // n}",
            "Optimizer-state reduce-scatter / all-gather inside the instance every step.",
        )
    if k == "INTER_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP":
        n = cfg.instances
        return (
            f"The same position in every distributed-optimizer instance (core 0.12): {shape}, "
            f"{stride}. From {_p(cfg, 'num_distributed_optimizer_instances')}.",
            f"n = {n}; stride dp × cp / n = {dp * cp // n}",
            "All-reduce of the instance-local gradients across instances.",
        )
    if k.startswith("HYBRID_DP_CP_GROUP_"):
        return (
            f"Hybrid context parallel: {shape}, consecutive blocks of each DP-CP group; "
            "Megatron picks one of these power-of-two groups per batch to run a long sequence "
            f"with more CP ranks. From {_p(cfg, 'hybrid_context_parallel')}.",
            f"block sizes 2 … dp × cp / 2 = {dp * cp // 2}",
            "Context-parallel attention exchange for the sequences assigned to the block.",
        )
    if k == "DATA_PARALLEL_GROUP":
        order_note = (
            "created before DATA_PARALLEL_GROUP_WITH_CP in core 0.12, after it since 0.13. "
            if cfg.layout_version == LAYOUT_V012
            else ""
        )
        return (
            f"Data parallel: {shape}, {stride}; the replicas of the {dense} with the same tp, cp "
            f"and pp rank. {order_note}World size {w} ({cfg.src('world_size')}) divided by the "
            f"model size.{_gloo(cfg, group)}",
            dp_formula,
            "Gradient reduction when CP is 1 (with CP > 1 the DP-CP group carries it).",
        )
    if k == "CONTEXT_PARALLEL_GROUP":
        return (
            f"Context parallel: {shape}, {stride}; the tokens of one sequence are split over "
            f"cp ranks that hold the same TP slice. From {_p(cfg, 'context_parallel_size')}.",
            f"cp = {cp}; stride tp = {tp} under {cfg.order}",
            "KV exchange in every attention layer (ring p2p by default, all-to-all with "
            "--cp-comm-type a2a).",
        )
    if k.startswith("HIERARCHICAL_CONTEXT_PARALLEL_GROUP_L"):
        level = int(k.rsplit("L", 1)[1])
        sizes = cfg.hcp_sizes
        return (
            f"Hierarchical context parallel, level {level}: {shape}; each CP group is split by "
            f"{_p(cfg, 'hierarchical_context_parallel_sizes')} (level {level} varies the "
            f"{sizes[level]} ranks at stride {_product(sizes[:level])} inside the CP group).",
            f"level sizes {sizes}, product = cp = {cp}",
            "The a2a+p2p CP exchange: all-to-all inside the inner level, p2p across.",
        )
    if k == "MODEL_PARALLEL_GROUP":
        return (
            f"Model parallel: {shape}; every tp and pp rank of one model replica (CP is not "
            "included).",
            f"tp × pp = {tp} × {pp} = {tp * pp}",
            "Small all-reduces (gradient-norm, inf/nan checks) once per step.",
        )
    if k == "TENSOR_MODEL_PARALLEL_GROUP":
        return (
            f"Tensor parallel: {shape}, consecutive ranks (tp is the fastest token). From "
            f"{_p(cfg, 'tensor_model_parallel_size')}; sequence parallel "
            f"{'on' if cfg['sequence_parallel'] else 'off'} ({cfg.src('sequence_parallel')}).",
            f"tp = {tp}",
            "Two all-reduces per layer forward and two backward (reduce-scatter / all-gather "
            "pairs with --sequence-parallel): the busiest traffic, so TP wants NVLink.",
        )
    if k == "PIPELINE_MODEL_PARALLEL_GROUP":
        vpp = cfg["virtual_pipeline_model_parallel_size"]
        vpp_note = (
            f" Interleaved schedule with {vpp} virtual stages per rank "
            f"({cfg.src('virtual_pipeline_model_parallel_size')}); it changes no group."
            if vpp
            else ""
        )
        return (
            f"Pipeline parallel: {shape}, {stride}; consecutive members are consecutive "
            f"stages. From {_p(cfg, 'pipeline_model_parallel_size')}.{vpp_note}",
            f"pp = {pp}; stride = product of the tokens left of pp in {cfg.order}",
            "Activations and gradients sent once per micro-batch at each stage boundary — "
            "little traffic, the dimension to stretch across nodes.",
        )
    if k == "EMBEDDING_GROUP":
        return (
            f"Embedding group: {shape}; the first and last pipeline stage of each PP group "
            "(Megatron's default_embedding_ranks; just the one stage when pp = 1).",
            "[first, last] stage of every PP group",
            "All-reduce of the tied word-embedding gradient once per step.",
        )
    if k == "POSITION_EMBEDDING_GROUP":
        return (
            f"Position-embedding group: {shape}; the first stage of each PP group.",
            "[first] stage of every PP group",
            "All-reduce of learned position-embedding gradients (none with RoPE).",
        )
    if k == "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP":
        return (
            f"Tensor × data × context parallel: {shape}; every rank of one pipeline stage.",
            f"tp × dp × cp = {tp} × {dp} × {cp} = {tp * dp * cp}",
            "FP8 amax reductions and MoE auxiliary-loss statistics.",
        )
    if k == "TENSOR_AND_DATA_PARALLEL_GROUP":
        return (
            f"Tensor × data parallel: {shape}.",
            f"tp × dp = {tp} × {dp} = {tp * dp}",
            "FP8 amax reductions (without CP).",
        )
    if k == "TENSOR_AND_CONTEXT_PARALLEL_GROUP":
        return (
            f"Tensor × context parallel: {shape}; the ranks that together process one "
            "sequence of one pipeline stage.",
            f"tp × cp = {tp} × {cp} = {tp * cp}",
            "MoE token gathering across TP and CP, loss statistics.",
        )
    if k in ("GTP_WEIGHT_REMAT_GROUP", "EXPERT_GTP_WEIGHT_REMAT_GROUP"):
        return (
            f"Generalized-TP weight rematerialisation (core 0.19+): {shape}; singletons with "
            "the default size 1, created on every rank anyway.",
            "gtp = 1",
            "None with size 1.",
        )
    if k == "EXPERT_MODEL_PARALLEL_GROUP":
        fold = ""
        if ep > 1 and cp > 1 and etp == tp:
            fold = (
                " The expert grid reuses the order without cp, so with etp = tp the EP ranks "
                "sit where the dense grid has its CP ranks (MoE parallel folding)."
            )
        return (
            f"Expert parallel: {shape}, {stride}; the routed experts are divided over ep ranks "
            f"of the {expert}. From {_p(cfg, 'expert_model_parallel_size')}.{fold}",
            f"ep = {ep}; {edp_formula}",
            f"Token dispatch/combine in every MoE layer ({_p(cfg, 'moe_token_dispatcher_type')}).",
        )
    if k == "EXPERT_TENSOR_PARALLEL_GROUP":
        return (
            f"Expert tensor parallel: {shape}; each expert's weights split over etp consecutive "
            f"ranks. From {_p(cfg, 'expert_tensor_parallel_size')}.",
            f"etp = {etp}",
            "All-reduce (or reduce-scatter) of expert outputs in every MoE layer.",
        )
    if k == "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP":
        return (
            f"Expert tensor × expert parallel: {shape}; all ranks that share one copy of the "
            "experts of a stage.",
            f"etp × ep = {etp} × {ep} = {etp * ep}",
            "The MoE all-to-all / all-gather when etp > 1.",
        )
    if k in (
        "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP",
        "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP_WITH_EGTP",
    ):
        return (
            f"Expert tensor × expert × pipeline parallel: {shape}; one complete copy of all "
            "expert weights across the stages.",
            f"etp × ep × pp = {etp} × {ep} × {pp} = {etp * ep * pp}",
            "Expert gradient-norm and checkpoint bookkeeping.",
        )
    if k == "EXPERT_DATA_PARALLEL_GROUP":
        return (
            f"Expert data parallel: {shape}, {stride}; replicas of the same experts in the "
            f"{expert}. The expert weights' gradients are reduced here, not on the dense DP "
            f"group.{_gloo(cfg, group)}",
            edp_formula,
            "Expert gradient reduce-scatter / all-reduce once per step.",
        )
    if k == "INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP":
        return (
            "The expert distributed-optimizer shard group: with one optimizer instance "
            "Megatron creates no group and uses EXPERT_DATA_PARALLEL_GROUP itself.",
            "n = 1: the whole EDP group",
            "As EXPERT_DATA_PARALLEL_GROUP.",
        )
    if k.startswith("HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L"):
        n = cfg.instances
        inner = k.endswith("L0")
        held = "_INTRA_PARTIAL" if inner else "_INTER_PARTIAL"
        what = (
            f"consecutive blocks of edp / n = {edp} / {n} = {edp // n} ranks (one optimizer "
            "instance)"
            if inner
            else f"the {n} ranks at stride edp / n = {edp // n} (the same shard in every instance)"
        )
        return (
            f"Expert data parallel split for {n} distributed-optimizer instances: {shape}, "
            f"{what}. Megatron holds it as {held}_EXPERT_DATA_PARALLEL_GROUP. From "
            f"{_p(cfg, 'num_distributed_optimizer_instances')}.{_gloo(cfg, group)}",
            f"sizes [edp / n, n] = [{edp // n}, {n}]",
            "Optimizer reduce-scatter inside an instance (L0); all-reduce across instances (L1).",
        )
    if k == "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP":
        n = cfg.instances
        return (
            f"One distributed-optimizer instance: {shape}; every edp / n = {edp // n} "
            "consecutive expert tensor × model × pipeline groups joined (Megatron passes the "
            "concatenated list unsorted). With n = 1 it is the whole world.",
            f"world_size / n = {w} / {n} = {w // n}",
            "Gradient-norm and zero-count reductions of the instance.",
        )
    return (f"{group.label}: {shape}.", "", "")


def _product(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def annotate(cfg: MegatronConfig, groups: list[Group]) -> None:
    for group in groups:
        group.explanation, group.formula, group.traffic = explain(cfg, group)
