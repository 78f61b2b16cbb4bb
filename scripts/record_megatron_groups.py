#!/usr/bin/env python3
"""Record the process groups Megatron-core's own code builds, as test fixtures.

Runs megatron-core's `parallel_state.initialize_model_parallel` for each configuration in
one CPU process, as rank 0 of a world made with torch's `fake` backend, with
`torch.distributed.new_group` replaced by a recorder. Nothing here re-implements
Megatron's layout: the rank lists are whatever Megatron passes to `new_group`, with the
`group_desc` it passes, in the order it passes them (`new_group` is collective over the
whole world, so rank 0 sees every group).

Needs torch and a megatron-core source tree (an unpacked wheel or `git archive` of a
`core_v*` tag), both outside the project's venv; see scripts/README.md. Only
`megatron/core/parallel_state.py` and what it imports are loaded: the package
`__init__` (which pulls in triton and Transformer Engine) is skipped.

    python scripts/record_megatron_groups.py --core-path /work/mcorepkgs/0.16.1

Each config's "groups" lists every non-gloo group_desc in order of first creation with
its rank lists; "gloo" names the descs that got a gloo twin; "holders" maps the module
variables that hold a partial-DistOpt group to the desc of the group object they hold
(with one optimizer instance they hold the plain data-parallel group itself).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import random
import re
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "data" / "megatron_recorded"
HOLDERS = (
    "_INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP",
    "_INTER_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP",
    "_INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP",
    "_INTER_PARTIAL_EXPERT_DATA_PARALLEL_GROUP",
)


def load_parallel_state(core_path: Path) -> types.ModuleType:
    """megatron.core.parallel_state from `core_path`, without megatron/core/__init__.py."""
    for name, sub in (("megatron", "megatron"), ("megatron.core", "megatron/core")):
        package = types.ModuleType(name)
        package.__path__ = [str(core_path / sub)]
        sys.modules[name] = package
    return importlib.import_module("megatron.core.parallel_state")


def version_of(core_path: Path) -> str:
    """MAJOR.MINOR.PATCH from package_info.py, read as text (the module runs git)."""
    text = (core_path / "megatron" / "core" / "package_info.py").read_text()
    parts = [re.search(rf"^{k} = (\d+)", text, re.M) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) for m in parts if m)


class Token:
    """What the recorder hands back instead of a process group (hashable, like one)."""

    def __init__(self, desc: str | None, ranks: list[int], backend: Any) -> None:
        self.desc, self.ranks, self.backend = desc, ranks, backend


class Recorder:
    """Stands in for torch.distributed.new_group: remembers each call, returns a token."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, ranks: Any = None, backend: Any = None, group_desc: Any = None, **_: Any):
        token = Token(group_desc, list(ranks or []), backend)
        self.calls.append({"desc": group_desc, "ranks": list(ranks or []), "backend": backend})
        return token


