"""vLLM's process-group layout, reproduced from its own formulas.

vLLM lays every rank of one torch world out as a 5-d array (ExternalDP, DP, PP, PCP, TP),
TP fastest, and cuts each group kind out of it by swapping that kind's axis to the end
(`all_ranks.transpose(i, j).reshape(-1, size)` in `initialize_model_parallel`). The swap
fixes both the members of a group and the order the groups are created in, so this module
enumerates the same permuted axes instead of sorting rank sets. The EP group is the whole
DP x PCP x TP plane of one pipeline stage; there is no EP size, only `--enable-expert-parallel`
deciding whether experts are split over that plane or TP-sharded across it.

Releases differ in which groups exist (DP from 0.8, EP from 0.9, DCP from 0.10.2, PCP from
0.12, EP only for MoE models and dense DP replicas as separate worlds from 0.14, EPLB from
0.17, DCP spanning PCP first from 0.26, the Engram `etp` alias from 0.30); every boundary
below was read from the published wheels.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from diagnose.engines.base import Derived, Shape, Values, parse_version
from diagnose.model import DEFAULT, Axis, Group, Layout, Mesh, Param, Placement, Source

DEFAULTS: dict[str, Any] = {
    "model_path": None,
    "tensor_parallel_size": 1,
    "pipeline_parallel_size": 1,
    "data_parallel_size": 1,
    "prefill_context_parallel_size": 1,
    "decode_context_parallel_size": 1,
    "enable_expert_parallel": False,
    "enable_eplb": False,
    "enable_elastic_ep": False,
    "all2all_backend": None,
    "data_parallel_size_local": None,
    "data_parallel_rank": None,
    "data_parallel_start_rank": None,
    "data_parallel_backend": "mp",
    "data_parallel_hybrid_lb": False,
    "data_parallel_external_lb": False,
    "distributed_executor_backend": None,
    "nnodes": 1,
    "node_rank": 0,
    "disable_custom_all_reduce": False,
    "num_redundant_experts": 0,
    "pp_layer_partition": None,
    "headless": False,
}

# Names other parts of rankmap (and SGLang-style inputs) use for the same fields.
ALIASES: dict[str, str] = {
    "tp_size": "tensor_parallel_size",
    "pp_size": "pipeline_parallel_size",
    "dp_size": "data_parallel_size",
    "model": "model_path",
}

LABELS: dict[str, str] = {
    "world": "WORLD",
    "tp": "TP",
    "etp": "ETP",
    "dcp": "DCP",
    "pcp": "PCP",
    "pp": "PP",
    "dp": "DP",
    "ep": "EP",
    "eplb": "EPLB",
}

CUTS: dict[str, str] = {
    "world": "world",
    "tp": "parameters",
    "etp": "parameters",
    "dcp": "sequences",
    "pcp": "sequences",
    "pp": "parameters",
    "dp": "requests",
    "ep": "experts",
    "eplb": "experts",
}

# all2all backends that really exchange tokens all-to-all; the others gather and reduce.
A2A_BACKENDS = frozenset(
    {
        "pplx",
        "deepep_high_throughput",
        "deepep_low_latency",
        "mori",
        "nixl_ep",
        "flashinfer_all2allv",
        "flashinfer_nvlink_one_sided",
        "flashinfer_nvlink_two_sided",
    }
)

LEGACY = "v0.7 and older (tp, pp; no DP group)"
# First release of each layout, newest first (read from the wheels of every release).
LAYOUT_RELEASES: tuple[tuple[tuple[int, ...], str], ...] = (
    ((0, 30, 0), "v0.30+ (etp alias of tp; ETP rank in the log)"),
    ((0, 26, 0), "v0.26 – v0.29 (DCP spans the PCP axis first)"),
    ((0, 17, 0), "v0.17 – v0.25 (eplb group)"),
    ((0, 14, 0), "v0.14 – v0.16 (EP only for MoE; dense DP replicas are separate worlds)"),
    ((0, 12, 0), "v0.12 – v0.13 (PCP axis)"),
    ((0, 10, 2), "v0.10.2 – v0.11 (dcp group)"),
    ((0, 9, 0), "v0.9 – v0.10.1 (ep group for every model)"),
    ((0, 8, 2), "v0.8.2 – v0.8.5 (ExternalDP, DP, PP, TP)"),
    ((0, 8, 0), "v0.8.0 – v0.8.1 (DP, PP, TP)"),
)
NEWEST = (0, 33, 0)
MESH_AXES = ("external_dp", "dp", "pp", "pcp", "tp")


class LayoutError(ValueError):
    """The sizes cannot be laid out; the validation rules say why in vLLM's words."""


