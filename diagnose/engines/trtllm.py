"""TensorRT-LLM's rank layout, reproduced from its `Mapping` class.

TensorRT-LLM runs one MPI world of tp × pp × cp ranks. `Mapping` (tensorrt_llm/mapping.py)
derives the MoE and attention sizes from the flags and lists the rank groups: pp, cp, tp,
then moe_tp, moe_cluster and moe_ep, in that order, inside each pipeline stage. In MPI mode
these are plain rank lists (MPI sub-communicators and C++ NCCL communicators are made from
them), so the order below is the order `_init_parallel_groups` lists them in.

Three layouts exist. The first `Mapping` class computed MoE sizes over tp_size only; the
`MappingBase`/`MpiTopology` split computed them over tp × cp for non-Ulysses CP (Helix);
PR #10350 ("Swap TP-CP grouping order", end of 2025) made CP ranks consecutive, where
before TP ranks were. The release boundaries below are inferred from the dates of those
changes (1.1 for the split, 1.3 for the swap), not checked against the wheels; an unknown
version means the newest layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from diagnose.engines.base import Derived, Shape, Values, parse_version
from diagnose.model import DEFAULT, Axis, Group, Layout, Mesh, Param, Placement, Source

DEFAULTS: dict[str, Any] = {
    "tp_size": 1,
    "pp_size": 1,
    "cp_size": 1,
    "cp_type": "ULYSSES",
    "moe_tp_size": -1,
    "moe_ep_size": -1,
    "moe_cluster_size": -1,
    "attn_tp_size": -1,
    "attn_cp_size": -1,
    "enable_attention_dp": False,
    "enable_lm_head_tp_in_adp": False,
    "pp_partition": None,
    "gpus_per_node": None,
    "nnodes": None,
    "mpi_size": None,
    "mpi_ranks_per_node": None,
    "model_path": None,
    "backend": "pytorch",
}

# Every size Mapping needs as a positive integer once its -1 defaults are derived.
SIZES = (
    "tp_size",
    "pp_size",
    "cp_size",
    "moe_tp_size",
    "moe_ep_size",
    "moe_cluster_size",
    "attn_tp_size",
    "attn_cp_size",
    "gpus_per_node",
)

CP_TYPES = ("ULYSSES", "STAR", "RING", "HELIX")

LAYOUT_MAPPING = "≤ 1.0 (single Mapping class, MoE over tp_size, TP ranks consecutive)"
LAYOUT_MPI_TOPOLOGY = "1.1 – 1.2 (MpiTopology, MoE over tp × cp for Helix, TP consecutive)"
LAYOUT_CP_INNER = "current: 1.3+ (PR #10350: CP ranks consecutive, TP stride cp_size)"

LAYOUT_RELEASES: tuple[tuple[tuple[int, ...], str], ...] = (
    ((1, 3), LAYOUT_CP_INNER),
    ((1, 1), LAYOUT_MPI_TOPOLOGY),
)

LABELS: dict[str, str] = {
    "world": "WORLD",
    "pp_group": "PP",
    "cp_group": "CP",
    "tp_group": "TP",
    "moe_tp_group": "MOE_TP",
    "moe_cluster_group": "MOE_CLUSTER",
    "moe_ep_group": "MOE_EP",
    "attn_tp_group": "ATTN_TP",
    "attn_cp_group": "ATTN_CP",
    "attn_dp_group": "ATTN_DP",
}

CUTS: dict[str, str] = {
    "world": "world",
    "pp_group": "parameters",
    "cp_group": "sequences",
    "tp_group": "parameters",
    "moe_tp_group": "parameters",
    "moe_cluster_group": "experts",
    "moe_ep_group": "experts",
    "attn_tp_group": "parameters",
    "attn_cp_group": "sequences",
    "attn_dp_group": "requests",
}


class LayoutError(ValueError):
    """Sizes `Mapping` refuses; the RM6xx rules say why in TensorRT-LLM's words."""


def layout_version_for(version: str | None) -> str:
    v = parse_version(version)
    if v is None:
        return LAYOUT_CP_INNER
    return next((lv for first, lv in LAYOUT_RELEASES if v >= first), LAYOUT_MAPPING)


