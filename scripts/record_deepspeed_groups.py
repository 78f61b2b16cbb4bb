#!/usr/bin/env python3
"""Record the process groups DeepSpeed's own group code builds, as test fixtures.

Runs DeepSpeed's deepspeed/utils/groups.py (`_create_expert_and_data_parallel`,
`_get_data_parallel_group`, `_create_zero_param_parallel_group`) and, for pipelines,
deepspeed/runtime/pipe/topology.py (`PipelineParallelGrid`) once for every rank of each
configuration, in DeepSpeedEngine's order, with `deepspeed.comm` replaced by a recorder of
`new_group` calls. Nothing here re-implements DeepSpeed's layout: the rank lists are what
DeepSpeed passes to `new_group`. Needs no torch and no DeepSpeed install: only those files
(and deepspeed/utils/bwc.py where the release has it) copied out of a DeepSpeed checkout,
outside this repository:

    git -C DeepSpeed show v0.16.2:deepspeed/utils/groups.py > /work/dspkgs/0.16.2/groups.py
    git -C DeepSpeed show v0.16.2:deepspeed/runtime/pipe/topology.py > .../topology.py
    git -C DeepSpeed show v0.16.2:deepspeed/utils/bwc.py > .../bwc.py
    python scripts/record_deepspeed_groups.py --source-dir /work/dspkgs/0.16.2 --version 0.16.2

Each recorded config lists its phases (pipeline_grid, moe, data_parallel, zero_hpz) with
the rank lists of every `new_group` call in call order. Every rank must make the same
calls, or the script stops.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import io
import itertools
import json
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "data" / "deepspeed_recorded"


class Recorder:
    """What `deepspeed.comm` offers groups.py and topology.py, for one pretend rank."""

    def __init__(self) -> None:
        self.rank = 0
        self.world = 1
        self.calls: list[list[int]] = []

    def module(self) -> types.ModuleType:
        comm = types.ModuleType("deepspeed.comm")
        comm.is_initialized = lambda: True  # type: ignore[attr-defined]
        comm.get_rank = lambda group=None: self.rank  # type: ignore[attr-defined]
        comm.get_world_size = lambda group=None: (  # type: ignore[attr-defined]
            self.world if group is None else len(group)
        )
        comm.new_group = self._new_group  # type: ignore[attr-defined]
        return comm

    def _new_group(self, ranks: Any = None, **_: Any) -> tuple[int, ...]:
        members = list(range(self.world)) if ranks is None else [int(r) for r in ranks]
        self.calls.append(members)
        return tuple(members)


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _install_stubs(recorder: Recorder, source: Path) -> None:
    """deepspeed, deepspeed.comm/utils/accelerator as stand-ins; bwc.py from the release."""
    ds = types.ModuleType("deepspeed")
    ds.__path__ = []  # type: ignore[attr-defined]
    comm = recorder.module()
    ds.comm = comm  # type: ignore[attr-defined]
    utils = types.ModuleType("deepspeed.utils")
    utils.__path__ = []  # type: ignore[attr-defined]
    utils.log_dist = lambda *a, **k: None  # type: ignore[attr-defined]
    exceptions = types.ModuleType("deepspeed.utils.exceptions")
    exceptions.DeprecatedException = type("DeprecatedException", (Exception,), {})  # type: ignore[attr-defined]
    accelerator = types.ModuleType("deepspeed.accelerator")
    accelerator.get_accelerator = lambda: None  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "deepspeed": ds,
            "deepspeed.comm": comm,
            "deepspeed.utils": utils,
            "deepspeed.utils.exceptions": exceptions,
            "deepspeed.accelerator": accelerator,
        }
    )
    if (source / "bwc.py").exists():
        _load("deepspeed.utils.bwc", source / "bwc.py")


def _run(source: Path, rank: int, world: int, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The phases of one rank: DeepSpeedEngine's group creation for this config."""
    recorder = Recorder()
    recorder.rank, recorder.world = rank, world
    _install_stubs(recorder, source)
    groups = _load("deepspeed.utils.groups", source / "groups.py")
    topology = _load("deepspeed.runtime.pipe.topology", source / "topology.py")
    phases: list[dict[str, Any]] = []

    def phase(name: str, fn: Any) -> None:
        start = len(recorder.calls)
        fn()
        phases.append({"phase": name, "groups": recorder.calls[start:]})

    pp, ep, hpz = cfg["pp"], cfg.get("ep"), cfg.get("hpz", 1)
    if pp > 1:

        def grid() -> None:
            topo = topology.PipeDataParallelTopology(num_pp=pp, num_dp=world // pp)
            groups.mpu = topology.PipelineParallelGrid(topology=topo)

        phase("pipeline_grid", grid)
    if ep is not None:
        kwargs = {}
        if cfg.get("dbe"):
            kwargs["use_data_before_expert_parallel_"] = True
        phase("moe", lambda: groups._create_expert_and_data_parallel(ep, **kwargs))
    phase("data_parallel", groups._get_data_parallel_group)
    if hpz > 1:
        phase("zero_hpz", lambda: groups._create_zero_param_parallel_group(hpz))
    return phases


def _configs(source: Path) -> list[dict[str, Any]]:
    groups_text = (source / "groups.py").read_text()
    has_dbe = "use_data_before_expert_parallel_" in groups_text
    has_hpz = "_create_zero_param_parallel_group" in groups_text
    out = [{"world": 16, "pp": 1, "ep": 2}]  # the groups.py docstring example
    for world, pp, ep, hpz, dbe in itertools.product(
        (4, 8, 16), (1, 2, 4), (None, 1, 2, 4), (1, 2, 4), (False, True)
    ):
        if world % pp or (ep is not None and (world // pp) % ep):
            continue
        if (dbe and (ep is None or not has_dbe)) or (hpz > 1 and (not has_hpz or world % hpz)):
            continue
        cfg: dict[str, Any] = {"world": world, "pp": pp, "hpz": hpz}
        if ep is not None:
            cfg["ep"] = ep
        if dbe:
            cfg["dbe"] = True
        out.append(cfg)
    return out


def record(source: Path, version: str) -> dict[str, Any]:
    configs = []
    for cfg in _configs(source):
        with contextlib.redirect_stdout(io.StringIO()):  # the grid prints its topology
            runs = [_run(source, rank, cfg["world"], cfg) for rank in range(cfg["world"])]
        if any(r != runs[0] for r in runs):
            raise SystemExit(f"ranks disagree on the groups of {cfg}")
        configs.append({"sizes": cfg, "phases": runs[0]})
    signature = str(
        inspect.signature(sys.modules["deepspeed.utils.groups"]._create_expert_and_data_parallel)
    )
    return {
        "deepspeed_version": version,
        "source": "deepspeed/utils/groups.py, deepspeed/runtime/pipe/topology.py",
        "create_expert_and_data_parallel": signature,
        "configs": configs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    doc = record(args.source_dir, args.version)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"deepspeed-{args.version}.json"
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{out}: {len(doc['configs'])} configurations")


if __name__ == "__main__":
    main()
