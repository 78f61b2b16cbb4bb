#!/usr/bin/env python3
"""Record the process groups vLLM's own code builds, as test fixtures.

Runs vLLM's `initialize_model_parallel` once for every rank of the world of each
configuration, in one CPU process, with `init_model_parallel_group` replaced by a recorder
and `torch.distributed` answering world size and rank. Nothing here re-implements vLLM's
layout: the rank lists are whatever vLLM passes to its group constructor, the coordinates
whatever index the rank has in them (`rank_in_group`).

Needs torch and an unpacked vLLM wheel (`--vllm-path DIR` holding `vllm/`), both outside
the project's venv; see scripts/README.md. `vllm/__init__.py` is skipped; third-party
modules the imports pull in but that are not installed (STUB_IF_MISSING) become stand-ins.

    python scripts/record_vllm_groups.py --vllm-path /work/vllmwheels/src/0.17.0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "data" / "vllm_recorded"
# Imported by vllm.distributed & co. at module level, unused by group building.
STUB_IF_MISSING = ("psutil", "zmq", "regex")
# parallel_state global -> the engine's kind name for it.
GROUP_GLOBALS = {
    "_TP": "tp",
    "_ETP": "etp",
    "_ENGRAM_DP": "edp",
    "_DCP": "dcp",
    "_PCP": "pcp",
    "_PP": "pp",
    "_DP": "dp",
    "_EP": "ep",
    "_EPLB": "eplb",
}

# (tp, pp, dp, pcp, dcp, moe, eplb): the worked examples first, then a spread.
CONFIGS: tuple[tuple[int, int, int, int, int, bool, bool], ...] = (
    (4, 2, 2, 1, 1, True, False),
    (4, 2, 2, 1, 1, False, False),
    (4, 1, 1, 2, 2, True, False),
    (2, 1, 1, 2, 2, False, False),
    (2, 1, 1, 2, 4, True, False),
    (4, 1, 2, 1, 4, True, False),
    (8, 2, 1, 1, 1, False, False),
    (2, 3, 2, 1, 1, True, True),
    (2, 2, 2, 2, 2, True, True),
    (3, 2, 2, 2, 1, True, False),
    (1, 1, 8, 1, 1, True, True),
    (8, 1, 2, 1, 8, True, False),
    (2, 2, 3, 1, 2, False, False),
    (1, 4, 1, 1, 1, False, False),
)


class _Anything:
    """Whatever a stand-in module is asked for: callable, subclassable, indexable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)

    def __getitem__(self, key: Any) -> _Anything:
        return _Anything()

    def __or__(self, other: Any) -> _Anything:
        return self

    def __iter__(self) -> Any:
        return iter(())