@dataclass
class TrtllmConfig(Values):
    """Mapping's inputs after its own derivations, each with where its value came from."""

    params: dict[str, Param]
    version: str | None
    layout_version: str
    rewrites: list[str] = field(default_factory=list)
    engine: str = "trtllm"

    @property
    def world_size(self) -> int:
        return self["tp_size"] * self["pp_size"] * self["cp_size"]

    @property
    def replicas(self) -> int:
        return 1

    @property
    def cp_inner(self) -> bool:
        return self.layout_version == LAYOUT_CP_INNER

    @property
    def ulysses(self) -> bool:
        return str(self["cp_type"]).upper() == "ULYSSES"

    @property
    def moe_world_size(self) -> int:
        """tp_size, or tp × cp for non-Ulysses CP (MappingBase; the first Mapping: tp)."""
        if self.layout_version == LAYOUT_MAPPING or self.ulysses:
            return self["tp_size"]
        return self["tp_size"] * self["cp_size"]

    @property
    def moe_size(self) -> int:
        return self["moe_tp_size"] * self["moe_ep_size"] * self["moe_cluster_size"]

    @property
    def attention_dp_size(self) -> int:
        """Mapping.dp_size: every TP rank is its own attention-DP rank."""
        return self["tp_size"] if self["enable_attention_dp"] else 1

    def derived(self) -> list[Derived]:
        tp, pp, cp = self["tp_size"], self["pp_size"], self["cp_size"]
        mtp, mep, mcl = self["moe_tp_size"], self["moe_ep_size"], self["moe_cluster_size"]
        atp, acp = self["attn_tp_size"], self["attn_cp_size"]
        world = tp * pp * cp
        return [
            Derived(
                "world_size",
                world,
                f"world_size = tp_size × pp_size × cp_size = {tp} × {pp} × {cp} = {world}",
            ),
            Derived(
                "moe_world_size",
                self.moe_world_size,
                f"moe_world_size = {'tp_size' if self.moe_world_size == tp else 'tp × cp'} = "
                f"{self.moe_world_size} = moe_tp × moe_ep × moe_cluster = {mtp} × {mep} × {mcl}",
            ),
            Derived(
                "attention",
                atp * acp,
                f"attn_tp_size × attn_cp_size = {atp} × {acp} = tp_size × cp_size = {tp * cp}",
            ),
            Derived(
                "dp_size",
                self.attention_dp_size,
                f"dp_size = tp_size = {tp} (attention DP on)"
                if self["enable_attention_dp"]
                else "dp_size = 1 (attention DP off)",
            ),
            Derived(
                "nnodes",
                self["nnodes"],
                f"nodes = ⌈world_size / gpus_per_node⌉ = ⌈{world} / {self['gpus_per_node']}⌉"
                f" = {self['nnodes']}",
            ),
        ]

    def shape(self, model: Any) -> Shape:
        tp, pp = self["tp_size"], self["pp_size"]
        gpn, nnodes = self["gpus_per_node"], self["nnodes"]
        adp = self["enable_attention_dp"]
        moe = model is None or model.is_moe
        kinds = ["moe_tp_group"] if moe else []
        if not adp:
            kinds.insert(0, "tp_group")
        used = min(self.world_size, gpn) if gpn else self.world_size
        return Shape(
            tp=tp,
            pp=pp,
            nnodes=nnodes,
            gpus_used_per_node=used,
            attention_width=1 if adp else self["attn_tp_size"] * self["attn_cp_size"],
            attention_width_name="1 (attention DP)" if adp else "attn_tp_size × attn_cp_size",
            ep=self["moe_ep_size"],
            moe_tp=self["moe_tp_size"],
            ep_kind="moe_ep_group",
            a2a_backend=None,
            allreduce_kinds=tuple(kinds),
            layer_split=layer_split,
            pp_kind="pp_group",
            per_node_formula=(
                f"rank r runs on node r // gpus_per_node: min(world_size {self.world_size}, "
                f"gpus_per_node {gpn})"
            ),
            params={
                "tp": ("tp_size", "cp_size", "gpus_per_node", "nnodes"),
                "pp": ("pp_size", "gpus_per_node", "nnodes"),
                "fit": ("tp_size", "pp_size", "cp_size", "gpus_per_node", "nnodes"),
                "attention": ("tp_size", "cp_size", "enable_attention_dp", "model_path"),
                "ep": ("moe_ep_size", "moe_tp_size", "tp_size"),
            },
            hints={
                "RM101": (
                    f"Keep TP inside one node: --tp_size {max(tp // max(nnodes, 1), 1)} "
                    f"--pp_size {pp * max(nnodes, 1)} puts the nodes on pipeline stages, or "
                    "for MoE models set enable_attention_dp: true in --extra_llm_api_options "
                    f"with --ep_size {tp}, so attention needs no all-reduce and only the expert "
                    "exchange crosses nodes."
                ),
                "RM203": (
                    "Turn on attention DP (enable_attention_dp: true in the "
                    "--extra_llm_api_options YAML): each rank then keeps its own latent KV."
                ),
            },
        )


