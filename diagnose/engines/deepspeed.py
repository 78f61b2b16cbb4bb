"""DeepSpeed's process groups, reproduced from deepspeed/utils/groups.py and the pipeline grid.

DeepSpeed trains one torch world of every launched process. Without model parallelism its
data-parallel group is a clone of that world (ZeRO shards over it); MoE layers add
expert-data-parallel and expert-parallel groups named `ep_size_<N>` (the legacy path of
`_create_expert_and_data_parallel`: expert-DP groups first, stride ep_size, then EP groups
of consecutive ranks); a PipelineModule builds a `PipelineParallelGrid` over the
(pipe, data) topology first; AutoTP (`tensor_parallel.autotp_size`) and Ulysses sequence
parallelism (`sequence_parallel_size` with `data_parallel_size`) build a 2-D mesh
(data_parallel, tensor_parallel / sequence_parallel). ZeRO++ hpZ
(`zero_hpz_partition_size`) adds consecutive parameter-partition groups.

The order below is the creation order of DeepSpeedEngine.__init__ as read at DeepSpeed
0.19.6: grid or mesh groups, then MoE groups (`set_deepspeed_parallelism`), then the
data-parallel clone of the world, then ZeRO-3's hpZ groups. The batch arithmetic is
DeepSpeedConfig's: train_batch_size = micro batch × gradient accumulation × DP size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from diagnose.engines.base import Derived, Shape, Values, parse_version
from diagnose.model import DEFAULT, Axis, Group, Layout, Mesh, Param, Placement, Source

DEFAULTS: dict[str, Any] = {
    "nnodes": 1,
    "num_gpus": None,
    "num_local_procs": None,
    "dist_world_size": None,
    "world_size": None,
    "world_info": None,
    "cuda_visible_devices": None,
    "node_rank": 0,
    "ep_size": 1,
    "num_experts": None,
    "use_data_before_expert_parallel_": False,
    "pp_size": 1,
    "autotp_size": 0,
    "sequence_parallel_size": 1,
    "data_parallel_size": None,
    "zero_stage": 0,
    "zero_hpz_partition_size": 1,
    "mics_shard_size": -1,
    "train_batch_size": None,
    "train_micro_batch_size_per_gpu": None,
    "gradient_accumulation_steps": None,
    "deepspeed_config": None,
    "user_script": None,
    "model_path": None,
}

LAYOUT = "0.14.1+ (expert groups per pipeline stage; expert-DP groups before EP groups)"
LAYOUT_WORLD_EXPERTS = "< 0.14.1 (expert groups span the whole world, pipeline stages ignored)"


def layout_version_for(version: str | None) -> str:
    """groups.py carved expert groups out of each pipeline stage from 0.14.1 on (checked
    against the release tags); an unknown version means the current code."""
    v = parse_version(version)
    return LAYOUT_WORLD_EXPERTS if v is not None and v < (0, 14, 1) else LAYOUT


LABELS: dict[str, str] = {
    "world": "WORLD",
    "model_parallel": "MODEL",
    "data_parallel": "DP",
    "pipe_parallel": "PP",
    "slice_parallel": "SLICE",
    "sequence_parallel": "SP",
    "tensor_model_parallel": "TP",
    "expert_data_parallel": "EDP",
    "expert_parallel": "EP",
    "zero_param_intra_parallel": "HPZ",
}

CUTS: dict[str, str] = {
    "world": "world",
    "model_parallel": "parameters",
    "data_parallel": "requests",
    "pipe_parallel": "parameters",
    "slice_parallel": "parameters",
    "sequence_parallel": "sequences",
    "tensor_model_parallel": "parameters",
    "expert_data_parallel": "requests",
    "expert_parallel": "experts",
    "zero_param_intra_parallel": "parameters",
}


class LayoutError(ValueError):
    """Sizes DeepSpeed cannot lay out (or rankmap cannot know); the RM7xx rules say why."""


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass
class DeepSpeedConfig(Values):
    """Launcher and ds_config values, each with where it came from."""

    params: dict[str, Param]
    version: str | None
    layout_version: str = LAYOUT
    rewrites: list[str] = field(default_factory=list)
    engine: str = "deepspeed"
    moe_given: bool = False

    def __getitem__(self, name: str) -> Any:
        if name == "tp_size" and name not in self.params:
            return self.tp  # shared code reads tp_size; DeepSpeed's own name is autotp_size
        return super().__getitem__(name)

    @property
    def tp(self) -> int:
        return max(self["autotp_size"] or 1, 1)

    @property
    def sp(self) -> int:
        return self["sequence_parallel_size"] or 1

    @property
    def world(self) -> int | None:
        return self["dist_world_size"]

    @property
    def world_size(self) -> int:
        return self.world or 0

    @property
    def replicas(self) -> int:
        return 1

    @property
    def dp(self) -> int:
        """DeepSpeedConfig.world_size: the data-parallel size the batch is split over."""
        return self.world_size // (self.tp * self["pp_size"] * self.sp)

    @property
    def has_moe(self) -> bool:
        """MoE groups exist once MoE layers do: an ep_size or expert count was given."""
        return self.moe_given or self["num_experts"] is not None

    @property
    def expert_stages(self) -> int:
        """Pipeline stages the expert groups respect (none before 0.14.1)."""
        return self["pp_size"] if self.layout_version == LAYOUT else 1

    @property
    def stage_width(self) -> int:
        """pp_stride of groups.py: the ranks expert groups are carved from."""
        return self.world_size // self.expert_stages

    def batch(self) -> tuple[int | None, int | None, int | None]:
        """(train_batch, micro, grad_acc) after DeepSpeedConfig fills in the missing ones."""
        train, micro, ga = (
            self["train_batch_size"],
            self["train_micro_batch_size_per_gpu"],
            self["gradient_accumulation_steps"],
        )
        dp = self.dp
        if not dp:
            return train, micro, ga
        if train is not None and micro is not None and ga is None:
            ga = train // micro // dp
        elif train is not None and ga is not None and micro is None:
            micro = train // dp // ga
        elif micro is not None and ga is not None and train is None:
            train = micro * ga * dp
        elif train is not None and micro is None and ga is None:
            ga, micro = 1, train // dp
        elif micro is not None and train is None and ga is None:
            train, ga = micro * dp, 1
        return train, micro, ga

    def derived(self) -> list[Derived]:
        w, tp, pp, sp = self.world_size, self.tp, self["pp_size"], self.sp
        out = [
            Derived("dist_world_size", w, f"world = {self.src('dist_world_size')} = {w}"),
            Derived(
                "dp_world_size",
                self.dp,
                f"DP = world / (autotp × pipeline stages × sequence parallel) = "
                f"{w} / ({tp} × {pp} × {sp}) = {self.dp}",
            ),
        ]
        train, micro, ga = self.batch()
        if None not in (train, micro, ga):
            out.append(
                Derived(
                    "train_batch_size",
                    train,  # type: ignore[arg-type]
                    f"train_batch_size = micro × grad_acc × DP = {micro} × {ga} × {self.dp} = "
                    f"{micro * ga * self.dp}",  # type: ignore[operator]
                )
            )
        if self.has_moe:
            ep = self["ep_size"]
            out.append(
                Derived(
                    "expert_dp_size",
                    self.stage_width // ep,
                    f"expert-DP = ranks per stage / ep_size = {self.stage_width} / {ep} = "
                    f"{self.stage_width // ep}",
                )
            )
        return out

    def shape(self, model: Any) -> Shape:
        tp, pp = self.tp, self["pp_size"]
        per_node = self.procs_per_node()
        nnodes = self["nnodes"]
        return Shape(
            tp=tp,
            pp=pp,
            nnodes=nnodes,
            gpus_used_per_node=per_node,
            attention_width=tp,
            attention_width_name="tensor_parallel.autotp_size",
            ep=self["ep_size"],
            moe_tp=1,
            ep_kind="expert_parallel" if self.has_moe else None,
            a2a_backend="all_to_all_single",
            allreduce_kinds=("tensor_model_parallel",) if tp > 1 else (),
            layer_split=layer_split,
            pp_kind="pipe_parallel",
            per_node_formula=f"processes per node = {self.per_node_formula()}",
            params={
                "tp": ("autotp_size", "nnodes", "num_gpus"),
                "pp": ("pp_size", "nnodes"),
                "fit": ("num_gpus", "num_local_procs", "nnodes", "world_info"),
                "attention": ("autotp_size", "model_path"),
                "ep": ("ep_size", "num_experts", "nnodes"),
            },
            hints={
                "RM101": (
                    "Keep tensor_parallel.autotp_size within one node (at most the GPUs of a "
                    "node) and let ZeRO data parallelism span the nodes."
                ),
                "RM102": (
                    "Set --num_gpus to the GPUs of each node (or drop it: the launcher then "
                    "uses every visible GPU), or --include host:0,1,… explicitly."
                ),
            },
        )

    def procs_per_node(self) -> int:
        info = self["world_info"]
        if isinstance(info, dict) and info:
            return max(len(v) for v in info.values())
        for name in ("num_local_procs", "num_gpus"):
            if _positive(self[name]):
                return self[name]
        return self.world_size // max(self["nnodes"], 1)

    def per_node_formula(self) -> str:
        info = self["world_info"]
        if isinstance(info, dict) and info:
            return "the launcher's world info " + ", ".join(
                f"{h}: {len(v)}" for h, v in info.items()
            )
        for name in ("num_local_procs", "num_gpus"):
            if _positive(self[name]):
                return f"{name} = {self[name]}"
        return f"world / nnodes = {self.world_size} / {self['nnodes']}"


def layer_split(layers: int, stages: int) -> list[int]:
    """partition_uniform: the first `layers % stages` stages take one extra layer.

    PipelineModule's default partition_method is 'parameters' (balanced by weights); the
    uniform split is the one layer counts alone can predict.
    """
    base, extra = divmod(layers, stages)
    return [base + (1 if i < extra else 0) for i in range(stages)]


def resolve(
    given: dict[str, Param], version: str | None = None, model: Any = None
) -> DeepSpeedConfig:
    """Fill defaults and work out the world the launcher starts, recording how."""
    params = {name: Param(name, value, DEFAULT) for name, value in DEFAULTS.items()}
    params.update(given)
    cfg = DeepSpeedConfig(
        params, version, layout_version_for(version), moe_given="ep_size" in given
    )
    _world_from_launcher(cfg)
    return cfg


def _set(cfg: DeepSpeedConfig, name: str, value: Any, why: str) -> None:
    if cfg[name] == value and cfg.params[name].source.kind != "default":
        return
    cfg.params[name] = Param(name, value, Source("inferred", why=why))


def _world_from_launcher(cfg: DeepSpeedConfig) -> None:
    """dist_world_size from, in order: the launcher's log, its world info, --num_gpus ×
    nodes, CUDA_VISIBLE_DEVICES × nodes, the config dump's DP size × model-parallel sizes."""
    info = cfg["world_info"]
    if isinstance(info, dict) and info and cfg.params["nnodes"].source.kind == "default":
        _set(cfg, "nnodes", len(info), f"hosts in the launcher's world info ({len(info)})")
    if cfg.world is not None:
        return
    nnodes = cfg["nnodes"]
    if isinstance(info, dict) and info:
        total = sum(len(v) for v in info.values())
        _set(cfg, "dist_world_size", total, f"slots in the launcher's world info = {total}")
    elif _positive(cfg["num_gpus"]) or _positive(cfg["num_local_procs"]):
        name = "num_local_procs" if _positive(cfg["num_local_procs"]) else "num_gpus"
        n = cfg[name]
        _set(cfg, "dist_world_size", n * nnodes, f"{name} × nnodes = {n} × {nnodes}")
    elif cfg["cuda_visible_devices"]:
        n = len(str(cfg["cuda_visible_devices"]).split(","))
        why = f"CUDA_VISIBLE_DEVICES lists {n} GPUs × nnodes {nnodes}"
        _set(cfg, "dist_world_size", n * nnodes, why)
    elif _positive(cfg["world_size"]):
        w = cfg["world_size"] * cfg.tp * cfg["pp_size"] * cfg.sp
        why = f"config world_size (DP) × autotp × stages × SP = {cfg['world_size']} × … = {w}"
        _set(cfg, "dist_world_size", w, why)


