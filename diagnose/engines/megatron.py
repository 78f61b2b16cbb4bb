"""Megatron-core's process-group layout, reproduced from its own formulas.

Megatron lays one torch world of W ranks out twice with the same order string (default
`tp-cp-ep-dp-pp`, leftmost fastest): a dense grid (tp, cp, dp, pp) for attention and
dense layers, and an expert grid (etp, ep, edp, pp) for the MoE layers, where
dp = W / (tp·pp·cp) and edp = W / (etp·ep·pp). Every group is "ranks that differ only
along some tokens" of one grid (`RankGenerator.get_ranks`), which is exactly
`Mesh.groups` on a mesh whose axes are the order string reversed. The groups and their
order are those of `parallel_state.initialize_model_parallel`; the resolution step
mirrors the parts of `megatron/training/arguments.py` that change the layout, so a
launch command and an argument dump give the same layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from diagnose.engines.base import Derived, Shape, Values, parse_version
from diagnose.model import DEFAULT, Axis, Group, Layout, Mesh, Param, Placement, Source

DEFAULT_ORDER = "tp-cp-ep-dp-pp"
PP_DP_ORDER = "tp-cp-ep-pp-dp"
TOKENS = ("tp", "cp", "ep", "dp", "pp")

DEFAULTS: dict[str, Any] = {
    "tensor_model_parallel_size": 1,
    "pipeline_model_parallel_size": 1,
    "context_parallel_size": 1,
    "expert_model_parallel_size": 1,
    "expert_tensor_parallel_size": None,
    "num_distributed_optimizer_instances": 1,
    "hierarchical_context_parallel_sizes": None,
    "hybrid_context_parallel": False,
    "use_tp_pp_dp_mapping": False,
    "virtual_pipeline_model_parallel_size": None,
    "num_layers_per_virtual_pipeline_stage": None,
    "num_virtual_stages_per_pipeline_rank": None,
    "pipeline_model_parallel_layout": None,
    "decoder_first_pipeline_num_layers": None,
    "decoder_last_pipeline_num_layers": None,
    "account_for_embedding_in_pipeline_split": False,
    "account_for_loss_in_pipeline_split": False,
    "overlap_p2p_comm": True,
    "sequence_parallel": False,
    "use_gloo_process_groups": True,
    "use_distributed_optimizer": False,
    "moe_token_dispatcher_type": "allgather",
    "num_experts": None,
    "num_layers": None,
    "hidden_size": None,
    "num_attention_heads": None,
    "num_query_groups": None,
    "group_query_attention": False,
    "seq_length": None,
    "nnodes": 1,
    "nproc_per_node": 1,
    "node_rank": 0,
    "world_size": None,
    "model_path": None,
}

# Short display names; the kinds are Megatron's own `group_desc` strings.
LABELS: dict[str, str] = {
    "GTP_WEIGHT_REMAT_GROUP": "GTP",
    "DATA_PARALLEL_GROUP_WITH_CP": "DP-CP",
    "INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP": "INTRA_DP-CP",
    "INTER_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP": "INTER_DP-CP",
    "DATA_PARALLEL_GROUP": "DP",
    "CONTEXT_PARALLEL_GROUP": "CP",
    "MODEL_PARALLEL_GROUP": "MP",
    "TENSOR_MODEL_PARALLEL_GROUP": "TP",
    "PIPELINE_MODEL_PARALLEL_GROUP": "PP",
    "EMBEDDING_GROUP": "EMB",
    "POSITION_EMBEDDING_GROUP": "POS_EMB",
    "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP": "TP-DP-CP",
    "TENSOR_AND_DATA_PARALLEL_GROUP": "TP-DP",
    "TENSOR_AND_CONTEXT_PARALLEL_GROUP": "TP-CP",
    "EXPERT_GTP_WEIGHT_REMAT_GROUP": "EGTP",
    "EXPERT_MODEL_PARALLEL_GROUP": "EP",
    "EXPERT_TENSOR_PARALLEL_GROUP": "ETP",
    "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP": "ETP-EP",
    "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP": "ETP-EP-PP",
    "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP_WITH_EGTP": "ETP-EP-PP-EGTP",
    "EXPERT_DATA_PARALLEL_GROUP": "EDP",
    "INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP": "INTRA_EDP",
    "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L0": "INTRA_EDP",
    "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L1": "INTER_EDP",
    "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP": "DISTOPT",
}

CUTS: dict[str, str] = {
    "GTP_WEIGHT_REMAT_GROUP": "parameters",
    "DATA_PARALLEL_GROUP_WITH_CP": "requests",
    "INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP": "requests",
    "INTER_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP": "requests",
    "DATA_PARALLEL_GROUP": "requests",
    "CONTEXT_PARALLEL_GROUP": "sequences",
    "MODEL_PARALLEL_GROUP": "parameters",
    "TENSOR_MODEL_PARALLEL_GROUP": "parameters",
    "PIPELINE_MODEL_PARALLEL_GROUP": "parameters",
    "EMBEDDING_GROUP": "parameters",
    "POSITION_EMBEDDING_GROUP": "parameters",
    "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP": "requests",
    "TENSOR_AND_DATA_PARALLEL_GROUP": "requests",
    "TENSOR_AND_CONTEXT_PARALLEL_GROUP": "sequences",
    "EXPERT_GTP_WEIGHT_REMAT_GROUP": "parameters",
    "EXPERT_MODEL_PARALLEL_GROUP": "experts",
    "EXPERT_TENSOR_PARALLEL_GROUP": "parameters",
    "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP": "experts",
    "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP": "experts",
    "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP_WITH_EGTP": "experts",
    "EXPERT_DATA_PARALLEL_GROUP": "requests",
    "INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP": "requests",
    "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L0": "requests",
    "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L1": "requests",
    "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP": "world",
}

LAYOUT_V012 = "core 0.12 (DATA_PARALLEL_GROUP first; inter-partial DP-CP groups)"
LAYOUT_CURRENT = "core 0.13 – 0.18 (DATA_PARALLEL_GROUP_WITH_CP first)"
LAYOUT_V019 = "core 0.19+ (GTP weight-remat groups)"
LAYOUT_UNSUPPORTED = "before core 0.12 (not modelled)"

# First release of each layout, newest first.
LAYOUT_RELEASES: tuple[tuple[tuple[int, ...], str], ...] = (
    ((0, 19), LAYOUT_V019),
    ((0, 13), LAYOUT_CURRENT),
    ((0, 12), LAYOUT_V012),
)
HYBRID_CP_SINCE = (0, 16)


class LayoutError(ValueError):
    """The sizes cannot be laid out; the validation rules say why in Megatron's words."""


