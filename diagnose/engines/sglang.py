"""SGLang's process-group layout, reproduced from its own formulas.

SGLang runs one torch world of tp*pp ranks per replica and carves attention-DP,
attention-CP and the MoE dimensions out of each TP group by laying the same ranks out
twice: an attention mesh (pp, attn_dp, attn_cp, attn_tp) and an MoE mesh
(pp, moe_dp, ep, moe_tp). The rank lists and their order below are those of
`initialize_model_parallel`; the resolution step mirrors ServerArgs.__post_init__ so a
launch command and a `server_args=` dump give the same layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from diagnose.engines.base import Derived, Shape, Values, parse_version
from diagnose.model import (
    DEFAULT,
    Axis,
    Group,
    Layout,
    Mesh,
    Param,
    Placement,
)

DEFAULTS: dict[str, Any] = {
    "tp_size": 1,
    "pp_size": 1,
    "dp_size": 1,
    "enable_dp_attention": False,
    "ep_size": 1,
    "attn_cp_size": 1,
    "moe_dp_size": 1,
    "moe_dense_tp_size": None,
    "dcp_size": 1,
    "nnodes": 1,
    "node_rank": 0,
    "base_gpu_id": 0,
    "gpu_id_step": 1,
    "moe_a2a_backend": "none",
    "enable_deepep_waterfill": False,
    "enable_ep_moe": False,
    "enable_prefill_cp": False,
    "cp_strategy": None,
    "enable_prefill_context_parallel": False,
    "enable_nsa_prefill_context_parallel": False,
    "enable_dsa_prefill_context_parallel": False,
    "dsa_prefill_cp_mode": None,
    "dwdp_size": None,
    "enable_dp_lm_head": False,
    "enable_eplb": False,
    "enable_pdmux": False,
    "disaggregation_mode": "null",
    "model_path": None,
}

# moe_a2a_backend values for which ServerArgs sets ep_size = tp_size, with the name its
# warning uses.
A2A_FORCES_EP: dict[str, str] = {
    "deepep": "DeepEP MoE",
    "mooncake": "Mooncake MoE",
    "nixl": "Nixl MoE",
    "ascend_fuseep": "Ascend fused EP MoE",
    "flashinfer": "Flashinfer MoE A2A",
    "mori": "MoRI MoE",
    "megamoe": "Mega MoE",
}

LABELS: dict[str, str] = {
    "world": "WORLD",
    "tp": "TP",
    "pdmux_prefill_tp": "PDMUX_PREFILL_TP",
    "dcp": "DCP",
    "attn_cp": "ATTN_CP",
    "attention_tp": "ATTN_TP",
    "attn_dp": "ATTN_DP",
    "moe_dp": "MOE_DP",
    "moe_ep": "MOE_EP",
    "moe_tp": "MOE_TP",
    "pp": "PP",
    "self_pp": "SELF_PP",
    "dp_tp": "DP_TP",
}

CUTS: dict[str, str] = {
    "world": "world",
    "tp": "parameters",
    "pdmux_prefill_tp": "parameters",
    "attention_tp": "parameters",
    "moe_tp": "parameters",
    "pp": "parameters",
    "self_pp": "parameters",
    "dp_tp": "parameters",
    "attn_dp": "requests",
    "moe_dp": "requests",
    "attn_cp": "sequences",
    "dcp": "sequences",
    "moe_ep": "experts",
}

LAYOUT_V04 = "v0.4 (tp, pp, attention_tp)"
LAYOUT_V0410 = "v0.4.10 – v0.5.1 (moe_ep/moe_tp always built, attention_tp last)"
LAYOUT_V052 = "v0.5.2 – v0.5.8 (moe_ep/moe_tp alias tp, attention_tp last)"
LAYOUT_V059 = "v0.5.9 – v0.5.10 (attn_cp/moe_dp; moe_dp never aliases attn_cp)"
LAYOUT_CURRENT = "current: v0.5.11+ (attn_cp/moe_dp; moe_dp may alias attn_cp)"
LAYOUT_V0523 = "v0.5.23+ (--attn-dp-size, dcp, self_pp)"

# First release of each layout, newest first (boundaries checked against the wheels).
LAYOUT_RELEASES: tuple[tuple[tuple[int, ...], str], ...] = (
    ((0, 5, 23), LAYOUT_V0523),
    ((0, 5, 11), LAYOUT_CURRENT),
    ((0, 5, 9), LAYOUT_V059),
    ((0, 5, 2), LAYOUT_V052),
    ((0, 4, 10), LAYOUT_V0410),
)
LEGACY_LAYOUTS = (LAYOUT_V04, LAYOUT_V0410, LAYOUT_V052)


class LayoutError(ValueError):
    """The sizes cannot be laid out; the validation rules say why in SGLang's words."""


