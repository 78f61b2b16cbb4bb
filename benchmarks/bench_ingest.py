"""Print how fast `rankmap report` ingests a big log directory: time, MB/s and peak memory.

Run: python benchmarks/bench_ingest.py [LOGDIR] [--ranks 1024] [--size-mb 2048] [--small]
[--nccl-only].
Without LOGDIR it first writes a job's logs with generate_sglang_logs.py (--ranks, every
NCCL_DEBUG=INFO line of communicator init, serving lines up to --size-mb) into a temporary
directory. The measured run is the whole `rankmap report` path, each stage timed:
read_inputs (discover, parse every file on every core), analyse (assemble, join the
communicators, run the rules), document, and render_html with the report written to a file.
It runs in a fresh interpreter, so that generating the logs does not count: its peak
resident memory and that of the largest worker process (resource.getrusage) are printed.
Then the whole `rankmap report LOGDIR` command is timed as a user runs it, from interpreter
start (imports included) to exit.
`--nccl-only` measures 20 logs of NCCL lines alone instead (a recorded log repeated to
25 MB each; reading only, since NCCL lines name no engine configuration). `--small` (64
ranks, 96 MB, a few seconds) is what CI runs; every run checks that each file
was parsed and, for generated logs, that the world came out at --ranks.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diagnose.model import InputFile

HERE = Path(__file__).resolve().parent
GENERATOR = HERE / "generate_sglang_logs.py"
NCCL_LOG = (
    HERE.parent / "tests" / "data" / "generated" / "nccl_1gpu_torch2.11"
    / "sglang_tp8_attncp2_moeep4" / "nccl_log" / "nccl_rank0.log.gz"
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", nargs="?", type=Path, help="an existing log directory")
    parser.add_argument("--ranks", type=int, default=1024, help="GPUs of the generated job")
    parser.add_argument("--size-mb", type=float, default=2048.0, help="size of the generated logs")
    parser.add_argument("--small", action="store_true", help="64 ranks, 96 MB (CI)")
    parser.add_argument(
        "--nccl-only", action="store_true", help="20 logs of 25 MB of NCCL_DEBUG=INFO lines only"
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.small:
        args.ranks, args.size_mb = 64, 96.0
    if args.measure:
        return measure(args.logdir, args.ranks)
    if args.logdir is not None:
        return _measure_apart(args.logdir, None)
    if args.nccl_only:
        with tempfile.TemporaryDirectory(prefix="rankmap-bench-") as tmp:
            return _measure_apart(_nccl_only_logs(Path(tmp)), None)
    with tempfile.TemporaryDirectory(prefix="rankmap-bench-") as tmp:
        logdir = Path(tmp) / "logs"
        start = time.perf_counter()
        command = [sys.executable, str(GENERATOR), str(logdir), "--ranks", str(args.ranks)]
        command += ["--nccl-detail", "--size-mb", str(args.size_mb)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"generated in {time.perf_counter() - start:.1f} s")
        return _measure_apart(logdir, args.ranks)


def _nccl_only_logs(tmp: Path, files: int = 20, size_mb: int = 25) -> Path:
    """A directory of logs made of NCCL lines alone (every subsystem of NCCL_DEBUG=INFO): a
    real single-rank log recorded in tests/data, repeated to `size_mb` per file."""
    recorded = gzip.decompress(NCCL_LOG.read_bytes())
    body = recorded * max(1, size_mb * 2**20 // len(recorded))
    logdir = tmp / "logs"
    logdir.mkdir()
    for rank in range(files):
        (logdir / f"nccl_rank{rank}.log").write_bytes(body)
    return logdir


def _measure_apart(logdir: Path, ranks: int | None) -> int:
    """Run `measure` in a fresh interpreter (peak memory counts only the report's work),
    then time the whole `rankmap report` command, interpreter start to exit."""
    command = [sys.executable, str(Path(__file__).resolve()), str(logdir), "--measure"]
    command += ["--ranks", str(ranks or 0)]
    code = subprocess.run(command, check=False).returncode
    with tempfile.TemporaryDirectory() as tmp:
        report = [sys.executable, "-m", "diagnose", "report", str(logdir), "--fail-on", "never"]
        start = time.perf_counter()
        run = subprocess.run([*report, "-o", str(Path(tmp) / "r.html")], capture_output=True)
        took = time.perf_counter() - start
        print(f"  the whole `rankmap report` command, start to exit: {took:.2f} s", end="")
        print(f" (exit {run.returncode})" if run.returncode else "")
    return code


def measure(logdir: Path, ranks: int) -> int:
    """Time `rankmap report LOGDIR` stage by stage in this process and print the figures;
    1 when a file was not parsed or the world is not `ranks` (0: not checked)."""
    start = time.perf_counter()
    from diagnose.analyze import BadInput, Options, analyse
    from diagnose.reading import read_inputs
    from diagnose.report_html import render_html
    from diagnose.result import document

    imports = time.perf_counter() - start
    stages: list[tuple[str, float]] = []

    def stage(name: str, began: float) -> float:
        now = time.perf_counter()
        stages.append((name, now - began))
        return now

    began = time.perf_counter()
    found = read_inputs(logdir)
    now = stage("read_inputs", began)
    doc, html, stopped = {"world_size": None}, 0, None
    try:
        analysis = analyse(found, Options(), "report")
    except BadInput as exc:  # NCCL lines alone name no engine configuration
        stopped = str(exc)
    else:
        analysis.logdir = str(logdir)
        now = stage("analyse", now)
        doc = document(analysis)
        now = stage("document", now)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report.html"
            out.write_text(render_html(doc), encoding="utf-8")
            html = out.stat().st_size
        stage("render_html", now)
    total = sum(took for _, took in stages)
    size = sum(f.size for f in found.files)
    print(
        f"rankmap report {logdir}: {len(found.files)} files, {size / 1e6:.1f} MB, "
        f"world {doc['world_size']}, report {html / 1e6:.1f} MB, {os.cpu_count()} cores"
    )
    if stopped:
        print(f"  (the analysis stops there: {stopped[:100]})")
    print(f"  {'(imports)':<12} {imports:6.2f} s")
    for name, took in stages:
        print(f"  {name:<12} {took:6.2f} s  {100 * took / total:3.0f} %")
    print(f"  {'total':<12} {total:6.2f} s  {size / 1e6 / total:.0f} MB/s")
    main_mb, worker_mb = _peak_mb(resource.RUSAGE_SELF), _peak_mb(resource.RUSAGE_CHILDREN)
    workers = max(1, (os.cpu_count() or 1) - 1) if worker_mb else 0  # this process reads too
    print(
        f"  peak RSS     {main_mb:.0f} MB here, {worker_mb:.0f} MB the largest of {workers} "
        f"workers: at most {main_mb + workers * worker_mb:.0f} MB together"
    )
    return _check(found.files, doc, ranks)


def _peak_mb(who: int) -> float:
    """Peak resident memory of this process or of its largest finished child, in MB."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs kB


def _check(files: list[InputFile], doc: dict[str, Any], ranks: int) -> int:
    """A fast run that misread the logs proves nothing: 1 (and why) when it did."""
    bad = [f"{f.path}: {f.status} ({f.reason})" for f in files if f.status != "parsed"]
    if ranks and doc["world_size"] != ranks:
        bad.append(f"world of {doc['world_size']} ranks, expected {ranks}")
    for line in bad:
        print(f"  FAILED {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