class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Stand-ins for the STUB_IF_MISSING modules that are not installed."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        top = name.split(".")[0]
        if top not in STUB_IF_MISSING or _installed(top):
            return None
        self.used.add(top)
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec: Any) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def attr(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Anything()

        module.__getattr__ = attr  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _installed(top: str) -> bool:
    return any(
        finder.find_spec(top, None) is not None
        for finder in sys.meta_path
        if not isinstance(finder, _Stubs) and hasattr(finder, "find_spec")
    )


class _Coordinator:
    def __init__(self, ranks: list[list[int]], rank: int, name: str) -> None:
        members = next(g for g in ranks if rank in g)
        self.ranks = members
        self.rank_in_group = members.index(rank)
        self.world_size = len(members)
        self.unique_name = name


def _load(vllm_path: Path) -> tuple[Any, Any, _Stubs]:
    stubs = _Stubs()
    sys.meta_path.insert(0, stubs)
    package = types.ModuleType("vllm")
    package.__path__ = [str(vllm_path / "vllm")]
    sys.modules["vllm"] = package
    import torch.distributed as dist

    ps = importlib.import_module("vllm.distributed.parallel_state")
    return ps, dist, stubs


def _record(ps: Any, dist: Any, config: tuple) -> dict[str, Any]:
    tp, pp, dp, pcp, dcp, moe, eplb = config
    params = inspect.signature(ps.initialize_model_parallel).parameters
    pcp_known = "prefill_context_model_parallel_size" in params
    world = dp * pp * tp * (pcp if pcp_known else 1)
    parallel = types.SimpleNamespace(
        data_parallel_size=dp,
        enable_elastic_ep=False,
        enable_eplb=eplb,
        use_all2all=False,
        world_size=pp * tp * (pcp if pcp_known else 1),
        data_parallel_master_ip="127.0.0.1",
    )
    model = types.SimpleNamespace(is_moe=moe, architecture="X", architectures=["X"])
    vllm_config = types.SimpleNamespace(
        parallel_config=parallel, model_config=model, engram_config=None
    )
    # vllm.config pulls in pydantic & co.; initialize_model_parallel only asks it for the
    # current config, so a module holding that answer stands in for it.
    fake = types.ModuleType("vllm.config")
    fake.get_current_vllm_config = lambda: vllm_config  # type: ignore[attr-defined]
    fake.get_current_vllm_config_or_none = lambda: vllm_config  # type: ignore[attr-defined]
    sys.modules["vllm.config"] = fake
    kwargs: dict[str, int] = {
        "tensor_model_parallel_size": tp,
        "pipeline_model_parallel_size": pp,
    }
    if pcp_known:
        kwargs["prefill_context_model_parallel_size"] = pcp
    if "decode_context_model_parallel_size" in params:
        kwargs["decode_context_model_parallel_size"] = dcp
    groups: list[dict[str, Any]] = []
    coords: dict[str, dict[str, int]] = {}
    for rank in range(world):
        calls: list[tuple[str, list[list[int]]]] = []

        def recorder(
            group_ranks: list[list[int]],
            *args: Any,
            calls: list = calls,
            rank: int = rank,
            **kw: Any,
        ) -> _Coordinator:
            name = kw.get("group_name") or "?"
            calls.append((name, [list(g) for g in group_ranks]))
            return _Coordinator(group_ranks, rank, f"{name}:0")

        for name in GROUP_GLOBALS:
            if hasattr(ps, name):
                setattr(ps, name, None)
        ps.init_model_parallel_group = recorder
        ps.get_world_group = lambda: types.SimpleNamespace(local_rank=0, device_group=None)
        dist.is_initialized = lambda: True
        dist.get_world_size = lambda *a, **k: world
        dist.get_rank = lambda *a, rank=rank, **k: rank
        dist.get_backend = lambda *a, **k: "gloo"
        ps.initialize_model_parallel(**kwargs, backend="gloo")
        built = [{"kind": name, "ranks": ranks, "alias_of": None} for name, ranks in calls]
        made = {name: ranks for name, ranks in calls}
        for glob, kind in GROUP_GLOBALS.items():
            target = getattr(ps, glob, None)
            owner = target.unique_name.split(":")[0] if target is not None else kind
            if owner != kind:  # this global is another group's coordinator
                built.append({"kind": kind, "ranks": made[owner], "alias_of": owner})
        if rank == 0:
            groups = built
        elif [(g["kind"], g["ranks"]) for g in built] != [(g["kind"], g["ranks"]) for g in groups]:
            raise SystemExit(f"rank {rank} built other groups than rank 0 for {config}")
        coords[str(rank)] = {
            kind: getattr(ps, glob).rank_in_group
            for glob, kind in GROUP_GLOBALS.items()
            if getattr(ps, glob, None) is not None
        }
    sizes = {"tp": tp, "pp": pp, "dp": dp, "pcp": pcp, "dcp": dcp}
    return {"sizes": sizes, "moe": moe, "eplb": eplb, "groups": groups, "coords": coords}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-path", type=Path, required=True)
    args = parser.parse_args()
    version_file = (args.vllm_path / "vllm" / "_version.py").read_text()
    version = re.search(r"version = (?:__version__ = )?['\"]([^'\"]+)", version_file)
    assert version, "no version in vllm/_version.py"
    ps, dist, stubs = _load(args.vllm_path)
    configs = []
    for config in CONFIGS:
        try:
            configs.append(_record(ps, dist, config))
        except RuntimeError as exc:  # sizes this release cannot lay out (dcp > tp before PCP)
            print(f"skipped {config}: {exc}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"vllm-{version.group(1)}.json"
    doc = {"version": version.group(1), "stubbed_modules": sorted(stubs.used), "configs": configs}
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{out}: {len(configs)} configurations")


if __name__ == "__main__":
    main()