def layout_version_for(version: str | None) -> str:
    """Which of SGLang's historical group layouts a release builds.

    moe_ep/moe_tp arrived in 0.4.10 and became aliases of tp when equal to it in 0.5.2;
    attn_cp/moe_dp arrived in 0.5.9 and moe_dp started aliasing attn_cp in 0.5.11;
    --attn-dp-size and the dcp/self_pp groups came with 0.5.23. Unknown: the newest
    layout before 0.5.23's new flag semantics.
    """
    v = parse_version(version)
    if v is None:
        return LAYOUT_CURRENT
    return next((lv for first, lv in LAYOUT_RELEASES if v >= first), LAYOUT_V04)


@dataclass
class SGLangConfig(Values):
    """Parameters after SGLang's own rewrites, each with where its value came from."""

    params: dict[str, Param]
    version: str | None
    layout_version: str
    rewrites: list[str] = field(default_factory=list)
    engine: str = "sglang"

    @property
    def attn_dp_size(self) -> int:
        if self.layout_version == LAYOUT_V0523:
            return self["attn_dp_size"]
        return self["dp_size"] if self["enable_dp_attention"] else 1

    @property
    def world_size(self) -> int:
        return self["tp_size"] * self["pp_size"]

    @property
    def replicas(self) -> int:
        """Separate worlds the DP controller launches (DP without DP attention)."""
        if self.layout_version == LAYOUT_V0523:
            return max(self["dp_size"], 1)
        return 1 if self["enable_dp_attention"] else max(self["dp_size"], 1)

    @property
    def attn_tp_size(self) -> int:
        return self["tp_size"] // self.attn_dp_size // self["attn_cp_size"]

    @property
    def moe_tp_size(self) -> int:
        return self["tp_size"] // self["ep_size"] // self["moe_dp_size"]

    def derived(self) -> list[Derived]:
        tp, pp = self["tp_size"], self["pp_size"]
        cp, ep, mdp = self["attn_cp_size"], self["ep_size"], self["moe_dp_size"]
        adp = self.attn_dp_size
        if self.layout_version == LAYOUT_V0523:
            adp_formula = f"attn_dp_size = {adp}"
        elif self["enable_dp_attention"]:
            adp_formula = f"attn_dp_size = dp_size (DP attention on) = {adp}"
        else:
            adp_formula = "attn_dp_size = 1 (DP attention off)"
        out = [
            Derived(
                "world_size", tp * pp, f"world_size = tp_size × pp_size = {tp} × {pp} = {tp * pp}"
            ),
            Derived("attn_dp_size", adp, adp_formula),
            Derived(
                "attn_tp_size",
                tp // adp // cp,
                f"attn_tp_size = tp_size / attn_dp_size / attn_cp_size = {tp} / {adp} / {cp}"
                f" = {tp // adp // cp}",
            ),
            Derived("moe_ep_size", ep, f"moe_ep_size = ep_size = {ep}"),
            Derived(
                "moe_tp_size",
                tp // ep // mdp,
                f"moe_tp_size = tp_size / ep_size / moe_dp_size = {tp} / {ep} / {mdp}"
                f" = {tp // ep // mdp}",
            ),
        ]
        if self.replicas > 1:
            out.append(
                Derived(
                    "replicas",
                    self.replicas,
                    f"replicas = dp_size = {self.replicas} (DP without DP attention: "
                    "separate worlds, rank numbers repeat)",
                )
            )
        return out

    def shape(self, model: Any) -> Shape:
        tp, pp, nnodes = self["tp_size"], self["pp_size"], max(self["nnodes"], 1)
        per_node = tp * pp // nnodes * self.replicas * self["gpu_id_step"] + self["base_gpu_id"]
        moe_or_mla = model is not None and (model.is_moe or model.is_mla)
        dp_wide = tp // max(self["attn_cp_size"], 1)
        return Shape(
            tp=tp,
            pp=pp,
            nnodes=nnodes,
            gpus_used_per_node=per_node,
            attention_width=self.attn_tp_size if moe_or_mla else tp,
            attention_width_name="attn_tp_size" if moe_or_mla else "tp_size",
            ep=self["ep_size"],
            moe_tp=self.moe_tp_size,
            ep_kind="moe_ep",
            a2a_backend=self["moe_a2a_backend"],
            allreduce_kinds=self._busy_allreduce_kinds(model),
            layer_split=layer_split,
            replicas=self.replicas,
            per_node_formula=(
                f"tp_size × pp_size / nnodes = {tp} × {pp} / {nnodes}"
                + (f", × {self.replicas} DP replicas" if self.replicas > 1 else "")
            ),
            params={
                "tp": ("tp_size", "nnodes"),
                "pp": ("pp_size", "nnodes"),
                "fit": ("tp_size", "pp_size", "nnodes", "dp_size", "base_gpu_id"),
                "attention": ("tp_size", "dp_size", "attn_cp_size", "model_path"),
                "ep": ("ep_size", "tp_size", "moe_a2a_backend", "nnodes"),
            },
            hints={
                "RM101": (
                    f"Keep TP inside one node: --tp {tp // nnodes if nnodes <= tp else tp} "
                    f"--pp-size {nnodes * pp} puts TP on NVLink and the nodes on pipeline "
                    "stages (PP sends one activation per stage boundary, fine across nodes); "
                    f"or, for MoE/MLA models, DP attention with EP: --tp {tp} --dp {tp} "
                    "--enable-dp-attention --moe-dense-tp-size 1 --moe-a2a-backend deepep, so "
                    "attention stays per rank and only the expert all-to-all crosses nodes "
                    "over RDMA."
                ),
                "RM203": (
                    "Use DP attention wide enough for attn_tp_size 1: "
                    f"--dp {dp_wide} --enable-dp-attention."
                ),
                "RM104": (
                    "Add --moe-a2a-backend deepep (or mooncake) on RDMA-capable nodes, or keep "
                    "--ep-size within one node."
                ),
            },
        )

    def _busy_allreduce_kinds(self, model: Any) -> tuple[str, ...]:
        """The all-reduce-carrying groups this configuration keeps busy every layer."""
        kinds = []
        if not (self["enable_dp_attention"] and self["moe_dense_tp_size"] == 1):
            kinds.append("tp")  # else attention is on attention_tp, dense MLP per rank
        kinds.append("attention_tp")
        if model is None or model.is_moe:
            kinds.append("moe_tp")
        return tuple(kinds)