def layer_split(layers: int, pp: int) -> list[int]:
    """torch.tensor_split's split: the first `layers % pp` stages take one extra layer."""
    base, extra = divmod(layers, pp)
    return [base + (1 if i < extra else 0) for i in range(pp)]


def resolve(given: dict[str, Param], version: str | None = None, model: Any = None) -> TrtllmConfig:
    """Fill defaults and apply MappingBase's derivations (-1 = derive) as provenance."""
    params = {name: Param(name, value, DEFAULT) for name, value in DEFAULTS.items()}
    params.update(given)
    cfg = TrtllmConfig(params, version, layout_version_for(version))
    if all(_positive(cfg[n]) for n in ("tp_size", "pp_size", "cp_size")):
        _derive_moe(cfg)
        _derive_attention(cfg)
        _derive_nodes(cfg)
    if cfg["nnodes"] is None:  # sizes too broken to place anything; RM607 says why
        cfg.params["nnodes"] = Param("nnodes", 1, DEFAULT)
    return cfg


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _derive_moe(cfg: TrtllmConfig) -> None:
    mtp, mep = cfg["moe_tp_size"], cfg["moe_ep_size"]
    world = cfg.moe_world_size
    if cfg["moe_cluster_size"] in (-1, None):
        cfg.rewrite("moe_cluster_size", 1, "Mapping: moe_cluster_size -1 means 1")
    cluster = cfg["moe_cluster_size"]
    if not _positive(cluster):
        return
    if mtp in (-1, None) and mep in (-1, None):
        cfg.rewrite("moe_tp_size", world // cluster, f"Mapping: moe_tp_size = {world} // {cluster}")
        cfg.rewrite("moe_ep_size", 1, "Mapping: no MoE sizes given, moe_ep_size = 1")
    elif mtp in (-1, None) and _positive(mep):
        cfg.rewrite(
            "moe_tp_size",
            world // (mep * cluster),
            f"Mapping: moe_tp_size = moe_world_size // (moe_ep_size × moe_cluster_size) = "
            f"{world} // ({mep} × {cluster})",
        )
    elif mep in (-1, None) and _positive(mtp):
        cfg.rewrite(
            "moe_ep_size",
            world // (mtp * cluster),
            f"Mapping: moe_ep_size = moe_world_size // (moe_tp_size × moe_cluster_size) = "
            f"{world} // ({mtp} × {cluster})",
        )


def _derive_attention(cfg: TrtllmConfig) -> None:
    tp, cp = cfg["tp_size"], cfg["cp_size"]
    atp, acp = cfg["attn_tp_size"], cfg["attn_cp_size"]
    helix_default = cfg.layout_version != LAYOUT_MAPPING and not cfg.ulysses
    if atp in (-1, None) and acp in (-1, None):
        if helix_default:
            cfg.rewrite("attn_tp_size", tp, f"Mapping: {cfg['cp_type']} CP, attn_tp_size = tp_size")
            cfg.rewrite("attn_cp_size", cp, f"Mapping: {cfg['cp_type']} CP, attn_cp_size = cp_size")
        else:
            cfg.rewrite("attn_tp_size", tp * cp, "Mapping: Ulysses fallback, attn_tp = tp × cp")
            cfg.rewrite("attn_cp_size", 1, "Mapping: Ulysses fallback, attn_cp_size = 1")
    elif atp in (-1, None) and _positive(acp):
        cfg.rewrite("attn_tp_size", tp * cp // acp, f"Mapping: attn_tp = tp × cp // {acp}")
    elif acp in (-1, None) and _positive(atp):
        cfg.rewrite("attn_cp_size", tp * cp // atp, f"Mapping: attn_cp = tp × cp // {atp}")


def _derive_nodes(cfg: TrtllmConfig) -> None:
    """gpus_per_node and the node count, each from the other when only one is known.

    trtllm-serve detects gpus_per_node on the node it runs on; before launch that number
    is unknown, so without --gpus_per_node, an mpirun per-node count or --nnodes, every
    rank is placed on one node (as SGLang's nnodes=1 default does). A cp_type spelled as
    the enum (`CpType.HELIX`) or in lower case is normalised here too.
    """
    world = cfg.world_size
    cp_type = cfg["cp_type"]
    spelled = cp_type.upper().removeprefix("CPTYPE.") if isinstance(cp_type, str) else None
    if spelled in CP_TYPES and spelled != cp_type:
        cfg.params["cp_type"] = replace(cfg.params["cp_type"], value=spelled)
    gpn, nnodes = cfg["gpus_per_node"], cfg["nnodes"]
    if gpn is None:
        if _positive(cfg["mpi_ranks_per_node"]):
            value = cfg["mpi_ranks_per_node"]
            why = f"mpirun places {value} ranks per node"
        elif _positive(nnodes) and nnodes > 1:
            value = -(-world // nnodes)
            why = f"world_size / nnodes = {world} / {nnodes}"
        else:
            value, why = world, "no --gpus_per_node or node count: all ranks on one node"
        cfg.params["gpus_per_node"] = Param("gpus_per_node", value, Source("inferred", why=why))
    per_node, name = cfg["mpi_ranks_per_node"], "mpirun ranks per node"
    if not _positive(per_node):
        per_node, name = cfg["gpus_per_node"], "gpus_per_node"
    if nnodes is None and _positive(per_node):
        why = f"⌈world_size / {name}⌉ = ⌈{world} / {per_node}⌉"
        cfg.params["nnodes"] = Param("nnodes", -(-world // per_node), Source("inferred", why=why))


def structural_problems(cfg: TrtllmConfig) -> list[str]:
    """What makes `Mapping.__init__` raise; no groups exist then."""
    bad = [n for n in SIZES if not _positive(cfg[n])]
    if bad:
        # Mapping derives the later sizes from tp/pp/cp: name only the first broken ones.
        first = [n for n in bad if n in ("tp_size", "pp_size", "cp_size")] or bad
        return [f"{n} must be a positive integer, got {cfg[n]!r}" for n in first]
    tp, cp = cfg["tp_size"], cfg["cp_size"]
    problems = []
    if cfg.moe_size != cfg.moe_world_size:
        problems.append(
            f"moe_tp_size × moe_ep_size × moe_cluster_size = {cfg['moe_tp_size']} × "
            f"{cfg['moe_ep_size']} × {cfg['moe_cluster_size']} = {cfg.moe_size} is not "
            f"moe_world_size {cfg.moe_world_size}"
        )
    if cfg["attn_tp_size"] * cfg["attn_cp_size"] != tp * cp:
        problems.append(
            f"attn_tp_size × attn_cp_size = {cfg['attn_tp_size']} × {cfg['attn_cp_size']} is "
            f"not tp_size × cp_size = {tp * cp}"
        )
    if cfg["attn_cp_size"] != 1 and (cfg.ulysses or cfg.layout_version == LAYOUT_MAPPING):
        problems.append(f"attn_cp_size {cfg['attn_cp_size']} must be 1 with Ulysses CP")
    if cfg["moe_ep_size"] != 1 and cp > 1 and (str(cfg["cp_type"]).upper() != "HELIX"):
        problems.append(f"{cfg['cp_type']} CP does not support MoE tp/ep (moe_ep_size > 1)")
    if cfg["moe_cluster_size"] > 1 and cfg["moe_ep_size"] != 1:
        problems.append("moe_cluster_size > 1 needs moe_ep_size == 1")
    if str(cfg["cp_type"]).upper() not in CP_TYPES:
        problems.append(f"unknown cp_type {cfg['cp_type']!r}")
    return problems


def meshes(cfg: TrtllmConfig) -> tuple[Mesh, Mesh]:
    """The world (pp outermost; cp or tp innermost by layout) and the MoE mesh.

    The MoE mesh offsets each stage by moe_world_size, as Mapping does: with Ulysses CP
    (moe_world_size = tp < tp × cp) its lists cover only part of each stage.
    """
    tp, pp, cp = cfg["tp_size"], cfg["pp_size"], cfg["cp_size"]
    ax_pp = Axis("pp", pp, f"pp_size = {pp}")
    ax_tp = Axis("tp", tp, f"tp_size = {tp}")
    ax_cp = Axis("cp", cp, f"cp_size = {cp}")
    world = Mesh("world", (ax_pp, ax_tp, ax_cp) if cfg.cp_inner else (ax_pp, ax_cp, ax_tp))
    moe = Mesh(
        "moe",
        (
            ax_pp,
            Axis("moe_tp", cfg["moe_tp_size"], f"moe_tp_size = {cfg['moe_tp_size']}"),
            Axis(
                "moe_cluster", cfg["moe_cluster_size"], f"moe_cluster = {cfg['moe_cluster_size']}"
            ),
            Axis("moe_ep", cfg["moe_ep_size"], f"moe_ep_size = {cfg['moe_ep_size']}"),
        ),
    )
    return world, moe


def _group(kind: str, ranks: list[list[int]], mesh: str, axes: tuple[str, ...], **kw: Any) -> Group:
    return Group(kind, LABELS[kind], CUTS[kind], ranks, mesh=mesh, axes=axes, **kw)  # type: ignore[arg-type]


def _alias(kind: str, target: Group, axes: tuple[str, ...]) -> Group:
    return _group(kind, target.ranks, "world", axes, alias_of=target.kind, built=False)


def _first_mapping_cluster_groups(cfg: TrtllmConfig) -> list[list[int]]:
    """The first Mapping's cluster lists: blocks of moe_cluster_size at j × moe_cluster_size.

    Equal to the later blocks of moe_cluster × moe_ep whenever moe_ep_size is 1 (required
    with clusters); otherwise they are just the first moe_tp_size ranks of each stage.
    """
    m, cl = cfg.moe_size, cfg["moe_cluster_size"]
    return [
        [i * m + j * cl + k for k in range(cl)]
        for i in range(cfg["pp_size"])
        for j in range(cfg["moe_tp_size"])
    ]


def build_groups(cfg: TrtllmConfig) -> tuple[list[Mesh], list[Group]]:
    """Mapping's lists in `_init_parallel_groups` order, then the attention groups it implies."""
    world, moe = meshes(cfg)
    if cfg.layout_version == LAYOUT_MAPPING:
        cluster = _first_mapping_cluster_groups(cfg)
    else:
        cluster = moe.groups("moe_cluster", "moe_ep")
    g_tp = _group("tp_group", world.groups("tp"), "world", ("tp",))
    g_cp = _group("cp_group", world.groups("cp"), "world", ("cp",))
    groups = [
        _group("world", [list(range(world.size))], "world", ("pp", "tp", "cp")),
        _group("pp_group", world.groups("pp"), "world", ("pp",)),
        g_cp,
        g_tp,
        _group("moe_tp_group", moe.groups("moe_tp"), "moe", ("moe_tp",)),
        _group("moe_cluster_group", cluster, "moe", ("moe_cluster", "moe_ep")),
        _group("moe_ep_group", moe.groups("moe_ep"), "moe", ("moe_ep",)),
    ]
    groups += _attention_groups(cfg, world, g_tp, g_cp)
    return [world, moe], groups


def _attention_groups(cfg: TrtllmConfig, world: Mesh, g_tp: Group, g_cp: Group) -> list[Group]:
    """Groups Mapping builds no list for but the attention layers run on.

    Under attention DP each rank runs attention alone and the TP group holds the DP ranks.
    Otherwise attention spans attn_tp × attn_cp ranks: the whole tp × cp block of a stage
    (Ulysses: attn_cp 1), or the TP and CP groups themselves (attn sizes equal to tp, cp).
    Other splits of the block are not defined by Mapping and are not shown.
    """
    tp, cp = cfg["tp_size"], cfg["cp_size"]
    atp, acp = cfg["attn_tp_size"], cfg["attn_cp_size"]
    if cfg["enable_attention_dp"]:
        singles = [[r] for r in range(world.size)]
        return [
            _group("attn_tp_group", singles, "world", (), built=False),
            _alias("attn_dp_group", g_tp, ("tp",)),
        ]
    if acp == 1:
        if cp == 1:
            return [_alias("attn_tp_group", g_tp, ("tp",))]
        return [
            _group("attn_tp_group", world.groups("tp", "cp"), "world", ("tp", "cp"), built=False)
        ]
    if (atp, acp) == (tp, cp):
        return [_alias("attn_tp_group", g_tp, ("tp",)), _alias("attn_cp_group", g_cp, ("cp",))]
    return []


def placement(cfg: TrtllmConfig, hosts: dict[int, str] | None = None) -> list[Placement]:
    """Rank r on GPU r % gpus_per_node (Mapping.local_rank), on the node mpirun put it.

    mpirun fills nodes slot by slot, so with -N/--npernode the node is r // that count;
    otherwise it is Mapping's own node_rank, r // gpus_per_node.
    """
    gpn = cfg["gpus_per_node"]
    per_node = cfg["mpi_ranks_per_node"] if _positive(cfg["mpi_ranks_per_node"]) else gpn
    hosts = hosts or {}
    return [
        Placement(
            rank,
            hosts.get(rank // per_node, f"node{rank // per_node}"),
            rank % gpn,
            rank // per_node,
        )
        for rank in range(cfg.world_size)
    ]


def coordinates(cfg: TrtllmConfig, rank: int) -> dict[str, int]:
    """MpiTopology's tp/pp/cp ranks and the MoE ranks derived from tp_rank."""
    tp, cp = cfg["tp_size"], cfg["cp_size"]
    if cfg.cp_inner:
        tp_rank, cp_rank = rank % (tp * cp) // cp, rank % cp
    else:
        tp_rank, cp_rank = rank % tp, rank % (tp * cp) // tp
    mep, mcl = cfg["moe_ep_size"], cfg["moe_cluster_size"]
    return {
        "pp": rank // (tp * cp),
        "tp": tp_rank,
        "cp": cp_rank,
        "moe_tp": tp_rank // (mep * mcl),
        "moe_cluster": tp_rank % mcl,
        "moe_ep": tp_rank % mep,
    }


def coordinate_tokens(cfg: TrtllmConfig, rank: int, replica: int = 0) -> list[str]:
    c = coordinates(cfg, rank)
    sizes = {
        "pp": cfg["pp_size"],
        "cp": cfg["cp_size"],
        "moe_tp": cfg["moe_tp_size"],
        "moe_cluster": cfg["moe_cluster_size"],
        "moe_ep": cfg["moe_ep_size"],
    }
    tokens = [f"RANK{rank}"]
    if cfg["enable_attention_dp"]:
        tokens.append(f"ADP{c['tp']}")
    tokens += [f"{k.upper()}{c[k]}" for k in ("pp", "cp") if sizes[k] > 1]
    tokens.append(f"TP{c['tp']}")
    # MoE-TP equal to the TP width repeats the TP token; name it only when it differs.
    tokens += [
        f"{k.upper()}{c[k]}"
        for k in ("moe_tp", "moe_cluster", "moe_ep")
        if sizes[k] > 1 and not (k == "moe_tp" and sizes[k] == cfg["tp_size"])
    ]
    return tokens


def layout(cfg: TrtllmConfig, hosts: dict[int, str] | None = None) -> Layout:
    problems = structural_problems(cfg)
    if problems:
        raise LayoutError("; ".join(problems))
    mesh_list, groups = build_groups(cfg)
    return Layout(
        engine="trtllm",
        engine_version=cfg.version,
        world_size=cfg.world_size,
        replicas=1,
        meshes=mesh_list,
        groups=groups,
        placement=placement(cfg, hosts),
        layout_version=cfg.layout_version,
    )