def layout_version_for(version: str | None) -> str:
    """Which of Megatron-core's group layouts a release builds (unknown: 0.13 – 0.18).

    0.13 moved the DP-CP groups before the DP groups and added the partial-DistOpt expert
    groups; 0.19 added the GTP weight-remat singletons. Releases before 0.12 named their
    expert groups differently and are not modelled.
    """
    v = parse_version(version)
    if v is None:
        return LAYOUT_CURRENT
    return next((lv for first, lv in LAYOUT_RELEASES if v >= first), LAYOUT_UNSUPPORTED)


@dataclass
class MegatronConfig(Values):
    """Megatron arguments after its own rewrites, each with where its value came from."""

    params: dict[str, Param]
    version: str | None
    layout_version: str
    rewrites: list[str] = field(default_factory=list)
    engine: str = "megatron"

    # The pipeline's shared code asks every engine for these names.
    ALIASES: ClassVar[dict[str, str]] = {
        "tp_size": "tensor_model_parallel_size",
        "pp_size": "pipeline_model_parallel_size",
    }

    def get(self, name: str, default: Any = None) -> Any:
        """A value that only some inputs carry (a flag without a default here)."""
        param = self.params.get(self.ALIASES.get(name, name))
        return default if param is None else param.value

    @property
    def tp(self) -> int:
        return self["tensor_model_parallel_size"]

    @property
    def pp(self) -> int:
        return self["pipeline_model_parallel_size"]

    @property
    def cp(self) -> int:
        return self["context_parallel_size"]

    @property
    def ep(self) -> int:
        return self["expert_model_parallel_size"]

    @property
    def etp(self) -> int:
        return self["expert_tensor_parallel_size"]

    @property
    def instances(self) -> int:
        return self["num_distributed_optimizer_instances"]

    @property
    def order(self) -> str:
        return PP_DP_ORDER if self["use_tp_pp_dp_mapping"] else DEFAULT_ORDER

    @property
    def world_size(self) -> int:
        return self["world_size"]

    @property
    def replicas(self) -> int:
        return 1

    @property
    def dp(self) -> int:
        return self.world_size // (self.tp * self.pp * self.cp)

    @property
    def edp(self) -> int:
        return self.world_size // (self.etp * self.ep * self.pp)

    @property
    def hcp_sizes(self) -> list[int]:
        return list(self["hierarchical_context_parallel_sizes"] or [])

    def derived(self) -> list[Derived]:
        tp, pp, cp, ep, etp, w = self.tp, self.pp, self.cp, self.ep, self.etp, self.world_size
        out = [
            Derived(
                "world_size",
                w,
                f"world_size = {w} ({self.src('world_size')})",
            ),
            Derived(
                "data_parallel_size",
                self.dp,
                f"dp = world_size / (tp × pp × cp) = {w} / ({tp} × {pp} × {cp}) = {self.dp}",
            ),
            Derived(
                "expert_data_parallel_size",
                self.edp,
                f"edp = world_size / (etp × ep × pp) = {w} / ({etp} × {ep} × {pp}) = {self.edp}",
            ),
            Derived(
                "min_gpus",
                pp * max(tp * cp, ep * etp),
                f"min GPUs = pp × max(tp × cp, ep × etp) = {pp} × max({tp * cp}, {ep * etp}) = "
                f"{pp * max(tp * cp, ep * etp)}",
            ),
        ]
        if self["virtual_pipeline_model_parallel_size"]:
            vpp = self["virtual_pipeline_model_parallel_size"]
            out.append(
                Derived(
                    "virtual_pipeline_model_parallel_size",
                    vpp,
                    f"virtual stages per pipeline rank = {vpp} (changes no group)",
                )
            )
        return out

    def shape(self, model: Any) -> Shape:
        tp, pp, nnodes, nproc = self.tp, self.pp, max(self["nnodes"], 1), self["nproc_per_node"]
        moe = self["num_experts"] is not None or (model is not None and model.is_moe)
        dispatcher = self["moe_token_dispatcher_type"]
        per_node = nproc if isinstance(nproc, int) else 0
        return Shape(
            tp=tp,
            pp=pp,
            nnodes=nnodes,
            gpus_used_per_node=per_node,
            attention_width=tp,
            attention_width_name="tensor_model_parallel_size",
            ep=self.ep,
            moe_tp=self.etp,
            ep_kind="EXPERT_MODEL_PARALLEL_GROUP",
            a2a_backend="none" if dispatcher == "allgather" else dispatcher,
            allreduce_kinds=(
                ("TENSOR_MODEL_PARALLEL_GROUP", "EXPERT_TENSOR_PARALLEL_GROUP")
                if moe
                else ("TENSOR_MODEL_PARALLEL_GROUP",)
            ),
            layer_split=self.layer_split,
            pp_kind="PIPELINE_MODEL_PARALLEL_GROUP",
            training=True,
            per_node_formula=f"torchrun --nproc-per-node = {nproc}",
            params={
                "tp": ("tensor_model_parallel_size", "nnodes", "nproc_per_node"),
                "pp": ("pipeline_model_parallel_size", "nnodes"),
                "fit": ("nproc_per_node", "nnodes"),
                "attention": ("tensor_model_parallel_size", "num_attention_heads"),
                "ep": (
                    "expert_model_parallel_size",
                    "expert_tensor_parallel_size",
                    "moe_token_dispatcher_type",
                    "num_experts",
                ),
            },
            hints={
                "RM101": (
                    f"Keep TP inside one node: --tensor-model-parallel-size ≤ {nproc} (a "
                    "divisor of --nproc-per-node) and stretch the nodes with "
                    "--pipeline-model-parallel-size or data parallel; Megatron puts TP "
                    "innermost, so consecutive ranks share a node."
                ),
                "RM102": (
                    "Set torchrun --nproc-per-node to the node's GPU count (Megatron uses one "
                    "process per GPU, global rank = node_rank × nproc_per_node + local_rank)."
                ),
                "RM104": (
                    "Use --moe-token-dispatcher-type alltoall (or flex with DeepEP) when expert "
                    "parallelism crosses nodes, or keep --expert-model-parallel-size × "
                    "--expert-tensor-parallel-size within one node."
                ),
                "RM206": "Drop --expert-model-parallel-size (or add --num-experts).",
            },
        )

    def layer_split(self, layers: int, pp: int) -> list[int]:
        """Megatron's split: first/last stages as configured, the rest evenly.

        `--account-for-embedding/loss-in-pipeline-split` count the embedding and the loss
        as one layer each on the first and last stage; they are subtracted again here so
        the list shows transformer layers.
        """
        first = self["decoder_first_pipeline_num_layers"]
        last = self["decoder_last_pipeline_num_layers"]
        if pp == 1:
            return [layers]
        if first is None and last is None:
            emb = int(bool(self["account_for_embedding_in_pipeline_split"]))
            loss = int(bool(self["account_for_loss_in_pipeline_split"]))
            base, extra = divmod(layers + emb + loss, pp)
            split = [base + (1 if i < extra else 0) for i in range(pp)]
            split[0] -= emb
            split[-1] -= loss
            return split
        middle_stages = pp - (first is not None) - (last is not None)
        rest = layers - (first or 0) - (last or 0)
        base, extra = divmod(rest, middle_stages) if middle_stages else (0, 0)
        middle = [base + (1 if i < extra else 0) for i in range(middle_stages)]
        return (
            ([first] if first is not None else []) + middle + ([last] if last is not None else [])
        )


