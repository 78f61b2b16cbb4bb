"""The benchmark's log generator writes big, detailed logs that read as the job they describe."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from diagnose.analyze import Options, analyse
from diagnose.reading import read_inputs
from diagnose.result import document

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


@pytest.mark.parametrize("ranks", [64, 128, 256, 512, 1024, 2048, 4096])
def test_shapes_for_64_to_4096_ranks(ranks: int) -> None:
    job = generator().Job.for_ranks(ranks)
    job.check()
    assert job.world == ranks and job.nnodes * job.gpus_per_node == ranks


def test_sized_detailed_logs_read_as_the_job(tmp_path: Path) -> None:
    gen = generator()
    job = gen.Job.for_ranks(128)
    paths = gen.write_logs(tmp_path, job, size_mb=12, nccl_detail=True)
    size = sum(p.stat().st_size for p in paths)
    assert 11e6 < size < 13e6
    text = paths[3].read_text()
    assert "] Decode batch. #running-req: " in text and "gen throughput (token/s): " in text
    assert "NCCL INFO Trees [0] " in text and "NCCL INFO Ring 00 : " in text
    assert "ProcessGroupNCCL initialization options: size: 128, global rank: 24" in text

    found = read_inputs(tmp_path)
    assert {f.status for f in found.files} == {"parsed"}
    comms = pl.concat([facts.comms for facts in found.nccl])
    assert comms.height == 128 and set(comms["nranks"]) == {128}
    assert comms["init_complete_line"].null_count() == 0
    links = pl.concat([facts.links for facts in found.nccl])
    assert set(links["kind"]) == {"channel", "ring", "tree"}
    pgs = pl.concat([facts.pgs for facts in found.torch])
    assert sorted(pgs.filter(pl.col("pg_name") == "0")["global_rank"]) == list(range(128))
    doc = document(analyse(found, Options(gpus_per_node=8), "report"))
    assert doc["world_size"] == 128 and doc["nnodes"] == 16


def test_hang_with_detail_leaves_inits_open(tmp_path: Path) -> None:
    gen = generator()
    job = gen.Job(nnodes=2, tp=16, pp=1, dp=2, attn_cp=2, ep=16, missing=frozenset({5}))
    gen.write_logs(tmp_path, job, nccl_detail=True)
    found = read_inputs(tmp_path)
    comms = pl.concat([facts.comms for facts in found.nccl])
    assert comms.height == 15 and comms["init_complete_line"].null_count() == 15
