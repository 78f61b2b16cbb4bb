#!/usr/bin/env python3
"""Record the process groups SGLang's own code builds, as test fixtures.

Runs SGLang's `initialize_model_parallel` (and, where attention-TP is built there,
`layers.dp_attention.initialize_dp_attention`) once for every rank of the world of each
configuration, in one CPU process, with SGLang's `GroupCoordinator` (and
`torch.distributed.new_group`) replaced by a recorder. Nothing here re-implements
SGLang's layout: the rank lists are whatever SGLang passes to its group constructor.

Needs torch and an SGLang wheel (installed, or unpacked with `--sglang-path DIR`), both
outside the project's venv; see scripts/README.md. Third-party packages that the imports
pull in but that are not installed (STUB_IF_MISSING: triton, compiled helpers, and what
sglang.srt.server_args drags in) are replaced by empty stand-in modules, and
`sglang.srt.layers.sampler` by a module holding only SYNC_TOKEN_IDS_ACROSS_TP; none of
them takes part in choosing rank lists.

    python scripts/record_sglang_groups.py --sglang-path /work/sglpkgs/0.5.9

Each config's "groups" lists the groups built, in creation order, then the aliases
(a name whose coordinator is another name's object), each with its target's rank lists.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import itertools
import json
import os
import random
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "data" / "sglang_recorded"

# Imported by sglang.srt.utils & co. at module level, unused by group building.
# Stubbed only when not importable.
STUB_IF_MISSING = (
    # GPU-only
    "triton",
    "tvm_ffi",
    # compiled helpers of sglang.srt.utils
    "orjson",
    "psutil",
    "pybase64",
    "zmq",
    "PIL",
    "fastapi",
    "pydantic_core",
    "pydantic",
    # what sglang.srt.server_args pulls in (0.5.8's dp_attention imports it)
    "transformers",
    "huggingface_hub",
    "safetensors",
    "sentencepiece",
    "regex",
    "torchvision",
    "openai",
    "IPython",
)

# SGLang's module-level coordinator globals and the group name each one holds.
GLOBALS = {
    "_TP": "tp",
    "_PDMUX_PREFILL_TP_GROUP": "pdmux_prefill_tp",
    "_DCP": "dcp",
    "_ATTN_CP": "attn_cp",
    "_ATTN_TP": "attention_tp",
    "_SHARED_EXPERTS_TP": "shared_experts_tp",
    "_MOE_DP": "moe_dp",
    "_MOE_EP": "moe_ep",
    "_MOE_TP": "moe_tp",
    "_PP": "pp",
    "_SELF_PP": "self_pp",
}
DP_ATTENTION_GLOBALS = {"_ATTN_TP_GROUP": "attention_tp"}


# --------------------------------------------------------------------------- stubs


class _StubBase:
    def __init_subclass__(cls, **kw: Any) -> None:
        pass

    def __init__(self, *a: Any, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)


class _Stub:
    """Anything: callable (a decorator returns its function), indexable, subclassable."""

    def __init__(self, name: str = "stub") -> None:
        self._name = name

    def __call__(self, *a: Any, **k: Any) -> Any:
        if len(a) == 1 and not k and callable(a[0]) and not isinstance(a[0], _Stub):
            return a[0]
        return _Stub(self._name + "()")

    def __getattr__(self, n: str) -> Any:
        if n.startswith("__") and n.endswith("__"):
            raise AttributeError(n)
        if n == "driver":  # no GPU driver: code probing triton's active target falls back
            raise AttributeError(n)
        return _Stub(self._name + "." + n)

    def __getitem__(self, k: Any) -> Any:
        return _Stub(self._name + "[]")

    def __setitem__(self, k: Any, v: Any) -> None:
        pass

    def __or__(self, other: Any) -> Any:
        return self

    __ror__ = __or__

    def __mro_entries__(self, bases: Any) -> tuple[type, ...]:
        return (_StubBase,)

    def __bool__(self) -> bool:
        return False

    def __iter__(self) -> Any:
        return iter(())

    def __repr__(self) -> str:
        return f"<stub {self._name}>"


class _StubModule(types.ModuleType):
    def __getattr__(self, n: str) -> Any:
        if n.startswith("__") and n.endswith("__"):
            raise AttributeError(n)
        return _Stub(self.__name__ + "." + n)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: set[str]) -> None:
        self.roots = roots
        self.used: set[str] = set()

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        m = _StubModule(spec.name)
        m.__path__ = []  # type: ignore[attr-defined]
        self.used.add(spec.name)
        return m

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install_stubs() -> _StubFinder:
    missing = set()
    extra = tuple(filter(None, os.environ.get("RECORD_EXTRA_STUBS", "").split(",")))
    for name in STUB_IF_MISSING + extra:
        try:
            importlib.import_module(name)
        except Exception:
            missing.add(name)
    finder = _StubFinder(missing)
    sys.meta_path.insert(0, finder)
    return finder


def load_sglang(path: str | None) -> tuple[str, dict[str, types.ModuleType]]:
    """Import SGLang's parallel_state without running sglang/__init__.py (the frontend)."""
    if path:
        sys.path.insert(0, path)
    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("sglang not found; pass --sglang-path")
    pkg = types.ModuleType("sglang")
    pkg.__path__ = list(spec.submodule_search_locations)  # type: ignore[attr-defined]
    sys.modules["sglang"] = pkg
    version = _sglang_version(Path(pkg.__path__[0]))  # type: ignore[attr-defined]
    # initialize_model_parallel / initialize_dp_attention import the sampler only for
    # SYNC_TOKEN_IDS_ACROSS_TP (an env flag that picks pynccl for attention_tp, not its
    # ranks); the sampler's own imports reach the GPU kernels, so it is stood in for.
    sampler = types.ModuleType("sglang.srt.layers.sampler")
    sampler.SYNC_TOKEN_IDS_ACROSS_TP = False  # type: ignore[attr-defined]
    sys.modules["sglang.srt.layers.sampler"] = sampler
    ps = importlib.import_module("sglang.srt.distributed.parallel_state")
    mods = {"parallel_state": ps}
    params = inspect.signature(ps.initialize_model_parallel).parameters
    if "tensor_model_parallel_size" not in params:
        # 0.5.23+: the sizes come from get_parallel(); dp_attention has get_dp_tp_group
        mods["runtime_context"] = importlib.import_module("sglang.srt.runtime_context")
        mods["dp_attention"] = importlib.import_module("sglang.srt.layers.dp_attention")
    elif "attention_data_parallel_size" not in params:
        # before 0.5.9 the attention_tp group is built by initialize_dp_attention
        mods["dp_attention"] = importlib.import_module("sglang.srt.layers.dp_attention")
    return version, mods


