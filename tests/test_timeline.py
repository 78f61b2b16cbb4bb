"""The startup timeline finds the late, the missing and the unlogged rank.

The logs come from benchmarks/generate_sglang_logs.py, which writes what a real multi-node
start-up prints (one log per node, scheduler prefixes, NCCL lines), so these tests also pin
that the generator's output is read as the job it describes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from diagnose.analyze import Options, analyse
from diagnose.model import Evidence, Placement
from diagnose.reading import read_inputs
from diagnose.result import document
from diagnose.timeline import LATE_AFTER_S, startup

REPO = Path(__file__).resolve().parent.parent


def generator() -> ModuleType:
    """benchmarks/ is not a package; load the script as the module its dataclasses expect."""
    if "generate_sglang_logs" in sys.modules:
        return sys.modules["generate_sglang_logs"]
    spec = importlib.util.spec_from_file_location(
        "generate_sglang_logs", REPO / "benchmarks" / "generate_sglang_logs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def report(tmp_path: Path, **job: Any) -> dict[str, Any]:
    gen = generator()
    flags = dict(nnodes=2, tp=16, pp=1, dp=2, attn_cp=2, ep=16, a2a="deepep") | job
    gen.write_logs(tmp_path, gen.Job(**flags))
    found = read_inputs(tmp_path)
    analysis = analyse(found, Options(gpus_per_node=8), "report")
    analysis.logdir = str(tmp_path)
    return document(analysis)


def by_rank(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["rank"]: r for r in doc["timeline"]["ranks"]}


def test_generated_logs_read_as_the_job_they_describe(tmp_path: Path) -> None:
    doc = report(tmp_path)
    params = {k: v["value"] for k, v in doc["params"].items()}
    assert (params["tp_size"], params["dp_size"], params["attn_cp_size"]) == (16, 2, 2)
    assert params["ep_size"] == 16 and doc["params"]["ep_size"]["source"].startswith("engine")
    assert doc["world_size"] == 16 and doc["nnodes"] == 2
    assert [p["host"] for p in doc["placement"]][::8] == ["gpu-node-000", "gpu-node-001"]
    assert doc["coords"]["9"].startswith("rank 9: DP1 · ATTN_CP0 · ATTN_TP1")
    assert {i["status"] for i in doc["inputs"]} == {"parsed"}
    assert doc["timeline"]["counts"]["ok"] == 16


def test_late_rank_is_named(tmp_path: Path) -> None:
    doc = report(tmp_path, late={11: 60.0})
    ranks = by_rank(doc)
    assert ranks[11]["status"] == "late"
    assert ranks[11]["begin"] - doc["timeline"]["median_begin"] > LATE_AFTER_S
    assert all(r["status"] == "ok" for n, r in ranks.items() if n != 11)
    assert ranks[11]["file"] == "node001.log" and ranks[11]["line"]
    assert doc["timeline"]["notes"][0].startswith("Rank 11 (node 1 GPU 3) began")


def test_missing_rank_and_the_ranks_waiting_for_it(tmp_path: Path) -> None:
    doc = report(tmp_path, missing=frozenset({5}))
    ranks = by_rank(doc)
    assert ranks[5]["status"] == "missing" and ranks[5]["begin"] is None
    assert {r["status"] for n, r in ranks.items() if n != 5} == {"no init end"}
    notes = " ".join(doc["timeline"]["notes"])
    assert "Rank 5 (node 0 GPU 5) logged no" in notes and "15 rank(s) began init" in notes


def test_node_without_a_log_is_unknown_not_missing(tmp_path: Path) -> None:
    report(tmp_path)
    (tmp_path / "node001.log").unlink()
    found = read_inputs(tmp_path)
    doc = document(analyse(found, Options(gpus_per_node=8, nnodes=2), "report"))
    ranks = by_rank(doc)
    assert {ranks[r]["status"] for r in range(8, 16)} == {"no log"}
    assert "No log in the inputs from node 1" in doc["timeline"]["notes"][-1]


def test_replicas_and_pipeline_stages_map_to_their_rank() -> None:
    placement = [Placement(r, "h", r % 4, 0, rep) for rep in range(2) for r in range(4)]

    def ev(ts: str, prefix: str, kind: str) -> Evidence:
        return Evidence("a.log", 1, f"[2026-01-01 00:00:{ts}{prefix}] Init torch …", kind)

    events = [ev("00", " DP1 PP1 TP0", "init_begin"), ev("05", " DP1 PP1 TP0", "init_end")]
    events.append(ev("30", " DP0 PP0 TP1", "init_begin"))
    timeline = startup(events, placement, tp_size=2, replicas=2)
    assert timeline is not None
    rows = {(r["replica"], r["rank"]): r for r in timeline["ranks"]}
    assert (rows[(1, 2)]["begin"], rows[(1, 2)]["end"]) == (0.0, 5.0)
    assert rows[(0, 1)]["status"] == "late" and rows[(0, 1)]["begin"] == 30.0


def test_no_prefixed_init_line_means_no_timeline() -> None:
    placement = [Placement(0, "h", 0, 0)]
    plain = [Evidence("a.log", 3, "Init torch distributed begin.", "init_begin")]
    assert startup(plain, placement, tp_size=1) is None


@pytest.mark.parametrize("bad", [{"tp": 12}, {"late": {99: 1.0}}])
def test_generator_refuses_jobs_it_cannot_lay_out(bad: dict[str, Any]) -> None:
    gen = generator()
    with pytest.raises(ValueError):
        gen.Job(**(dict(nnodes=2, tp=16, pp=1, dp=2, attn_cp=2, ep=16) | bad)).check()
