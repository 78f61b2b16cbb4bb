"""read_inputs reads a directory the same way in batches, in worker processes and file by file.

The logs come from benchmarks/generate_sglang_logs.py with every NCCL_DEBUG=INFO line and a
few MB of serving lines, next to the bundled samples, a config.json, a file that is not a log
and one that cannot be read.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
import pytest

from diagnose import reading
from diagnose.reading import Inputs, read_inputs
from parsers.sglang_log import parse_sglang_log

REPO = Path(__file__).resolve().parent.parent
COORDS = ["dp", "pp", "attn_cp", "moe_dp", "tp", "ep"]
CORPUS = REPO / "tests" / "data" / "corpus"
GENERATED = (
    REPO / "tests" / "data" / "generated" / "nccl_1gpu_torch2.11" / "sglang_tp8_attncp2_moeep4"
)


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


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingest")
    gen = generator()
    job = gen.Job(nnodes=4, tp=16, pp=2, dp=2, attn_cp=2, ep=16, a2a="deepep")
    gen.write_logs(out / "job", job, size_mb=6, nccl_detail=True)
    shutil.copytree(REPO / "sample_logs" / "seed_dsv32_tp8_dp2_attncp2", out / "seed")
    # One file of every other kind the workers may meet: a vLLM log (parsed whole by its
    # engine), NCCL- and PyTorch-only logs, a profiler trace and a Flight Recorder dump.
    shutil.copy(CORPUS / "deepseek-v2.5-tp8-pp2-2node-ray-ib.log", out / "vllm.log")
    for kind in ("nccl_log", "torch_log", "trace", "fr"):
        first = sorted((GENERATED / kind).iterdir())[0]
        shutil.copy(first, out / f"{kind}_{first.name}")
    (out / "config.json").write_text(json.dumps({"architectures": ["X"], "num_hidden_layers": 2}))
    (out / "notes.txt").write_text("nothing to see\n")
    (out / "unreadable.log").write_text("[2026-01-01 00:00:00 TP0] x\n")
    (out / "unreadable.log").chmod(0)
    return out


def _plain(found: Inputs) -> Any:
    """Inputs as plain values: frames as (schema, rows), dataclasses as dicts."""

    def plain(x: Any) -> Any:
        if isinstance(x, pl.DataFrame):
            return (x.schema, x.rows())
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return (
                type(x).__name__,
                {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)},
            )
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    return plain(found)


def _file_by_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        reading, "_read_all", lambda cands, idle: [reading._read_alone(c) for c in cands]
    )


def test_batches_read_like_single_files(logdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batched = read_inputs(logdir)
    statuses = {f.path: f.status for f in batched.files}
    assert statuses["notes.txt"] == "skipped" and statuses["config.json"] == "parsed"
    assert statuses["unreadable.log"] in ("failed", "parsed")  # root reads it anyway
    assert {statuses[f"job/node00{n}.log"] for n in range(4)} == {"parsed"}
    others = [
        path for path in statuses if path.startswith(("vllm", "nccl_", "torch_", "trace_", "fr_"))
    ]
    assert len(others) == 5 and {statuses[path] for path in others} == {"parsed"}
    assert len(batched.traces) == len(batched.dumps) == 1
    assert "vllm" in {log.engine for log in batched.logs}
    _file_by_file(monkeypatch)
    assert _plain(read_inputs(logdir)) == _plain(batched)


def test_workers_read_like_this_process(logdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = read_inputs(logdir)
    started = []

    def start(context: Any, count: int, args: tuple[Any, ...]) -> list[Any]:
        started.append((count, os.environ.get("POLARS_MAX_THREADS")))
        return start_workers(context, count, args)

    start_workers = reading._start_workers
    monkeypatch.setattr(reading, "_start_workers", start)
    monkeypatch.setattr(reading, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(reading.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    idled: list[bool] = []
    assert _plain(read_inputs(logdir, idle=lambda: idled.append(True))) == _plain(here)
    assert started == [(1, "1")]
    assert len(idled) <= 1  # once, when this process had to wait for the worker
    assert "POLARS_MAX_THREADS" not in os.environ


def test_a_worker_that_dies_is_an_error_not_a_hang(
    logdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def start(context: Any, count: int, args: tuple[Any, ...]) -> list[Any]:
        process = context.Process(target=os._exit, args=(3,), daemon=True)
        process.start()
        return [process]

    monkeypatch.setattr(reading, "_start_workers", start)
    monkeypatch.setattr(reading, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(reading.os, "cpu_count", lambda: 2)
    with pytest.raises(RuntimeError, match="exit code 3"):
        read_inputs(logdir)


def test_a_failing_batch_is_read_again_file_by_file(
    logdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = read_inputs(logdir)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a file the batch cannot take")

    monkeypatch.setattr(reading, "parse_nccl_files", broken)
    assert _plain(read_inputs(logdir)) == _plain(expected)


def test_engine_logs_keep_the_first_line_of_each_prefix(logdir: Path) -> None:
    found = read_inputs(logdir)
    log = next(log for log in found.logs if log.path == "job/node003.log")
    full = parse_sglang_log(logdir / "job" / "node003.log", "job/node003.log")
    assert full.prefixes.height > 10 * log.prefixes.height
    assert log.prefixes.equals(full.prefixes.unique(COORDS, keep="first", maintain_order=True))
    assert _plain(dataclasses.replace(log, prefixes=full.prefixes)) == _plain(full)


def test_progress_bar_only_on_a_terminal_for_long_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = io.StringIO()
    shown.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", shown)
    with reading._progress(reading.PROGRESS_BYTES - 1) as advance:
        advance(10)
    assert shown.getvalue() == ""
    with reading._progress(reading.PROGRESS_BYTES) as advance:
        advance(reading.PROGRESS_BYTES)
    assert "Reading logs" in shown.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with reading._progress(reading.PROGRESS_BYTES) as advance:
        advance(reading.PROGRESS_BYTES)
    assert sys.stderr.getvalue() == ""


def test_batches_follow_the_directory_order() -> None:
    cands = [reading.Candidate(Path(f"{i}.log"), f"{i}.log", size, "text") for i, size in
             enumerate([5, 5, 20, 1, 1, 1])]  # fmt: skip
    batches = list(reading._batches(cands, most=10))
    assert [[c.display for c in batch] for batch in batches] == [
        ["0.log", "1.log"], ["2.log"], ["3.log", "4.log", "5.log"],
    ]  # fmt: skip
