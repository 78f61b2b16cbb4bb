"""Print, side by side, how fast and how lean rankmap reads a big profiler trace.

Run: python benchmarks/bench_trace.py [--size-mb 1024] [--dir DIR] [--skip-json]. It writes
synthetic traces with benchmarks/generate_trace.py (distributedInfo before traceEvents,
the same with it after, and a gzip copy; reused when DIR already holds them) and times,
each in a fresh process, on the same file:

- `re scan`: a plain `re.finditer` for one literal over the memory-mapped bytes, the floor
  any reader that looks at every byte has to pay;
- `rankmap`: parsers.kineto.parse_kineto (plain, distributedInfo after, gzip);
- `json.load`, `orjson.loads` (if installed) and HTA's trace parser (if installed), which
  build every event.

Two peaks per run, above what the process held before the read: `peak RSS` is the kernel's
high-water mark (VmHWM), which includes the resident pages of a memory-mapped file;
`anon` is the highest anonymous memory sampled every 5 ms, i.e. what the reader allocated
beyond the mapped file (a loader holding the GIL in one long C call starves the sampler, so
for those read the RSS column).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _status(field: str) -> int:
    """A /proc/self/status value in bytes (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Peak:
    """Samples anonymous RSS in a thread; the high-water mark comes from the kernel."""

    def __init__(self) -> None:
        self.base = _status("RssAnon")
        self.base_rss = _status("VmRSS")
        self.anon = self.rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.anon = max(self.anon, _status("RssAnon") - self.base)
        self.rss = _status("VmHWM") - self.base_rss

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.anon = max(self.anon, _status("RssAnon") - self.base)
        self.rss = _status("VmHWM") - self.base_rss


def _re_scan(path: Path) -> str:
    import mmap
    import re

    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        hits = sum(1 for _ in re.finditer(rb"record_param_comms", mm))
    return f"{hits} hits"


def _rankmap(path: Path) -> str:
    from parsers.kineto import parse_kineto

    trace = parse_kineto(path, path.name)
    return f"{trace.comms.height} comm events, {len(trace.pg_config)} groups"


def _json(path: Path) -> str:
    with path.open("rb") as fh:
        doc = json.load(fh)
    return f"{len(doc['traceEvents'])} events"


def _orjson(path: Path) -> str:
    import orjson

    doc = orjson.loads(path.read_bytes())
    return f"{len(doc['traceEvents'])} events"


def _hta(path: Path) -> str:
    from hta.common.trace_parser import parse_trace_file

    _, frame, _ = parse_trace_file(str(path))
    return f"{len(frame)} events"


READERS = {"re scan": _re_scan, "rankmap": _rankmap, "json.load": _json,
           "orjson.loads": _orjson, "HTA": _hta}  # fmt: skip


def measure(reader: str, path: Path) -> dict[str, Any]:
    """Run one reader in this process; what the parent prints."""
    fn = READERS[reader]
    try:
        if reader == "rankmap":  # imports (polars) are not part of reading the trace
            import parsers.kineto  # noqa: F401
        with Peak() as peak:
            start = time.perf_counter()
            what = fn(path)
            took = time.perf_counter() - start
    except ImportError as exc:
        return {"skipped": f"not installed ({exc.name})"}
    except Exception as exc:  # a reader's failure is a result to print
        return {"skipped": f"failed: {type(exc).__name__}: {str(exc)[:80]}"}
    return {"seconds": took, "anon_mb": peak.anon / 1e6, "rss_mb": peak.rss / 1e6, "what": what}


def _child(reader: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", reader, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"skipped": f"crashed: {out.stderr.strip().splitlines()[-1:]}"}


def _traces(folder: Path, size_mb: float) -> dict[str, Path]:
    from benchmarks import generate_trace

    files = {
        "before": folder / "trace_before.json",
        "after": folder / "trace_after.json",
        "gzip": folder / "trace_before.json.gz",
    }
    size = ["--size-mb", str(size_mb)]
    for kind, path in files.items():
        if path.exists():
            continue
        print(f"writing {path} …", flush=True)
        extra = ["--dist-info", "after"] if kind == "after" else []
        generate_trace.main([str(path), *size, *extra])
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--dir", type=Path, help="where the traces are written (and reused)")
    parser.add_argument("--skip-json", action="store_true", help="do not run the full loaders")
    parser.add_argument("--measure", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = _traces(folder, args.size_mb)
        runs = [("re scan", "before"), ("rankmap", "before"), ("rankmap", "after"),
                ("rankmap", "gzip")]  # fmt: skip
        if not args.skip_json:
            runs += [("json.load", "before"), ("orjson.loads", "before"), ("HTA", "before")]
        size = files["before"].stat().st_size / 1e9
        gz = files["gzip"].stat().st_size / 1e9
        print(f"trace: {size:.2f} GB plain, {gz:.2f} GB gzip; Python {sys.version.split()[0]}")
        print(f"{'reader':<14}{'file':<8}{'time s':>8}{'s/GB':>7}{'peak RSS MB':>13}{'anon MB':>9}")
        for reader, kind in runs:
            result = _child(reader, files[kind])
            if "skipped" in result:
                print(f"{reader:<14}{kind:<8}  {result['skipped']}")
                continue
            print(
                f"{reader:<14}{kind:<8}{result['seconds']:8.2f}{result['seconds'] / size:7.2f}"
                f"{result['rss_mb']:13.0f}{result['anon_mb']:9.0f}  {result['what']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