def layer_split(layers: int, pp: int) -> list[int]:
    """SGLang's even split: the last `layers % pp` stages take one extra layer."""
    base, extra = divmod(layers, pp)
    return [base + (1 if i >= pp - extra else 0) for i in range(pp)]


def resolve(
    given: dict[str, Param],
    version: str | None = None,
    model: Any = None,
) -> SGLangConfig:
    """Fill defaults and apply the ServerArgs rewrites that change the layout.

    A `server_args=` dump already holds rewritten values; re-applying the rewrites to it
    changes nothing, so both inputs go through the same path and only real changes are
    recorded as provenance.
    """
    params = {name: Param(name, value, DEFAULT) for name, value in DEFAULTS.items()}
    lv = layout_version_for(version)
    if lv == LAYOUT_V0523 or "attn_dp_size" in given:
        # --attn-dp-size exists from 0.5.23 on; a dump that carries the field is that new.
        lv = LAYOUT_V0523
        params["attn_dp_size"] = Param("attn_dp_size", 1, DEFAULT)
    params.update(given)
    cfg = SGLangConfig(params, version, lv)
    _rewrite_dwdp(cfg)
    _rewrite_a2a(cfg)
    _rewrite_prefill_cp(cfg, model)
    _rewrite_dp_attention(cfg)
    return cfg