def release_of(version: str | None) -> tuple[int, ...]:
    """The release whose layout applies: the given one, or the newest read."""
    return parse_version(version) or NEWEST


def layout_version_for(release: tuple[int, ...]) -> str:
    return next((name for first, name in LAYOUT_RELEASES if release >= first), LEGACY)


@dataclass
class VLLMConfig(Values):
    """Parameters after vLLM's own rewrites, each with where its value came from."""

    params: dict[str, Param]
    version: str | None
    release: tuple[int, ...]
    layout_version: str
    rewrites: list[str] = field(default_factory=list)
    engine: str = "vllm"
    ALIASES: ClassVar[dict[str, str]] = ALIASES

    def since(self, *release: int) -> bool:
        return self.release >= release

    @property
    def tp(self) -> int:
        return self["tensor_parallel_size"]

    @property
    def pp(self) -> int:
        return self["pipeline_parallel_size"]

    @property
    def pcp(self) -> int:
        return self["prefill_context_parallel_size"] if self.since(0, 12) else 1

    @property
    def dcp(self) -> int:
        return self["decode_context_parallel_size"] if self.since(0, 10, 2) else 1

    @property
    def dp(self) -> int:
        """Data-parallel size as the user set it (across replicas or inside one world)."""
        return self["data_parallel_size"]

    @property
    def is_moe(self) -> bool:
        return bool(self["is_moe"])

    @property
    def replicas(self) -> int:
        """Separate torch worlds: dense DP replicas from 0.14 (the engine core resets them;
        under `external_launcher` there is no engine core and they share one world), and
        any DP before 0.8."""
        if self.dp <= 1:
            return 1
        if not self.since(0, 8):
            return self.dp
        launcher = self["distributed_executor_backend"] == "external_launcher"
        return self.dp if self.since(0, 14) and not self.is_moe and not launcher else 1

    @property
    def dp_in_world(self) -> int:
        """The DP axis of one torch world."""
        return 1 if self.replicas > 1 else self.dp

    @property
    def engine_world(self) -> int:
        """vLLM's `ParallelConfig.world_size`: the ranks of one DP rank."""
        return self.pp * self.tp * self.pcp

    @property
    def world_size(self) -> int:
        """Ranks of one torch world (`world_size_across_dp` when DP shares it)."""
        return self.engine_world * self.dp_in_world

    @property
    def has_ep_group(self) -> bool:
        return self.since(0, 9) and (self.is_moe or not self.since(0, 14))

    @property
    def flat_moe(self) -> int:
        """dp × pcp × tp: the ranks one MoE layer spans (FusedMoEParallelConfig)."""
        return self.dp_in_world * self.pcp * self.tp

    @property
    def expert_parallel(self) -> bool:
        return bool(self["enable_expert_parallel"]) and self.flat_moe > 1

    @property
    def ep_size(self) -> int:
        return self.flat_moe if self.expert_parallel else 1

    @property
    def moe_tp_size(self) -> int:
        return 1 if self.expert_parallel else self.flat_moe

    def derived(self) -> list[Derived]:
        tp, pp, pcp, dp = self.tp, self.pp, self.pcp, self.dp
        ws = self.engine_world
        out = [
            Derived(
                "engine_world_size",
                ws,
                f"world_size = pipeline_parallel_size × tensor_parallel_size × "
                f"prefill_context_parallel_size = {pp} × {tp} × {pcp} = {ws}",
            )
        ]
        if self.replicas > 1:
            why = (
                "dense model: every DP rank is its own world (vLLM 0.14+)"
                if self.since(0, 8)
                else "no DP group before vLLM 0.8: separate servers"
            )
            out.append(
                Derived(
                    "replicas",
                    self.replicas,
                    f"replicas = data_parallel_size = {dp} ({why}; rank numbers repeat)",
                )
            )
        out.append(
            Derived(
                "torch_world_size",
                self.world_size,
                f"torch world = world_size × data_parallel_size = {ws} × {self.dp_in_world} = "
                f"{self.world_size}",
            )
        )
        if self.is_moe and self.since(0, 9):
            flat = self.flat_moe
            formula = f"dp × pcp × tp = {self.dp_in_world} × {pcp} × {tp} = {flat}"
            if self.expert_parallel:
                out.append(Derived("ep_size", flat, f"ep_size = {formula} (expert parallel on)"))
            else:
                out.append(
                    Derived(
                        "moe_tp_size",
                        flat,
                        f"moe_tp_size = {formula} (--enable-expert-parallel off: every expert "
                        "is TP-sharded over these ranks)",
                    )
                )
        return out

    def shape(self, model: Any) -> Shape:
        places = placement(self)
        nodes = {p.node for p in places if p.node is not None}
        per_node = max(
            (sum(1 for p in places if p.node == n) for n in nodes), default=self.world_size
        )
        kinds = ["tp"]
        if self.is_moe and self.has_ep_group and not self.expert_parallel:
            kinds.append("ep")  # MoE weights TP-sharded over the whole DP x PCP x TP plane
        backend = self["all2all_backend"]
        a2a = backend if backend in A2A_BACKENDS else "none"
        tp, pp, nnodes = self.tp, self.pp, max(len(nodes), 1)
        return Shape(
            uneven_experts=True,
            tp=tp,
            pp=pp,
            nnodes=nnodes,
            gpus_used_per_node=per_node,
            attention_width=tp,
            attention_width_name="tensor_parallel_size",
            ep=self.ep_size,
            moe_tp=self.moe_tp_size,
            ep_kind="ep" if self.expert_parallel else None,
            a2a_backend=a2a,
            allreduce_kinds=tuple(kinds),
            layer_split=self.layer_split,
            replicas=self.replicas,
            per_node_formula=(
                f"data_parallel_size × pipeline_parallel_size × tensor_parallel_size × "
                f"prefill_context_parallel_size / nodes = {self.dp} × {pp} × {tp} × {self.pcp}"
                f" / {nnodes}"
            ),
            params={
                "tp": ("tensor_parallel_size", "nnodes"),
                "pp": ("pipeline_parallel_size", "nnodes", "pp_layer_partition"),
                "fit": (
                    "tensor_parallel_size",
                    "pipeline_parallel_size",
                    "data_parallel_size",
                    "data_parallel_size_local",
                    "nnodes",
                ),
                "attention": ("tensor_parallel_size", "model_path"),
                "ep": (
                    "enable_expert_parallel",
                    "data_parallel_size",
                    "tensor_parallel_size",
                    "all2all_backend",
                ),
            },
            hints=self._hints(nnodes),
        )

    def _hints(self, nnodes: int) -> dict[str, str]:
        tp, pp, dp = self.tp, self.pp, self.dp
        inner = tp // nnodes if nnodes <= tp and tp % nnodes == 0 else tp
        return {
            "RM101": (
                f"Keep TP inside one node: -tp {inner} -pp {pp * tp // inner} puts TP on NVLink "
                "and the nodes on pipeline stages (one activation per stage boundary); for MoE "
                f"models use data parallel attention instead: -tp 1 -dp {dp * tp} "
                "--enable-expert-parallel, so only the expert all-to-all crosses nodes."
                + (
                    " Without --enable-expert-parallel the experts are TP-sharded over all "
                    "dp × tp ranks: add it."
                    if self.is_moe and not self.expert_parallel and self.has_ep_group
                    else ""
                )
            ),
            "RM203": (
                f"Use DP attention: -tp 1 -dp {dp * tp} --enable-expert-parallel keeps one latent "
                "KV per rank (or -dcp to split the KV cache over the TP ranks)."
            ),
            "RM104": (
                "Set --all2all-backend deepep_high_throughput (prefill) or deepep_low_latency "
                "(decode) on RDMA-capable nodes, or keep the EP plane inside one node."
            ),
            "RM205": (
                "Pick -pp dividing the layer count, or set VLLM_PP_LAYER_PARTITION (e.g. "
                "'16,15,15,15') to place the extra layers yourself."
            ),
        }

    def layer_split(self, layers: int, pp: int) -> list[int]:
        """vLLM's `get_pp_indices`: VLLM_PP_LAYER_PARTITION, else the remainder goes one
        layer each to the stages before the last, counting back from it."""
        given = str(self["pp_layer_partition"] or "")
        if re.fullmatch(r"\d+(?:,\d+)*", given):
            parts = [int(x) for x in given.split(",")]
            if len(parts) == pp and sum(parts) == layers:
                return parts  # a malformed value is RM407's to report
        parts = [layers // pp] * pp
        for i in range(2, layers % pp + 2):
            parts[-i] += 1
        return parts


def resolve(given: dict[str, Param], version: str | None = None, model: Any = None) -> VLLMConfig:
    """Fill defaults, rename foreign field names and apply the rewrites that change the layout.

    A value the engine prints after its own rewrites (the engine config line) already
    carries them; rewrites below only record what really changed.
    """
    params = {name: Param(name, value, DEFAULT) for name, value in DEFAULTS.items()}
    own_sizes = any(name in given for name in ("tensor_parallel_size", "pipeline_parallel_size"))
    for name, param in given.items():
        target = ALIASES.get(name, name)
        if target != name and (target in given or (own_sizes and _guessed(param))):
            continue  # the engine's own values win over a foreign name or a guess from prefixes
        params[target] = Param(target, param.value, param.source)
    release = release_of(version)
    cfg = VLLMConfig(params, version, release, layout_version_for(release))
    params["is_moe"] = _is_moe(cfg, model)
    _rewrite_dense_dp(cfg)
    return cfg


def _guessed(param: Param) -> bool:
    return param.source.kind == "inferred"


def _is_moe(cfg: VLLMConfig, model: Any) -> Param:
    """Whether the model has routed experts, and how rankmap knows."""
    if model is not None:
        why = f"{model.name} has {model.n_routed_experts or 0} routed experts ({model.source})"
        return Param("is_moe", model.is_moe, Source("inferred", why=why))
    if "is_moe" in cfg.params:
        return cfg.params["is_moe"]
    if cfg["enable_expert_parallel"]:
        why = "--enable-expert-parallel is only accepted for MoE models"
        return Param("is_moe", True, Source("inferred", why=why))
    if cfg["data_parallel_rank"] is not None and cfg.dp > 1:
        why = "external data parallel (--data-parallel-rank) is only accepted for MoE models"
        return Param("is_moe", True, Source("inferred", why=why))
    why = "model unknown, assumed dense (pass --model-config to know)"
    return Param("is_moe", False, Source("inferred", why=why))


def _rewrite_dense_dp(cfg: VLLMConfig) -> None:
    """Record vLLM 0.14+'s reset of a dense model's DP engines to independent worlds."""
    if cfg.replicas > 1 and cfg.since(0, 14):
        cfg.rewrites.append(
            f"each of the {cfg.dp} DP engines runs with data_parallel_size = 1 and "
            "data_parallel_rank = 0: the model is dense, so its DP replicas share no group "
            "(EngineCoreProc.run_engine_core, vLLM 0.14+)"
        )


def structural_problems(cfg: VLLMConfig) -> list[str]:
    """Sizes that make the mesh impossible; the layout is not computed then."""
    names = (
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "prefill_context_parallel_size",
        "decode_context_parallel_size",
        "nnodes",
    )
    problems = [
        f"{name} must be a positive integer, got {cfg[name]!r}"
        for name in names
        if not isinstance(cfg[name], int) or isinstance(cfg[name], bool) or cfg[name] < 1
    ]
    if problems:
        return problems
    tp, pcp, dcp = cfg.tp, cfg.pcp, cfg.dcp
    if dcp > 1 and pcp > 1 and cfg.since(0, 26):
        if dcp not in (pcp, tp * pcp):
            problems.append(f"decode_context_parallel_size {dcp} is neither 1, PCP nor TP × PCP")
    elif tp % dcp:
        problems.append(f"tensor_parallel_size {tp} is not divisible by dcp {dcp}")
    return problems


def world_mesh(cfg: VLLMConfig) -> Mesh:
    return Mesh(
        "world",
        (
            Axis(
                "external_dp", 1, "W / (dp · pp · pcp · tp) = 1 (>1 only under an outer launcher)"
            ),
            Axis("dp", cfg.dp_in_world, _dp_formula(cfg)),
            Axis("pp", cfg.pp, f"pipeline_parallel_size = {cfg.pp}"),
            Axis("pcp", cfg.pcp, f"prefill_context_parallel_size = {cfg.pcp}"),
            Axis("tp", cfg.tp, f"tensor_parallel_size = {cfg.tp}"),
        ),
    )


def _dp_formula(cfg: VLLMConfig) -> str:
    if cfg.replicas > 1:
        return f"1 (data_parallel_size = {cfg.dp} separate worlds)"
    return f"data_parallel_size = {cfg.dp}"


def transposed(mesh: Mesh, order: tuple[str, ...], size: int) -> list[list[int]]:
    """numpy's `A.transpose(...).reshape(-1, size)` rows: ranks enumerated with the axes in
    `order` (last fastest), cut into consecutive rows of `size`."""
    strides: dict[str, int] = {}
    stride = 1
    for axis in reversed(mesh.axes):
        strides[axis.name] = stride
        stride *= axis.size
    sizes = [mesh.axis(name).size for name in order]
    flat = [
        mesh.offset + sum(i * strides[name] for i, name in zip(index, order, strict=True))
        for index in itertools.product(*(range(n) for n in sizes))
    ]
    return [flat[i : i + size] for i in range(0, len(flat), size)]


def _swap(a: str, b: str) -> tuple[str, ...]:
    """MESH_AXES with two axes swapped: the order `all_ranks.transpose(a, b)` gives."""
    return tuple(b if x == a else a if x == b else x for x in MESH_AXES)


def _group(kind: str, ranks: list[list[int]], axes: tuple[str, ...], **kw: Any) -> Group:
    return Group(kind, LABELS[kind], CUTS[kind], ranks, mesh="world", axes=axes, **kw)  # type: ignore[arg-type]


def build_groups(cfg: VLLMConfig) -> tuple[list[Mesh], list[Group]]:
    """Every group vLLM creates, in its creation order, aliases included."""
    mesh = world_mesh(cfg)
    W = mesh.size
    tp = _group("tp", transposed(mesh, MESH_AXES, cfg.tp), ("tp",))
    pp = _group("pp", transposed(mesh, _swap("pp", "tp"), cfg.pp), ("pp",))
    dp = _group("dp", transposed(mesh, _swap("dp", "tp"), cfg.dp_in_world), ("dp",))
    groups = [_group("world", [list(range(W))], MESH_AXES), tp]
    if not cfg.since(0, 8):
        return [mesh], [*groups, _group("pp", mesh.groups("pp"), ("pp",))]
    if cfg.since(0, 30):
        groups.append(_group("etp", tp.ranks, ("tp",), alias_of="tp", built=False))
    if cfg.since(0, 10, 2):
        groups.append(
            _group("dcp", _dcp_ranks(cfg, mesh), ("tp",) if cfg.pcp == 1 else ("pcp", "tp"))
        )
    if cfg.since(0, 12):
        groups.append(_group("pcp", transposed(mesh, _swap("pcp", "tp"), cfg.pcp), ("pcp",)))
    groups += [pp, dp]
    if cfg.has_ep_group:
        order = ("external_dp", "pp", "dp", "pcp", "tp")
        ep = _group("ep", transposed(mesh, order, cfg.flat_moe), ("dp", "pcp", "tp"))
        groups.append(ep)
        if cfg["enable_eplb"] and cfg.since(0, 17):
            groups.append(_group("eplb", ep.ranks, ep.axes))
    return [mesh], groups


def _dcp_ranks(cfg: VLLMConfig, mesh: Mesh) -> list[list[int]]:
    """Consecutive dcp-size slices; from 0.26 with dcp > 1 over (…, TP, PCP), PCP fastest."""
    if cfg.dcp > 1 and cfg.since(0, 26):
        return transposed(mesh, _swap("pcp", "tp"), cfg.dcp)
    return transposed(mesh, MESH_AXES, cfg.dcp)


def coordinates(cfg: VLLMConfig, rank: int) -> dict[str, int]:
    """A rank's index in each group kind the release builds (vLLM's `rank_in_group`),
    from its place in the mesh."""
    c = world_mesh(cfg).coords(rank)
    tp, pcp, dcp = cfg.tp, cfg.pcp, cfg.dcp
    out = {"dp": c["dp"], "pp": c["pp"], "tp": c["tp"]}
    if cfg.since(0, 12):
        out["pcp"] = c["pcp"]
    if cfg.since(0, 30):
        out["etp"] = c["tp"]
    if cfg.since(0, 10, 2):
        spans_pcp = dcp > 1 and pcp > 1 and cfg.since(0, 26)
        out["dcp"] = (
            (c["pcp"] if dcp == pcp else c["tp"] * pcp + c["pcp"]) if spans_pcp else (c["tp"] % dcp)
        )
    if cfg.has_ep_group:
        out["ep"] = (c["dp"] * pcp + c["pcp"]) * tp + c["tp"]
        if cfg["enable_eplb"] and cfg.since(0, 17):
            out["eplb"] = out["ep"]
    return out


def coordinate_tokens(cfg: VLLMConfig, rank: int, replica: int = 0) -> list[str]:
    """The worker-name tokens vLLM 0.10.2+ prints (`Worker_DP1_PP1_TP1_EP5`); for dense DP
    replicas the replica index (the `EngineCore_DP` number) comes first."""
    c = coordinates(cfg, rank)
    tokens = [f"DP{replica}"] if cfg.replicas > 1 else []
    sizes = {"dp": cfg.dp_in_world, "pp": cfg.pp, "pcp": cfg.pcp, "tp": cfg.tp, "dcp": cfg.dcp}
    tokens += [f"{k.upper()}{c[k]}" for k in ("dp", "pp", "pcp", "tp", "dcp") if sizes[k] > 1]
    if cfg["enable_expert_parallel"] and "ep" in c:
        tokens.append(f"EP{c['ep']}")
    return tokens


def placement(cfg: VLLMConfig, hosts: dict[int, str] | None = None) -> list[Placement]:
    """Rank → (node, GPU) for every replica, the way vLLM's launchers fill the nodes.

    Ranks are numbered DP rank by DP rank (`rank = dp_rank × world_size + local_rank`),
    and `--nnodes` splits that sequence into equal consecutive blocks. Without it, a
    `--data-parallel-size-local` below `--data-parallel-size` means the other DP ranks run
    on other nodes, `data_parallel_size_local` per node; otherwise everything is on one
    node. A DP rank's first GPU is `dp_local_rank × pp × tp` (× pcp only from 0.33). With
    `--data-parallel-rank` (external load balancing) the command starts one DP rank; where
    the others run is not in it, so they get no node.
    """
    hosts = hosts or {}
    ws, dp = cfg.engine_world, cfg.dp
    total = ws * dp
    nnodes = max(cfg["nnodes"], 1)
    local = cfg["data_parallel_size_local"]
    own = cfg["data_parallel_rank"]
    if own is not None and dp > 1 and nnodes == 1 and not _ray(cfg):
        node_of = [0 if g // ws == own else None for g in range(total)]
        gpu_of = [g % ws for g in range(total)]
    elif nnodes > 1 or _ray(cfg):
        per_node = max(-(-total // nnodes), 1)
        node_of: list[int | None] = [g // per_node for g in range(total)]
        gpu_of = [g % per_node for g in range(total)]
    else:
        per_dp = local if local and local < dp else dp
        stride = ws if cfg.since(0, 33) else cfg.pp * cfg.tp
        node_of = [(g // ws) // per_dp for g in range(total)]
        gpu_of = [((g // ws) % per_dp) * stride + g % ws for g in range(total)]
    out = []
    for g in range(total):
        replica, rank = (g // ws, g % ws) if cfg.replicas > 1 else (0, g)
        node = node_of[g]
        host = None if node is None else hosts.get(node, f"node{node}")
        out.append(Placement(rank, host, gpu_of[g], node, replica))
    return out


def _ray(cfg: VLLMConfig) -> bool:
    return cfg["distributed_executor_backend"] == "ray" or cfg["data_parallel_backend"] == "ray"


def layout(cfg: VLLMConfig, hosts: dict[int, str] | None = None) -> Layout:
    problems = structural_problems(cfg)
    if problems:
        raise LayoutError("; ".join(problems))
    meshes, groups = build_groups(cfg)
    return Layout(
        engine="vllm",
        engine_version=cfg.version,
        world_size=cfg.world_size,
        replicas=cfg.replicas,
        meshes=meshes,
        groups=groups,
        placement=placement(cfg, hosts),
        layout_version=cfg.layout_version,
    )