def _sglang_version(pkg_dir: Path) -> str:
    for d in pkg_dir.parent.glob("sglang-*.dist-info"):
        return d.name[len("sglang-") : -len(".dist-info")]
    return importlib.metadata.version("sglang")


# --------------------------------------------------------------------------- recorder


class _FakeProcessGroup:
    def __init__(self, ranks: list[int]) -> None:
        self.ranks = ranks


class Recorder:
    """What one rank's run created, in order."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank = rank
        self.world_size = world_size
        self.coordinators: list[FakeGroupCoordinator] = []
        self.new_groups: list[list[int]] = []


REC: Recorder | None = None


def _new_group(ranks: Any = None, *a: Any, **kw: Any) -> _FakeProcessGroup:
    assert REC is not None
    ranks = list(ranks) if ranks is not None else list(range(REC.world_size))
    REC.new_groups.append(ranks)
    return _FakeProcessGroup(ranks)


class FakeGroupCoordinator:
    """Stands in for SGLang's GroupCoordinator: logs the rank lists it is given."""

    def __init__(self, group_ranks: Any = None, local_rank: int = 0, *a: Any, **kw: Any):
        assert REC is not None
        if group_ranks is None:
            group_ranks = kw.pop("group_ranks")
        self.group_ranks = [list(r) for r in group_ranks]
        self.group_name = kw.get("group_name")
        self.unique_name = self.group_name
        self.local_rank = local_rank
        self.rank = REC.rank
        # The real constructor calls new_group for every rank list, on every rank.
        mine = None
        for ranks in self.group_ranks:
            pg = _new_group(ranks)
            _new_group(ranks)  # the cpu (gloo) group
            if REC.rank in ranks:
                assert mine is None, f"rank {REC.rank} in two {self.group_name} groups"
                mine = pg
        assert mine is not None, f"rank {REC.rank} in no {self.group_name} group"
        self.ranks = mine.ranks
        self.device_group = mine
        self.cpu_group = mine
        self.world_size = len(self.ranks)
        self.rank_in_group = self.ranks.index(REC.rank)
        self.pynccl_comm = None
        REC.coordinators.append(self)