def _rewrite_dwdp(cfg: SGLangConfig) -> None:
    n = cfg["dwdp_size"]
    if not n:
        return
    why = f"--dwdp-size {n}"
    if cfg.layout_version == LAYOUT_V0523:
        cfg.rewrite("attn_dp_size", n, why)
        cfg.rewrite("dp_size", 1, why)
    else:
        cfg.rewrite("dp_size", n, why)
        cfg.rewrite("enable_dp_attention", True, why)
    cfg.rewrite("ep_size", n, why)
    cfg.rewrite("moe_dp_size", 1, why)
    cfg.rewrite("moe_dense_tp_size", 1, why)


def _rewrite_a2a(cfg: SGLangConfig) -> None:
    if cfg["enable_deepep_waterfill"]:
        cfg.rewrite("moe_a2a_backend", "deepep", "--enable-deepep-waterfill selects DeepEP")
    if cfg["enable_ep_moe"]:
        cfg.rewrite("ep_size", cfg["tp_size"], "--enable-ep-moe sets ep_size = tp_size")
    backend = cfg["moe_a2a_backend"]
    if backend in A2A_FORCES_EP:
        cfg.rewrite(
            "ep_size",
            cfg["tp_size"],
            f"--moe-a2a-backend {backend}: {A2A_FORCES_EP[backend]} sets ep_size = tp_size",
        )


def _is_dsa(cfg: SGLangConfig, model: Any) -> bool:
    arch = " ".join(getattr(model, "architectures", ()) or ())
    name = str(cfg["model_path"] or "")
    return "DeepseekV32" in arch or bool(re.search(r"v3\.2", name, re.I))


