"""Walk a log directory and decide, for every file, what it is.

Nothing is dropped silently: each file ends up parsed, skipped or failed with a reason,
and the report lists them all. The format is sniffed from the first bytes, the way a
syntax highlighter guesses a language, because log files rarely have telling names.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from diagnose.engines import registry
from parsers.flight_recorder import sniff_flight_recorder
from parsers.kineto import sniff_kineto
from parsers.nccl_log import sniff_nccl

HEAD_BYTES = 65536
# PyTorch's distributed C++ lines (TORCH_CPP_LOG_LEVEL=INFO, watchdog, desync reports).
TORCH_MARKERS = ("ProcessGroupNCCL", "WorkNCCL(", "[PG ID ", "Watchdog caught", "NCCL error")


@dataclass(frozen=True)
class Candidate:
    """A file found under the log directory, with its sniffed format."""

    path: Path
    display: str
    size: int
    format: str
    skip_reason: str | None = None
    engine: str | None = None
    nccl: bool = False
    torch: bool = False


def _sniff(path: Path, head: bytes) -> Candidate:
    """What a file is, from its first bytes (decompressed when it is gzip)."""
    if sniff_flight_recorder(head):
        return Candidate(path, "", 0, "flight-recorder")
    if sniff_kineto(head):
        return Candidate(path, "", 0, "kineto-trace")
    compressed = head[:2] == b"\x1f\x8b"
    if compressed:
        head = _gunzip_head(path)
        if head is None:
            return Candidate(path, "", 0, "gzip", "compressed file that does not decompress")
    if b"\x00" in head[:4096]:
        return Candidate(
            path, "", 0, "binary", "binary file (Flight Recorder dumps are not read yet)"
        )
    if path.suffix.lower() in (".md", ".rst") or path.stem.upper() == "README":
        return Candidate(path, "", 0, "text", "documentation, not a log")
    text = head.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{") and ('"traceEvents"' in text or '"schemaVersion"' in text):
        return Candidate(path, "", 0, "kineto-trace", "profiler trace: not read yet")
    engine = None if compressed else registry.sniff(text)
    nccl = sniff_nccl(text)
    torch = any(marker in text for marker in TORCH_MARKERS)
    parts = []
    if engine is not None:
        script = path.suffix == ".sh" or text.startswith("#!")
        parts.append(f"{engine.name}-{'launch-script' if script else 'log'}")
    parts += ["nccl-log"] * nccl + ["torch-log"] * torch
    if parts:
        name = "+".join(parts) + (".gz" if compressed else "")
        return Candidate(path, "", 0, name, None, engine.name if engine else None, nccl, torch)
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        if '"architectures"' in text or '"num_hidden_layers"' in text:
            return Candidate(path, "", 0, "hf-config")
        reason = "JSON file that is neither a model config.json nor an engine config"
        return Candidate(path, "", 0, "json", reason)
    return Candidate(path, "", 0, "text", "no engine, NCCL or PyTorch lines recognised")


def _gunzip_head(path: Path) -> bytes | None:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error):
        return None


def discover(root: Path) -> list[Candidate]:
    """Every regular file under `root`, symlinks leading outside it skipped."""
    root = root.resolve()
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            display = str(path.relative_to(root))
            out.append(_candidate(root, path, display))
    return out


def _candidate(root: Path, path: Path, display: str) -> Candidate:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            return Candidate(path, display, 0, "symlink", "symlink leads outside the directory")
        if not target.is_file():
            return Candidate(path, display, 0, "symlink", "symlink to something not a file")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        return Candidate(path, display, 0, "unreadable", f"cannot read: {exc.strerror or exc}")
    if size == 0:
        return Candidate(path, display, 0, "empty", "empty file")
    return replace(_sniff(path, head), display=display, size=size)


def single_file(path: Path) -> Candidate:
    """A file named directly on the command line instead of a directory."""
    return _candidate(path.parent.resolve(), path.resolve(), path.name)