def resolve(
    given: dict[str, Param], version: str | None = None, model: Any = None
) -> MegatronConfig:
    """Fill defaults and apply the argument rewrites that change the layout.

    An argument dump already holds the rewritten values; applying the rewrites again
    changes nothing, so both inputs take the same path and only real changes are
    recorded as provenance.
    """
    params = {name: Param(name, value, DEFAULT) for name, value in DEFAULTS.items()}
    params.update(given)
    lv = layout_version_for(version)
    cfg = MegatronConfig(params, version, lv)
    _rewrite_world(cfg)
    _rewrite_args(cfg)
    _rewrite_vpp(cfg)
    del model  # the layout depends on the arguments only
    return cfg


def _rewrite_world(cfg: MegatronConfig) -> None:
    """World size from the launcher (torchrun's WORLD_SIZE) unless a log states it.

    A size torchrun only learns at run time (`--nnodes 1:4`, `--nproc-per-node gpu`, an
    unexpanded `$NNODES`) is kept as `torchrun_<name>`; the shared pipeline still reads an
    integer `nnodes`, so that one becomes 1 while the world stays unknown.
    """
    unknown = []
    for name in ("nnodes", "nproc_per_node"):
        raw = cfg.params[name]
        if isinstance(raw.value, int):
            continue
        unknown.append(f"--{name.replace('_', '-')} {raw.value}")
        cfg.params[f"torchrun_{name}"] = Param(f"torchrun_{name}", raw.value, raw.source)
        why = f"torchrun {unknown[-1]} is only known at run time"
        cfg.params[name] = Param(name, 1, Source("inferred", why=why))
    nnodes, nproc = cfg["nnodes"], cfg["nproc_per_node"]
    if cfg["world_size"] is None:
        if not unknown:
            why = f"torchrun WORLD_SIZE = nnodes × nproc_per_node = {nnodes} × {nproc}"
            cfg.rewrite("world_size", nnodes * nproc, why, kind="inferred")
        return
    world = cfg["world_size"]
    if (
        cfg.params["nproc_per_node"].source.kind in ("default", "inferred")
        and nnodes > 0
        and isinstance(world, int)
        and world % nnodes == 0
    ):
        why = f"world_size / nnodes = {world} / {nnodes}"
        cfg.rewrite("nproc_per_node", world // nnodes, why, kind="inferred")


def _rewrite_args(cfg: MegatronConfig) -> None:
    if cfg["expert_tensor_parallel_size"] is None:
        cfg.rewrite(
            "expert_tensor_parallel_size",
            cfg.tp,
            "expert_tensor_parallel_size defaults to tensor_model_parallel_size",
        )
    if cfg["num_experts"] == 0:
        cfg.rewrite("num_experts", None, "--num-experts 0 means no experts")
    if cfg["sequence_parallel"] and cfg.tp == 1:
        cfg.rewrite(
            "sequence_parallel",
            False,
            "Disabling sequence parallelism because tensor model parallelism is disabled",
        )
    if (
        cfg["num_query_groups"] is None
        and cfg["num_attention_heads"]
        and not cfg["group_query_attention"]
    ):
        cfg.rewrite(
            "num_query_groups",
            cfg["num_attention_heads"],
            "without --group-query-attention every head is its own query group",
        )


def _rewrite_vpp(cfg: MegatronConfig) -> None:
    """virtual_pipeline_model_parallel_size as arguments.py derives it."""
    per_stage = cfg["num_layers_per_virtual_pipeline_stage"]
    stages = cfg["num_virtual_stages_per_pipeline_rank"]
    pp, layers = cfg.pp, cfg["num_layers"]
    vpp = cfg["virtual_pipeline_model_parallel_size"]
    why = ""
    if stages is not None:
        vpp, why = stages, f"--num-virtual-stages-per-pipeline-rank {stages}"
    elif per_stage and layers and isinstance(pp, int) and pp > 0:
        total = layers + int(bool(cfg["account_for_embedding_in_pipeline_split"]))
        total += int(bool(cfg["account_for_loss_in_pipeline_split"]))
        if total % pp == 0 and (total // pp) % per_stage == 0:
            vpp = total // pp // per_stage
            why = (
                f"num_layers / pp / --num-layers-per-virtual-pipeline-stage = "
                f"{total} / {pp} / {per_stage}"
            )
    if vpp == 1:
        vpp, why = None, "one virtual stage per rank means no interleaving"
    if why:
        cfg.rewrite("virtual_pipeline_model_parallel_size", vpp, why)


def structural_problems(cfg: MegatronConfig) -> list[str]:
    """Sizes that make the grids impossible, in Megatron's words; no layout then."""
    if cfg.layout_version == LAYOUT_UNSUPPORTED:
        return [
            f"megatron-core {cfg.version} builds its expert groups differently (before core "
            "0.12); rankmap models core 0.12 and later"
        ]
    problems = []
    sizes = (
        "tensor_model_parallel_size",
        "pipeline_model_parallel_size",
        "context_parallel_size",
        "expert_model_parallel_size",
        "expert_tensor_parallel_size",
        "num_distributed_optimizer_instances",
        "nnodes",
    )
    for name in sizes:
        if not isinstance(cfg[name], int) or cfg[name] < 1:
            problems.append(f"{name} must be a positive integer, got {cfg[name]!r}")
    world = cfg["world_size"]
    if not isinstance(world, int) or world < 1:
        given = [
            f"{name}={cfg.get('torchrun_' + name, cfg[name])!r}"
            for name in ("nnodes", "nproc_per_node")
        ]
        problems.append(
            f"the world size is unknown ({', '.join(given)}); pass rankmap --nnodes N, or "
            "torchrun's --nnodes N and --nproc-per-node N"
        )
    if problems:
        return problems
    model_size = cfg.tp * cfg.pp * cfg.cp
    if world % model_size:
        problems.append(f"world_size ({world}) is not divisible by {model_size}")
    etmp = cfg.etp * cfg.ep * cfg.pp
    if world % etmp:
        problems.append(
            f"world_size ({world}) is not divisible by expert_tensor_model_pipeline_parallel "
            f"size ({etmp})"
        )
    if problems:
        return problems
    if not cfg.order.endswith("pp") and cfg.pp > 1 and cfg.edp != cfg.dp:
        problems.append(
            "When not using pp-last rank ordering, the data parallel size of the attention "
            "and moe layers must be the same"
        )
    elif dense_mesh(cfg).groups("pp") != expert_mesh(cfg).groups("pp"):
        problems.append(
            "Pipeline parallel groups are expected to be the same for Non-Expert and Expert part"
        )
    n = cfg.instances
    if (cfg.dp * cfg.cp) % n:
        problems.append("Data parallel size should be divisible by partial DistOpt shard factor")
    if cfg.layout_version != LAYOUT_V012 and cfg.edp % n:
        problems.append(
            "Expert data parallel size should be divisible by partial DistOpt shard factor"
        )
    hcp = cfg.hcp_sizes
    if hcp and _product(hcp) != cfg.cp:
        problems.append(
            f"hierarchical_context_parallel_sizes {hcp} multiply to {_product(hcp)}, not "
            f"context_parallel_size {cfg.cp} (Megatron asserts np.prod(...) == cp)"
        )
    if cfg["hybrid_context_parallel"]:
        v = parse_version(cfg.version)
        if v is not None and v < HYBRID_CP_SINCE:
            problems.append(f"--hybrid-context-parallel does not exist before core 0.16 ({v})")
        elif (cfg.dp * cfg.cp) % 2:
            problems.append("Hybrid context parallel requires an even number of ranks")
    return problems


def _product(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _mesh(name: str, order: str, sizes: dict[str, int], names: dict[str, str]) -> Mesh:
    """A mesh over the order string, slowest token first (Mesh varies its last axis fastest)."""
    tokens = order.split("-")
    tokens += [t for t in TOKENS if t not in tokens]
    axes = tuple(
        Axis(names.get(t, t), sizes[t], f"{names.get(t, t)} = {sizes[t]}") for t in reversed(tokens)
    )
    return Mesh(name, axes)


def dense_mesh(cfg: MegatronConfig) -> Mesh:
    sizes = {"tp": cfg.tp, "cp": cfg.cp, "ep": 1, "dp": cfg.dp, "pp": cfg.pp}
    return _mesh("dense", cfg.order, sizes, {})


def expert_mesh(cfg: MegatronConfig) -> Mesh:
    sizes = {"tp": cfg.etp, "cp": 1, "ep": cfg.ep, "dp": cfg.edp, "pp": cfg.pp}
    return _mesh("expert", cfg.order, sizes, {"tp": "etp", "dp": "edp"})


def _group(kind: str, ranks: list[list[int]], mesh: str, axes: tuple[str, ...], **kw: Any) -> Group:
    label = LABELS.get(kind) or _dynamic_label(kind)
    cut = CUTS.get(kind) or ("requests" if kind.startswith("HYBRID") else "sequences")
    return Group(kind, label, cut, ranks, mesh=mesh, axes=axes, **kw)  # type: ignore[arg-type]


def _dynamic_label(kind: str) -> str:
    """HCP0, HCP1 … for hierarchical CP levels; HDP-CP2, HDP-CP4 … for hybrid CP sizes."""
    level = re.search(r"_L(\d+)$", kind)
    if kind.startswith("HIERARCHICAL_CONTEXT") and level:
        return f"HCP{level.group(1)}"
    size = re.search(r"_(\d+)$", kind)
    return f"HDP-CP{size.group(1)}" if size else kind


def _sub_blocks(groups: list[list[int]], sizes: list[int], level: int) -> list[list[int]]:
    """Megatron's `create_hierarchical_groups`, level `level`, applied to every group.

    Positions in a group are laid out as (l, s, u) with u = prod(sizes[:level]) fastest;
    level groups vary s. That is Mesh.groups over a mesh of positions.
    """
    u = _product(sizes[:level])
    s = sizes[level]
    rest = _product(sizes[level + 1 :])
    positions = Mesh("positions", (Axis("l", rest), Axis("s", s), Axis("u", u)))
    pattern = positions.groups("s")
    return [[ranks[i] for i in sub] for ranks in groups for sub in pattern]


def _alias(kind: str, target: Group, axes: tuple[str, ...]) -> Group:
    return _group(kind, target.ranks, target.mesh, axes, alias_of=target.kind, built=False)


def build_groups(cfg: MegatronConfig) -> tuple[list[Mesh], list[Group]]:
    """Every group Megatron creates, in its creation order (aliases after their target)."""
    dense, expert = dense_mesh(cfg), expert_mesh(cfg)
    lv, n = cfg.layout_version, cfg.instances
    groups: list[Group] = []
    if lv == LAYOUT_V019:
        groups.append(_group("GTP_WEIGHT_REMAT_GROUP", dense.groups(), "dense", ()))
    dp_cp = _group("DATA_PARALLEL_GROUP_WITH_CP", dense.groups("dp", "cp"), "dense", ("dp", "cp"))
    dp = _group("DATA_PARALLEL_GROUP", dense.groups("dp"), "dense", ("dp",))
    partial = _dense_partial(cfg, dp_cp)
    if lv == LAYOUT_V012:
        groups += [dp, dp_cp, *partial]
    else:
        groups += [dp_cp, *partial]
        if cfg["hybrid_context_parallel"]:
            groups += _hybrid_groups(dp_cp)
        groups.append(dp)
    cp = _group("CONTEXT_PARALLEL_GROUP", dense.groups("cp"), "dense", ("cp",))
    groups.append(cp)
    for level in range(len(cfg.hcp_sizes)):
        ranks = _sub_blocks(cp.ranks, cfg.hcp_sizes, level)
        kind = f"HIERARCHICAL_CONTEXT_PARALLEL_GROUP_L{level}"
        groups.append(_group(kind, ranks, "dense", ("cp",)))
    pp = _group("PIPELINE_MODEL_PARALLEL_GROUP", dense.groups("pp"), "dense", ("pp",))
    groups += [
        _group("MODEL_PARALLEL_GROUP", dense.groups("tp", "pp"), "dense", ("tp", "pp")),
        _group("TENSOR_MODEL_PARALLEL_GROUP", dense.groups("tp"), "dense", ("tp",)),
        pp,
        _group("EMBEDDING_GROUP", [_ends(r) for r in pp.ranks], "dense", ("pp",)),
        _group("POSITION_EMBEDDING_GROUP", [r[:1] for r in pp.ranks], "dense", ("pp",)),
        _group(
            "TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP",
            dense.groups("tp", "dp", "cp"),
            "dense",
            ("tp", "dp", "cp"),
        ),
        _group("TENSOR_AND_DATA_PARALLEL_GROUP", dense.groups("tp", "dp"), "dense", ("tp", "dp")),
        _group(
            "TENSOR_AND_CONTEXT_PARALLEL_GROUP", dense.groups("tp", "cp"), "dense", ("tp", "cp")
        ),
    ]
    if lv == LAYOUT_V019:
        groups.append(_group("EXPERT_GTP_WEIGHT_REMAT_GROUP", expert.groups(), "expert", ()))
    etp_ep_pp = expert.groups("etp", "ep", "pp")
    groups += [
        _group("EXPERT_MODEL_PARALLEL_GROUP", expert.groups("ep"), "expert", ("ep",)),
        _group("EXPERT_TENSOR_PARALLEL_GROUP", expert.groups("etp"), "expert", ("etp",)),
        _group(
            "EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP",
            expert.groups("etp", "ep"),
            "expert",
            ("etp", "ep"),
        ),
        _group(
            "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP", etp_ep_pp, "expert", ("etp", "ep", "pp")
        ),
    ]
    if lv == LAYOUT_V019:
        groups.append(
            _group(
                "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP_WITH_EGTP",
                etp_ep_pp,
                "expert",
                ("etp", "ep", "pp"),
            )
        )
    edp = _group("EXPERT_DATA_PARALLEL_GROUP", expert.groups("edp"), "expert", ("edp",))
    groups.append(edp)
    if lv == LAYOUT_V012:
        return [dense, expert], groups
    if n > 1:
        sizes = [cfg.edp // n, n]
        for level, kind in enumerate(
            (
                "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L0",
                "HIERARCHICAL_EXPERT_DATA_PARALLEL_GROUP_L1",
            )
        ):
            groups.append(_group(kind, _sub_blocks(edp.ranks, sizes, level), "expert", ("edp",)))
    else:
        groups.append(_alias("INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP", edp, ("edp",)))
    per_instance = cfg.edp // n
    instances = [
        [r for ranks in etp_ep_pp[i : i + per_instance] for r in ranks]
        for i in range(0, len(etp_ep_pp), per_instance)
    ]
    groups.append(
        _group(
            "INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP",
            instances,
            "expert",
            ("etp", "ep", "pp", "edp"),
        )
    )
    return [dense, expert], groups


def _ends(ranks: list[int]) -> list[int]:
    """Megatron's default embedding ranks: the first and last pipeline stage."""
    return ranks[:1] if len(ranks) == 1 else [ranks[0], ranks[-1]]


def _dense_partial(cfg: MegatronConfig, dp_cp: Group) -> list[Group]:
    """Partial distributed-optimizer slices of every DP-CP group (aliases with one instance)."""
    n = cfg.instances
    if n == 1:
        return [_alias("INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP", dp_cp, ("dp", "cp"))]
    size = cfg.dp * cfg.cp // n
    intra = [ranks[i : i + size] for ranks in dp_cp.ranks for i in range(0, len(ranks), size)]
    out = [_group("INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP", intra, "dense", ("dp", "cp"))]
    if cfg.layout_version == LAYOUT_V012:
        inter = [ranks[i::size] for ranks in dp_cp.ranks for i in range(size)]
        out.append(
            _group("INTER_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP", inter, "dense", ("dp", "cp"))
        )
    return out


def _hybrid_groups(dp_cp: Group) -> list[Group]:
    """Consecutive blocks of every power of two from 2 up to half of each DP-CP group."""
    width = len(dp_cp.ranks[0])
    out = []
    size = 2
    while size * 2 <= width:
        ranks = [r[i : i + size] for r in dp_cp.ranks for i in range(0, width, size)]
        out.append(_group(f"HYBRID_DP_CP_GROUP_{size}", ranks, "dense", ("dp", "cp")))
        size *= 2
    return out


def placement(cfg: MegatronConfig, hosts: dict[int, str] | None = None) -> list[Placement]:
    """torchrun's placement: global rank = node_rank × nproc_per_node + local_rank."""
    hosts = hosts or {}
    nproc = cfg["nproc_per_node"]
    world = cfg.world_size
    if not isinstance(nproc, int) or nproc < 1 or not isinstance(world, int):
        return []
    out = []
    for rank in range(world):
        node, local = divmod(rank, nproc)
        out.append(Placement(rank, hosts.get(node, f"node{node}"), local, node))
    return out


def coordinates(cfg: MegatronConfig, rank: int) -> dict[str, int]:
    """A rank's dense (tp, cp, dp, pp) and expert (etp, ep, edp) coordinates."""
    d = dense_mesh(cfg).coords(rank)
    e = expert_mesh(cfg).coords(rank)
    return {
        "pp": d["pp"],
        "dp": d["dp"],
        "cp": d["cp"],
        "tp": d["tp"],
        "edp": e["edp"],
        "ep": e["ep"],
        "etp": e["etp"],
    }


def coordinate_tokens(cfg: MegatronConfig, rank: int, replica: int = 0) -> list[str]:
    """A rank's coordinates as display tokens, naming only the dimensions that are split."""
    del replica  # one world
    c = coordinates(cfg, rank)
    sizes = {"pp": cfg.pp, "dp": cfg.dp, "cp": cfg.cp, "tp": cfg.tp}
    sizes |= {"edp": cfg.edp, "ep": cfg.ep, "etp": cfg.etp}
    tokens = [f"{k.upper()}{c[k]}" for k in ("pp", "dp", "cp", "tp") if sizes[k] > 1]
    if cfg.ep > 1 or cfg.etp != cfg.tp:
        tokens += [f"{k.upper()}{c[k]}" for k in ("edp", "ep", "etp") if sizes[k] > 1]
    return tokens or ["TP0"]


def layout(cfg: MegatronConfig, hosts: dict[int, str] | None = None) -> Layout:
    problems = structural_problems(cfg)
    if problems:
        raise LayoutError("; ".join(problems))
    meshes, groups = build_groups(cfg)
    return Layout(
        engine="megatron",
        engine_version=cfg.version,
        world_size=cfg.world_size,
        replicas=1,
        meshes=meshes,
        groups=groups,
        placement=placement(cfg, hosts),
        layout_version=cfg.layout_version,
    )