def structural_problems(cfg: DeepSpeedConfig) -> list[str]:
    """What leaves no layout to show (DeepSpeed's own asserts are RM7xx findings)."""
    w = cfg.world
    if w is None:
        return [
            "the world size is unknown: the launcher uses every visible GPU; pass --num_gpus "
            "(or --include / CUDA_VISIBLE_DEVICES), or give the launcher's log"
        ]
    problems = []
    for name in ("pp_size", "ep_size", "nnodes", "sequence_parallel_size"):
        if not _positive(cfg[name]):
            problems.append(f"{name} must be a positive integer, got {cfg[name]!r}")
    if not _positive(w):
        problems.append(f"world size must be a positive integer, got {w!r}")
    if problems:
        return problems
    model_parallel = cfg.tp * cfg["pp_size"] * cfg.sp
    if w % model_parallel:
        problems.append(
            f"world size {w} is not divisible by autotp × stages × SP = {model_parallel}"
        )
    if cfg.has_moe and cfg.stage_width % cfg["ep_size"]:
        problems.append(f"{cfg.stage_width} is not divisible by {cfg['ep_size']}")
    if cfg.has_moe and (cfg.tp > 1 or cfg.sp > 1):
        problems.append("MoE groups together with AutoTP or sequence parallelism are not modelled")
    if sum(x > 1 for x in (cfg.tp, cfg["pp_size"], cfg.sp)) > 1:
        problems.append("combining pipeline, AutoTP and sequence parallelism is not modelled")
    hpz = cfg["zero_hpz_partition_size"]
    if cfg["zero_stage"] == 3 and _positive(hpz) and hpz > 1 and w % min(hpz, w):
        problems.append(f"{w} is not divisible by {hpz}")
    return problems