def record(ps: types.ModuleType, world: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    import torch
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    for name in HOLDERS:  # 0.12's destroy_model_parallel leaves some of them set
        if hasattr(ps, name):
            setattr(ps, name, None)
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    recorder = Recorder()
    real = dist.new_group
    dist.new_group = recorder
    try:
        ps.initialize_model_parallel(**kwargs)
        holders = {}
        for name in HOLDERS:
            held = getattr(ps, name, None)
            if isinstance(held, Token):
                holders[name.lstrip("_")] = held.desc
    finally:
        dist.new_group = real
        ps.destroy_model_parallel()
        dist.destroy_process_group()
    del torch
    groups: dict[str, list[list[int]]] = {}
    gloo: list[str] = []
    for call in recorder.calls:
        if call["backend"] == "gloo":
            if call["desc"] not in gloo:
                gloo.append(call["desc"])
            continue
        groups.setdefault(call["desc"], []).append(call["ranks"])
    return {
        "groups": [{"desc": d, "ranks": r} for d, r in groups.items()],
        "gloo": gloo,
        "holders": holders,
        "new_group_calls": len(recorder.calls),
    }


def configs(rng: random.Random) -> list[dict[str, Any]]:
    """The worked examples first, then hand-picked corners, then random valid shapes."""
    fixed = [
        dict(world=16, tp=2, cp=2, pp=2, ep=2),
        dict(world=8, tp=2, ep=4, etp=1),
        dict(world=16, tp=2, cp=2, pp=2, ep=2, order="tp-cp-ep-pp-dp"),
        dict(world=16, tp=2, cp=4, hcp=[2, 2]),
        dict(world=8, tp=2, ep=2, inst=2),
        dict(world=8, tp=2, ep=4, inst=1),
        dict(world=8, cp=2, hybrid=True),
        dict(world=8, tp=2, pp=2),
        dict(world=8),
        dict(world=1),
        dict(world=16, tp=8, pp=2),
        dict(world=16, tp=4, pp=4, vpp=2),
        dict(world=32, tp=4, cp=2, pp=2, ep=8, etp=1),
        dict(world=32, tp=2, pp=2, ep=4, etp=2, inst=2),
        dict(world=16, tp=2, cp=2, ep=4, etp=1, inst=2),
        dict(world=24, tp=2, pp=3, ep=2),
        dict(world=12, tp=3, pp=2),
        dict(world=16, tp=1, cp=8, hcp=[2, 4]),
        dict(world=16, tp=2, pp=2, ep=2, order="tp-cp-ep-pp-dp"),
        dict(world=32, tp=2, cp=2, pp=2, ep=4, etp=1, inst=2),
        dict(world=16, tp=4, ep=8, etp=1),
        dict(world=16, tp=1, pp=4, ep=4),
        dict(world=32, tp=4, cp=4, hcp=[2, 2], pp=2),
        dict(world=16, cp=4, hybrid=True),
    ]
    out = list(fixed)
    while len(out) < 44:
        tp, cp, pp = rng.choice([1, 2, 4]), rng.choice([1, 2]), rng.choice([1, 2, 4])
        dp = rng.choice([1, 2, 4])
        world = tp * cp * pp * dp
        if world > 64:
            continue
        etp = rng.choice([None, 1, tp])
        ep_choices = [e for e in (1, 2, 4, 8) if world % ((etp or tp) * e * pp) == 0]
        ep = rng.choice(ep_choices)
        edp = world // ((etp or tp) * ep * pp)
        insts = [n for n in (1, 2) if (dp * cp) % n == 0 and edp % n == 0]
        order = rng.choice(["tp-cp-ep-dp-pp", "tp-cp-ep-pp-dp"])
        if order.endswith("dp") and pp > 1 and edp != dp:
            continue
        cfg = dict(world=world, tp=tp, cp=cp, pp=pp, ep=ep, order=order, inst=rng.choice(insts))
        if etp is not None:
            cfg["etp"] = etp
        if cfg not in out:
            out.append(cfg)
    return out


def kwargs_for(cfg: dict[str, Any], accepted: set[str]) -> dict[str, Any] | None:
    """initialize_model_parallel arguments of a config, or None if this version lacks one."""
    kw: dict[str, Any] = {
        "tensor_model_parallel_size": cfg.get("tp", 1),
        "pipeline_model_parallel_size": cfg.get("pp", 1),
        "virtual_pipeline_model_parallel_size": cfg.get("vpp"),
        "context_parallel_size": cfg.get("cp", 1),
        "expert_model_parallel_size": cfg.get("ep", 1),
        "expert_tensor_parallel_size": cfg.get("etp"),
        "num_distributed_optimizer_instances": cfg.get("inst", 1),
        "order": cfg.get("order", "tp-cp-ep-dp-pp"),
        "create_gloo_process_groups": True,
    }
    if cfg.get("hcp"):
        kw["hierarchical_context_parallel_sizes"] = cfg["hcp"]
    if cfg.get("hybrid"):
        kw["hybrid_context_parallel"] = True
    if not set(kw) <= accepted:
        return None
    return kw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core-path", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--version", help="the release, when package_info.py is not its tag's")
    args = parser.parse_args()
    ps = load_parallel_state(args.core_path)
    version = args.version or version_of(args.core_path)
    accepted = set(inspect.signature(ps.initialize_model_parallel).parameters)
    records = []
    for cfg in configs(random.Random(20260101)):
        kw = kwargs_for(cfg, accepted)
        if kw is None:
            continue
        entry = {"config": cfg, "kwargs": kw}
        try:
            entry |= record(ps, cfg["world"], kw)
        except (RuntimeError, AssertionError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        records.append(entry)
    import torch

    doc = {
        "megatron_core_version": version,
        "torch_version": torch.__version__,
        "recorded_with": "scripts/record_megatron_groups.py",
        "configs": records,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"megatron-core-{version}.json"
    path.write_text(_dump(doc) + "\n")
    print(f"{path}: {len(records)} configs")


def _dump(doc: dict[str, Any]) -> str:
    """JSON with one line per config setting and per group, so fixtures stay diffable."""
    head = {k: v for k, v in doc.items() if k != "configs"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append(' "configs": [')
    for i, entry in enumerate(doc["configs"]):
        lines.append("  {")
        keys = list(entry)
        for j, key in enumerate(keys):
            comma = "," if j < len(keys) - 1 else ""
            if key == "groups":
                lines.append('   "groups": [')
                for k, group in enumerate(entry["groups"]):
                    more = "," if k < len(entry["groups"]) - 1 else ""
                    lines.append(f"    {json.dumps(group)}{more}")
                lines.append(f"   ]{comma}")
            else:
                lines.append(f"   {json.dumps(key)}: {json.dumps(entry[key])}{comma}")
        lines.append("  }" + ("," if i < len(doc["configs"]) - 1 else ""))
    lines += [" ]", "}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