def _rewrite_prefill_cp(cfg: SGLangConfig, model: Any) -> None:
    """DSA and MLA prefill context parallel turn the whole TP group into one CP group."""
    dsa_flag = (
        cfg["enable_nsa_prefill_context_parallel"] or cfg["enable_dsa_prefill_context_parallel"]
    )
    mla_flag = cfg["enable_prefill_context_parallel"]
    if cfg["enable_prefill_cp"] and not (dsa_flag or mla_flag):
        if cfg["cp_strategy"] is None:
            return  # rejected by validation; nothing to lay out
        dsa_flag, mla_flag = _is_dsa(cfg, model), not _is_dsa(cfg, model)
    if not (dsa_flag or mla_flag) or (dsa_flag and mla_flag):
        return
    tp = cfg["tp_size"]
    dp = max(cfg["dp_size"], cfg["attn_dp_size"] if cfg.layout_version == LAYOUT_V0523 else 1)
    kind = "DSA" if dsa_flag else "MLA"
    why = f"{kind} prefill context parallel"
    cfg.rewrite("enable_dp_attention", True, why)
    cfg.rewrite("moe_dense_tp_size", 1, why)
    strategy = cfg["cp_strategy"] or {
        "in-seq-split": "zigzag",
        "round-robin-split": "interleave",
    }.get(cfg["dsa_prefill_cp_mode"] or "in-seq-split")
    if mla_flag or strategy == "zigzag":
        cfg.rewrite("moe_a2a_backend", "deepep", why)
        cfg.rewrite("ep_size", tp, why)
    cfg.rewrite("attn_cp_size", tp // dp, f"{why} sets attn_cp_size = tp_size // dp_size")


def _rewrite_dp_attention(cfg: SGLangConfig) -> None:
    if cfg.layout_version == LAYOUT_V0523:
        if cfg["enable_dp_attention"] and cfg["dp_size"] > 1 and cfg["attn_dp_size"] == 1:
            why = "deprecated --dp-size N --enable-dp-attention means --attn-dp-size N"
            cfg.rewrite("attn_dp_size", cfg["dp_size"], why)
            cfg.rewrite("dp_size", 1, why)
        cfg.rewrite("enable_dp_attention", cfg["attn_dp_size"] > 1, "reported as attn_dp_size > 1")
        return
    if cfg["dp_size"] == 1:
        cfg.rewrite("enable_dp_attention", False, "dp_size == 1 turns DP attention off")
        cfg.rewrite("enable_dp_lm_head", False, "dp_size == 1 turns the DP LM head off")


def structural_problems(cfg: SGLangConfig) -> list[str]:
    """Sizes that make the meshes impossible; the layout is not computed then."""
    tp, pp = cfg["tp_size"], cfg["pp_size"]
    problems = []
    for name in (
        "tp_size",
        "pp_size",
        "dp_size",
        "ep_size",
        "attn_cp_size",
        "moe_dp_size",
        "nnodes",
    ):
        if not isinstance(cfg[name], int) or cfg[name] < 1:
            problems.append(f"{name} must be a positive integer, got {cfg[name]!r}")
    if problems:
        return problems
    if tp % (cfg.attn_dp_size * cfg["attn_cp_size"]):
        problems.append(
            f"tp_size {tp} is not divisible by attn_dp_size × attn_cp_size = "
            f"{cfg.attn_dp_size} × {cfg['attn_cp_size']}"
        )
    if tp % (cfg["ep_size"] * cfg["moe_dp_size"]):
        problems.append(
            f"tp_size {tp} is not divisible by ep_size × moe_dp_size = "
            f"{cfg['ep_size']} × {cfg['moe_dp_size']}"
        )
    if (tp * pp) % cfg["nnodes"]:
        problems.append(f"tp_size × pp_size = {tp * pp} is not divisible by nnodes {cfg['nnodes']}")
    return problems


def meshes(cfg: SGLangConfig) -> tuple[Mesh, Mesh, Mesh]:
    tp, pp = cfg["tp_size"], cfg["pp_size"]
    world = Mesh(
        "world",
        (Axis("pp", pp, f"pp_size = {pp}"), Axis("tp", tp, f"tp_size = {tp}")),
    )
    attention = Mesh(
        "attention",
        (
            Axis("pp", pp, f"pp_size = {pp}"),
            Axis("attn_dp", cfg.attn_dp_size, f"attn_dp_size = {cfg.attn_dp_size}"),
            Axis("attn_cp", cfg["attn_cp_size"], f"attn_cp_size = {cfg['attn_cp_size']}"),
            Axis("attn_tp", cfg.attn_tp_size, f"attn_tp_size = {cfg.attn_tp_size}"),
        ),
    )
    moe = Mesh(
        "moe",
        (
            Axis("pp", pp, f"pp_size = {pp}"),
            Axis("moe_dp", cfg["moe_dp_size"], f"moe_dp_size = {cfg['moe_dp_size']}"),
            Axis("ep", cfg["ep_size"], f"ep_size = {cfg['ep_size']}"),
            Axis("moe_tp", cfg.moe_tp_size, f"moe_tp_size = {cfg.moe_tp_size}"),
        ),
    )
    return world, attention, moe


def _group(kind: str, ranks: list[list[int]], mesh: str, axes: tuple[str, ...], **kw: Any) -> Group:
    return Group(kind, LABELS[kind], CUTS[kind], ranks, mesh=mesh, axes=axes, **kw)  # type: ignore[arg-type]


def _alias(kind: str, target: Group, mesh: str, axes: tuple[str, ...]) -> Group:
    return _group(kind, target.ranks, mesh, axes, alias_of=target.kind, built=False)


def build_groups(cfg: SGLangConfig) -> tuple[list[Mesh], list[Group]]:
    """Every group SGLang creates, in its creation order, aliases included."""
    world, attn, moe = meshes(cfg)
    tp_size, lv = cfg["tp_size"], cfg.layout_version
    g_world = _group("world", [list(range(world.size))], "world", ("pp", "tp"))
    g_tp = _group("tp", world.groups("tp"), "world", ("tp",))
    g_pp = _group("pp", world.groups("pp"), "world", ("pp",))
    groups = [g_world, g_tp]
    if cfg["enable_pdmux"]:
        groups.append(_group("pdmux_prefill_tp", g_tp.ranks, "world", ("tp",)))
    if lv in LEGACY_LAYOUTS:
        if lv != LAYOUT_V04:
            groups += _moe_groups(cfg, moe, g_tp, with_dp=False)
        groups.append(g_pp)
        groups.append(_group("attention_tp", attn.groups("attn_tp"), "attention", ("attn_tp",)))
    else:
        if lv == LAYOUT_V0523 and cfg["dcp_size"] > 1:
            dcp = Mesh(
                "dcp", (Axis("block", world.size // cfg["dcp_size"]), Axis("dcp", cfg["dcp_size"]))
            )
            groups.append(_group("dcp", dcp.groups("dcp"), "world", ("tp",)))
        if cfg["attn_cp_size"] == tp_size:
            g_cp = _alias("attn_cp", g_tp, "attention", ("attn_cp",))
        else:
            g_cp = _group("attn_cp", attn.groups("attn_cp"), "attention", ("attn_cp",))
        if cfg.attn_tp_size == tp_size:
            g_atp = _alias("attention_tp", g_tp, "attention", ("attn_tp",))
        else:
            g_atp = _group("attention_tp", attn.groups("attn_tp"), "attention", ("attn_tp",))
        groups += [g_cp, g_atp]
        groups += _moe_groups(cfg, moe, g_tp, with_dp=True, attn_cp=g_cp)
        groups.append(g_pp)
        if lv == LAYOUT_V0523:
            groups.append(_group("self_pp", [[r] for r in range(world.size)], "world", ()))
            target = g_atp if cfg.attn_dp_size > 1 else g_tp
            groups.append(_alias("dp_tp", target, "attention", ("attn_tp",)))
    if cfg.attn_dp_size > 1:
        groups.append(
            _group(
                "attn_dp",
                attn.groups("attn_cp", "attn_tp"),
                "attention",
                ("attn_cp", "attn_tp"),
                built=False,
            )
        )
    return [world, attn, moe], groups


def _moe_groups(
    cfg: SGLangConfig, moe: Mesh, g_tp: Group, with_dp: bool, attn_cp: Group | None = None
) -> list[Group]:
    tp_size = cfg["tp_size"]
    lv = cfg.layout_version
    aliases_tp = lv != LAYOUT_V0410  # 0.4.10 – 0.5.1 built every MoE group
    out: list[Group] = []
    if with_dp:
        assert attn_cp is not None
        if lv != LAYOUT_V059 and cfg["attn_cp_size"] > cfg["moe_dp_size"]:
            out.append(_alias("moe_dp", attn_cp, "moe", ("moe_dp",)))
        elif cfg["moe_dp_size"] == tp_size:
            out.append(_alias("moe_dp", g_tp, "moe", ("moe_dp",)))
        else:
            out.append(_group("moe_dp", moe.groups("moe_dp"), "moe", ("moe_dp",)))
    if aliases_tp and cfg["ep_size"] == tp_size:
        out.append(_alias("moe_ep", g_tp, "moe", ("ep",)))
    else:
        out.append(_group("moe_ep", moe.groups("ep"), "moe", ("ep",)))
    if aliases_tp and cfg.moe_tp_size == tp_size:
        out.append(_alias("moe_tp", g_tp, "moe", ("moe_tp",)))
    else:
        out.append(_group("moe_tp", moe.groups("moe_tp"), "moe", ("moe_tp",)))
    return out


def placement(cfg: SGLangConfig, hosts: dict[int, str] | None = None) -> list[Placement]:
    """Rank → (node, GPU) as SGLang's launcher assigns them, per replica."""
    tp, pp, nnodes = cfg["tp_size"], cfg["pp_size"], cfg["nnodes"]
    step = cfg["gpu_id_step"]
    pp_per_node = max(pp // nnodes, 1)
    nodes_per_pp_rank = max(nnodes // pp, 1)
    tp_per_node = tp // nodes_per_pp_rank
    hosts = hosts or {}
    out = []
    for replica in range(cfg.replicas):
        dp_base = replica * tp * pp * step
        for rank in range(tp * pp):
            pp_rank, tp_rank = divmod(rank, tp)
            node = (pp_rank // pp_per_node) * nodes_per_pp_rank + tp_rank // tp_per_node
            gpu = (
                cfg["base_gpu_id"]
                + dp_base
                + (pp_rank % pp_per_node) * tp_per_node
                + (tp_rank % tp_per_node) * step
            )
            out.append(Placement(rank, hosts.get(node, f"node{node}"), gpu, node, replica))
    return out


def coordinates(cfg: SGLangConfig, rank: int, replica: int = 0) -> dict[str, int]:
    """The coordinates SGLang gives a rank; its log prefix is built from these."""
    _, attn, moe = meshes(cfg)
    a, m = attn.coords(rank), moe.coords(rank)
    out = {"pp": a["pp"], "tp": rank % cfg["tp_size"]}
    if cfg.replicas > 1:
        out["dp"] = replica
    elif cfg.attn_dp_size > 1:
        out["dp"] = a["attn_dp"]
    out.update(
        attn_cp=a["attn_cp"],
        attn_tp=a["attn_tp"],
        moe_dp=m["moe_dp"],
        ep=m["ep"],
        moe_tp=m["moe_tp"],
    )
    return out


def coordinate_tokens(cfg: SGLangConfig, rank: int, replica: int = 0) -> list[str]:
    """A rank's coordinates as display tokens, naming only the dimensions this layout splits."""
    c = coordinates(cfg, rank, replica)
    tp = cfg["tp_size"]
    split = {
        "pp": cfg["pp_size"] > 1,
        "attn_cp": cfg["attn_cp_size"] > 1,
        "attn_tp": 1 < cfg.attn_tp_size < tp,
        "moe_dp": cfg["moe_dp_size"] > 1,
        "ep": cfg["ep_size"] > 1,
        "moe_tp": 1 < cfg.moe_tp_size < tp,
    }
    labels = {"pp": "PP", "attn_cp": "ATTN_CP", "attn_tp": "ATTN_TP", "moe_dp": "MOE_DP"}
    labels |= {"ep": "EP", "moe_tp": "MOE_TP"}
    tokens = [f"DP{c['dp']}"] if "dp" in c else []
    tokens += [f"{labels[k]}{c[k]}" for k in ("pp", "attn_cp", "attn_tp") if split[k]]
    tokens.append(f"TP{c['tp']}")
    tokens += [f"{labels[k]}{c[k]}" for k in ("moe_dp", "ep", "moe_tp") if split[k]]
    return tokens


def log_prefix(cfg: SGLangConfig, rank: int, replica: int = 0) -> str:
    """The scheduler prefix the current layout prints, e.g. ' DP1 ATTN_CP1 TP6'."""
    c = coordinates(cfg, rank, replica)
    parts = []
    if "dp" in c:
        parts.append(f"DP{c['dp']}")
    if cfg["pp_size"] > 1:
        parts.append(f"PP{c['pp']}")
    if cfg["attn_cp_size"] > 1:
        parts.append(f"ATTN_CP{c['attn_cp']}")
    if cfg["moe_dp_size"] > 1:
        parts.append(f"MOE_DP{c['moe_dp']}")
    if cfg["tp_size"] > 1:
        parts.append(f"TP{c['tp']}")
    if cfg["ep_size"] > 1:
        parts.append(f"EP{c['ep']}")
    return "".join(" " + p for p in parts)


def layout(cfg: SGLangConfig, hosts: dict[int, str] | None = None) -> Layout:
    problems = structural_problems(cfg)
    if problems:
        raise LayoutError("; ".join(problems))
    mesh_list, groups = build_groups(cfg)
    return Layout(
        engine="sglang",
        engine_version=cfg.version,
        world_size=cfg.world_size,
        replicas=cfg.replicas,
        meshes=mesh_list,
        groups=groups,
        placement=placement(cfg, hosts),
        layout_version=cfg.layout_version,
    )