def patch_torch(world_size: int, rank: int) -> None:
    import torch.distributed as dist

    dist.is_initialized = lambda: True
    dist.get_world_size = lambda group=None: world_size if group is None else len(group.ranks)
    dist.get_rank = lambda group=None: rank
    dist.get_backend = lambda group=None: "nccl"
    dist.new_group = _new_group


# --------------------------------------------------------------------------- configs


def worked_examples() -> list[dict[str, int]]:
    return [
        dict(tp=16, dp=2, ep=16),  # tp16 dp2 DP attention ep16
        dict(tp=8, dp=2, cp=2, ep=8),  # tp8 dp2 DP attention attn_cp2 ep8
        dict(tp=8, cp=2, mdp=2, ep=4),  # tp8 attn_cp2 moe_dp2 ep4
        dict(tp=8, cp=8, ep=8),  # tp8 attn_cp8 ep8
        dict(tp=8, pp=2, dp=4, ep=4),  # tp8 pp2 dp4 DP attention ep4
    ]


def valid(c: dict[str, int]) -> bool:
    """Sizes SGLang's ServerArgs accepts (0.5.9 _handle_context_parallelism rules)."""
    tp, pp, dp, cp, ep, mdp = (c.get(k, d) for k, d in DEFAULT_SIZES.items())
    if tp % (dp * cp) or tp % (ep * mdp):
        return False
    if cp > 1 and pp != 1:
        return False
    return not (mdp > 1 and (pp != 1 or (ep > 1 and ep * mdp != tp)))


DEFAULT_SIZES = {"tp": 1, "pp": 1, "dp": 1, "cp": 1, "ep": 1, "mdp": 1}


def all_configs(keep: Any = lambda c: True, count: int = 60, seed: int = 20260213) -> list:
    """The worked examples, then valid sizes in a fixed random order, `count` in all."""
    space = []
    for tp, pp, dp, cp, ep, mdp in itertools.product(
        (1, 2, 4, 6, 8, 12, 16), (1, 2, 4), (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8, 16), (1, 2, 4)
    ):
        c = dict(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mdp=mdp)
        if valid(c) and tp * pp <= 32:
            space.append(c)
    rng = random.Random(seed)
    picked = [{**DEFAULT_SIZES, **c} for c in worked_examples()]
    for c in rng.sample(space, len(space)):
        if c not in picked:
            picked.append(c)
    return [c for c in picked if keep(c)][:count]


def server_args(c: dict[str, int]) -> dict[str, Any]:
    """The ServerArgs fields (pre-0.5.23 spelling) a test feeds to rankmap's resolve."""
    out = {
        "tp_size": c["tp"],
        "pp_size": c["pp"],
        "dp_size": c["dp"],
        "enable_dp_attention": c["dp"] > 1,
        "attn_cp_size": c["cp"],
        "ep_size": c["ep"],
        "moe_dp_size": c["mdp"],
    }
    if "dcp" in c:
        out["dcp_size"] = c["dcp"]
    return out


# --------------------------------------------------------------------------- runs


def _reset(mods: dict[str, types.ModuleType]) -> None:
    ps, dpa = mods["parallel_state"], mods.get("dp_attention")
    for name in GLOBALS:
        if hasattr(ps, name):
            setattr(ps, name, None)
    for name in DP_ATTENTION_GLOBALS:
        if dpa is not None and hasattr(dpa, name):
            setattr(dpa, name, None)
    rc = mods.get("runtime_context")
    if rc is not None:
        rc.get_parallel().clear_stamp()


def api_of(mods: dict[str, types.ModuleType]) -> str:
    """Which calling convention this SGLang's initialize_model_parallel has."""
    params = inspect.signature(mods["parallel_state"].initialize_model_parallel).parameters
    if "tensor_model_parallel_size" not in params:
        return "context"  # 0.5.23+: sizes come from get_parallel()
    if "attention_context_model_parallel_size" in params:
        return "cp"  # 0.5.9 .. 0.5.22
    dpa_params = inspect.signature(mods["dp_attention"].initialize_dp_attention).parameters
    return "legacy_server_args" if "server_args" in dpa_params else "legacy"