def _group(kind: str, ranks: list[list[int]], mesh: str, axes: tuple[str, ...], **kw: Any) -> Group:
    return Group(kind, LABELS[kind], CUTS[kind], ranks, mesh=mesh, axes=axes, **kw)  # type: ignore[arg-type]


def build_groups(cfg: DeepSpeedConfig) -> tuple[list[Mesh], list[Group]]:
    """Every group DeepSpeed creates for this configuration, in creation order."""
    w = cfg.world_size
    meshes: list[Mesh] = []
    groups = [_group("world", [list(range(w))], "world", ())]
    pp, tp, sp = cfg["pp_size"], cfg.tp, cfg.sp
    dp = cfg.dp
    has_dp_group = False
    if pp > 1:
        grid = Mesh("grid", (Axis("pipe", pp, f"stages = {pp}"), Axis("data", dp, f"DP = {dp}")))
        meshes.append(grid)
        groups += [
            _group("model_parallel", grid.groups("pipe"), "grid", ("pipe",)),
            _group("data_parallel", grid.groups("data"), "grid", ("data",)),
            _group("pipe_parallel", grid.groups("pipe"), "grid", ("pipe",)),
            _group("slice_parallel", [[r] for r in range(w)], "grid", ()),
        ]
        has_dp_group = True
    elif sp > 1 or tp > 1:
        inner, size = ("sequence_parallel", sp) if sp > 1 else ("tensor_model_parallel", tp)
        mesh = Mesh("mesh", (Axis("data_parallel", dp, f"DP = {dp}"), Axis(inner, size)))
        meshes.append(mesh)
        groups += [
            _group("data_parallel", mesh.groups("data_parallel"), "mesh", ("data_parallel",)),
            _group(inner, mesh.groups(inner), "mesh", (inner,)),
        ]
        if inner == "tensor_model_parallel":
            target = groups[-1]
            groups.append(
                _group(
                    "model_parallel",
                    target.ranks,
                    "mesh",
                    (inner,),
                    alias_of=target.kind,
                    built=False,
                )
            )
        has_dp_group = True
    if cfg.has_moe:
        moe, expert_groups = _expert_groups(cfg)
        meshes.append(moe)
        groups += expert_groups
    if not has_dp_group:
        groups.append(_group("data_parallel", [list(range(w))], "world", ()))
    hpz = cfg["zero_hpz_partition_size"]
    if cfg["zero_stage"] == 3 and _positive(hpz) and hpz > 1:
        size = min(hpz, w)
        blocks = [list(range(i * size, (i + 1) * size)) for i in range(w // size)]
        groups.append(_group("zero_param_intra_parallel", blocks, "world", ()))
    return meshes, groups


def _expert_groups(cfg: DeepSpeedConfig) -> tuple[Mesh, list[Group]]:
    """`_create_expert_and_data_parallel` legacy path: expert-DP groups, then EP groups.

    Per stage of pp_stride ranks: E + D (default) puts EP ranks consecutive and expert-DP
    ranks at stride ep_size; D + E (use_data_before_expert_parallel_) the other way round.
    """
    pp, ep = cfg.expert_stages, cfg["ep_size"]
    edp = cfg.stage_width // ep
    ax_pp = Axis("pipe", pp, f"stages = {pp}")
    ax_ep = Axis("ep", ep, f"ep_size = {ep}")
    ax_edp = Axis("edp", edp, f"expert-DP = {cfg.stage_width} / {ep} = {edp}")
    if cfg["use_data_before_expert_parallel_"]:
        moe = Mesh("moe", (ax_pp, ax_ep, ax_edp))
    else:
        moe = Mesh("moe", (ax_pp, ax_edp, ax_ep))
    return moe, [
        _group("expert_data_parallel", moe.groups("edp"), "moe", ("edp",)),
        _group("expert_parallel", moe.groups("ep"), "moe", ("ep",)),
    ]


def placement(cfg: DeepSpeedConfig, hosts: dict[int, str] | None = None) -> list[Placement]:
    """Rank → (host, GPU) as deepspeed.launcher.launch assigns them.

    Ranks are numbered host by host in world-info order and each process sees its host's
    slot list as CUDA_VISIBLE_DEVICES, so local rank i runs on slot i.
    """
    hosts = hosts or {}
    info = cfg["world_info"]
    out = []
    if isinstance(info, dict) and info:
        rank = 0
        for node, (host, slots) in enumerate(info.items()):
            for slot in slots:
                out.append(Placement(rank, hosts.get(node, host), int(slot), node))
                rank += 1
        return out
    per_node = max(cfg.procs_per_node(), 1)
    visible = _visible(cfg)
    for rank in range(cfg.world_size):
        node, local = divmod(rank, per_node)
        gpu = visible[local] if local < len(visible) else local
        out.append(Placement(rank, hosts.get(node, f"node{node}"), gpu, node))
    return out


def _visible(cfg: DeepSpeedConfig) -> list[int]:
    text = cfg["cuda_visible_devices"]
    if not text:
        return []
    return [int(x) for x in re.findall(r"\d+", str(text))]


def coordinates(cfg: DeepSpeedConfig, rank: int) -> dict[str, int]:
    out: dict[str, int] = {}
    pp, tp, sp = cfg["pp_size"], cfg.tp, cfg.sp
    if pp > 1:
        out["stage"], out["dp"] = divmod(rank, cfg.dp)
    else:
        out["dp"] = rank // (tp * sp)
        if tp > 1:
            out["tp"] = rank % tp
        if sp > 1:
            out["sp"] = rank % sp
    if cfg.has_moe:
        local = rank % cfg.stage_width
        ep, edp = cfg["ep_size"], cfg.stage_width // cfg["ep_size"]
        if cfg["use_data_before_expert_parallel_"]:
            out["ep"], out["edp"] = divmod(local, edp)
        else:
            out["edp"], out["ep"] = divmod(local, ep)
    return out


def coordinate_tokens(cfg: DeepSpeedConfig, rank: int, replica: int = 0) -> list[str]:
    c = coordinates(cfg, rank)
    labels = {"stage": "PP", "dp": "DP", "tp": "TP", "sp": "SP", "ep": "EP", "edp": "EDP"}
    return [f"{labels[k]}{v}" for k, v in c.items()]


def layout(cfg: DeepSpeedConfig, hosts: dict[int, str] | None = None) -> Layout:
    problems = structural_problems(cfg)
    if problems:
        raise LayoutError("; ".join(problems))
    meshes, groups = build_groups(cfg)
    return Layout(
        engine="deepspeed",
        engine_version=cfg.version,
        world_size=cfg.world_size,
        replicas=1,
        meshes=meshes,
        groups=groups,
        placement=placement(cfg, hosts),
        layout_version=cfg.layout_version,
    )