def supported(api: str, c: dict[str, int]) -> bool:
    if api in ("legacy", "legacy_server_args"):
        return c["cp"] == 1 and c["mdp"] == 1
    return True


def run_rank(
    api: str, mods: dict[str, types.ModuleType], c: dict[str, int], rank: int
) -> tuple[Recorder, dict[str, Any], dict[str, int]]:
    global REC
    ps, dpa = mods["parallel_state"], mods.get("dp_attention")
    world_size = c["tp"] * c["pp"]
    REC = Recorder(rank, world_size)
    patch_torch(world_size, rank)
    _reset(mods)
    world = FakeGroupCoordinator.__new__(FakeGroupCoordinator)
    world.__dict__.update(
        ranks=list(range(world_size)), local_rank=rank % 8, rank=rank,
        world_size=world_size, rank_in_group=rank, group_name="world",
        device_group=_FakeProcessGroup(list(range(world_size))),
        cpu_group=_FakeProcessGroup(list(range(world_size))),
    )  # fmt: skip
    ps.GroupCoordinator = FakeGroupCoordinator
    if dpa is not None:
        dpa.GroupCoordinator = FakeGroupCoordinator
    tp_rank = rank % c["tp"]
    adp = c["dp"]  # dp_size with DP attention on (dp == 1 means off)

    if api == "context":
        par = mods["runtime_context"].get_parallel()
        par.override_permanently(
            tp_size=c["tp"], pp_size=c["pp"], attn_dp_size=adp, attn_cp_size=c["cp"],
            moe_dp_size=c["mdp"], moe_ep_size=c["ep"], attn_dcp_size=c.get("dcp", 1),
            shared_experts_tp_size=None, tp_rank=tp_rank, pp_rank=rank // c["tp"],
            world_group=world, attn_dp_enabled=adp > 1,
        )  # fmt: skip
        kwargs: dict[str, Any] = {}
        ps.initialize_model_parallel(**kwargs)
        args = {
            "tp_size": c["tp"], "pp_size": c["pp"], "attn_dp_size": adp,
            "attn_cp_size": c["cp"], "moe_dp_size": c["mdp"], "moe_ep_size": c["ep"],
            "attn_dcp_size": c.get("dcp", 1),
        }  # fmt: skip
        via = "get_parallel().override_permanently"
        return REC, {"args": args, "args_via": via}, _identity(mods)

    ps._WORLD = world
    if api == "cp":
        kwargs = dict(
            tensor_model_parallel_size=c["tp"],
            expert_model_parallel_size=c["ep"],
            pipeline_model_parallel_size=c["pp"],
            attention_data_parallel_size=adp,
            attention_context_model_parallel_size=c["cp"],
            moe_data_model_parallel_size=c["mdp"],
        )
    else:
        kwargs = dict(
            tensor_model_parallel_size=c["tp"],
            expert_model_parallel_size=c["ep"],
            pipeline_model_parallel_size=c["pp"],
        )
    ps.initialize_model_parallel(**kwargs)
    called = {"args": kwargs, "args_via": "initialize_model_parallel"}
    if api == "cp":
        return REC, called, _identity(mods)
    assert dpa is not None
    dp_kwargs = dict(
        enable_dp_attention=adp > 1, tp_size=c["tp"], dp_size=c["dp"],
        moe_dense_tp_size=None, pp_size=c["pp"],
    )  # fmt: skip
    called["dp_attention_args"] = dp_kwargs
    if api == "legacy":
        dpa.initialize_dp_attention(tp_rank=tp_rank, **dp_kwargs)
    else:
        sa = types.SimpleNamespace(
            **dp_kwargs, attn_cp_size=c["cp"], moe_dp_size=c["mdp"], device="cpu",
            enable_dp_lm_head=False,
        )  # fmt: skip
        sa.enable_nsa_prefill_context_parallel = False
        sa_mod = sys.modules.get("sglang.srt.server_args")
        if hasattr(sa_mod, "set_global_server_args_for_scheduler"):
            sa_mod.set_global_server_args_for_scheduler(sa)  # read for the pynccl choice
        model_config = types.SimpleNamespace(hidden_size=64, dtype=None)
        dpa.initialize_dp_attention(server_args=sa, model_config=model_config)
    return REC, called, _identity(mods)


def _identity(mods: dict[str, types.ModuleType]) -> dict[str, int]:
    """SGLang name -> id of the coordinator object it holds after the calls."""
    out: dict[str, int] = {}
    dpa = mods.get("dp_attention")
    for mod, names in ((mods["parallel_state"], GLOBALS), (dpa, DP_ATTENTION_GLOBALS)):
        for var, name in names.items():
            obj = getattr(mod, var, None)
            if obj is not None:
                out[name] = id(obj)
    get_dp_tp = getattr(dpa, "get_dp_tp_group", None)
    if get_dp_tp is not None:
        out["dp_tp"] = id(get_dp_tp())
    return out


def record_config(api: str, mods: dict[str, types.ModuleType], c: dict[str, int]) -> dict:
    world_size = c["tp"] * c["pp"]
    reference = None
    for rank in range(world_size):
        rec, args, ident = run_rank(api, mods, c, rank)
        expected_new = [g for co in rec.coordinators for g in co.group_ranks for _ in (0, 1)]
        if rec.new_groups != expected_new:
            raise AssertionError("new_group called outside SGLang's GroupCoordinator")
        by_id = {id(co): co for co in rec.coordinators}
        groups = []
        for co in rec.coordinators:
            groups.append({"name": co.group_name, "ranks": co.group_ranks, "alias_of": None})
        for name, oid in ident.items():
            co = by_id.get(oid)
            if co is None:
                raise AssertionError(f"{name} holds a coordinator not built by this call")
            if co.group_name != name:
                groups.append({"name": name, "ranks": co.group_ranks, "alias_of": co.group_name})
        # every rank must see the same calls, and be a member of its own groups
        if reference is None:
            reference = (args, groups)
        elif reference != (args, groups):
            raise AssertionError(f"rank {rank} recorded different groups for {c}")
    assert reference is not None
    args, groups = reference
    return {"sizes": c, "server_args": server_args(c), **args, "groups": groups}


def _dump(out: dict) -> str:
    """JSON with one group per line, so a diff shows which rank lists changed."""
    lines = ["{"]
    for key, value in out.items():
        if key != "configs":
            lines.append(f" {json.dumps(key)}: {json.dumps(value)},")
    lines.append(' "configs": [')
    for i, cfg in enumerate(out["configs"]):
        lines.append("  {")
        for key, value in cfg.items():
            if key != "groups":
                lines.append(f"   {json.dumps(key)}: {json.dumps(value)},")
        lines.append('   "groups": [')
        groups = [f"    {json.dumps(g)}" for g in cfg["groups"]]
        lines.append(",\n".join(groups))
        lines.append("   ]")
        lines.append("  }" + ("," if i < len(out["configs"]) - 1 else ""))
    lines.append(" ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == json.loads(json.dumps(out))
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sglang-path", help="directory holding an unpacked sglang wheel")
    ap.add_argument("--out", default=str(OUT_DIR))
    ap.add_argument("--count", type=int, default=60, help="configurations to record")
    opts = ap.parse_args()
    os.environ.setdefault("SGLANG_USE_MESSAGE_QUEUE_BROADCASTER", "true")
    stubs = install_stubs()
    version, mods = load_sglang(opts.sglang_path)
    api = api_of(mods)
    configs = all_configs(lambda c: supported(api, c), count=opts.count)
    if api == "context":
        configs += [
            {**DEFAULT_SIZES, "tp": 8, "dcp": 2},
            {**DEFAULT_SIZES, "tp": 8, "dp": 2, "ep": 8, "dcp": 4},
        ]
        # decode CP is refused on a CPU-only platform; the check is not about layout
        mods["parallel_state"].is_cuda = lambda: True
    recorded = [record_config(api, mods, c) for c in configs]
    out = {
        "sglang_version": version,
        "recorded_with": "scripts/record_sglang_groups.py",
        "calling_convention": api,
        "stubbed_modules": sorted(m for m in stubs.used if "." not in m),
        "configs": recorded,
    }
    path = Path(opts.out) / f"sglang-{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dump(out))
    print(f"sglang {version} ({api}): {len(recorded)} configs -> {path}")


if __name__ == "__main__":
    main()
