"""Walk a log directory and decide, for every file, what it is.

Nothing is dropped silently: each file ends up parsed, skipped or failed with a reason,
and the report lists them all. The format is sniffed from the first bytes, the way a
syntax highlighter guesses a language, because log files rarely have telling names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from diagnose.engines import registry

HEAD_BYTES = 65536


@dataclass(frozen=True)
class Candidate:
    """A file found under the log directory, with its sniffed format."""

    path: Path
    display: str
    size: int
    format: str
    skip_reason: str | None = None
    engine: str | None = None


def _sniff(path: Path, head: bytes) -> tuple[str, str | None, str | None]:
    """(format, skip reason, engine whose parser reads it)."""
    if head[:2] == b"\x1f\x8b":
        return "gzip", "compressed file: profiler traces and compressed logs are not read yet", None
    if b"\x00" in head[:4096]:
        return "binary", "binary file (Flight Recorder dumps are not read yet)", None
    if path.suffix.lower() in (".md", ".rst") or path.stem.upper() == "README":
        return "text", "documentation, not a log", None
    text = head.decode("utf-8", errors="replace")
    engine = registry.sniff(text)
    if engine is not None:
        script = path.suffix == ".sh" or text.startswith("#!")
        return f"{engine.name}-{'launch-script' if script else 'log'}", None, engine.name
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        if '"architectures"' in text or '"num_hidden_layers"' in text:
            return "hf-config", None, None
        if '"traceEvents"' in text or '"distributedInfo"' in text:
            return "kineto-trace", "profiler trace: not read yet", None
        return "json", "JSON file that is neither a model config.json nor an engine config", None
    if " NCCL INFO " in text or " NCCL WARN " in text:
        # The engine parsers read NCCL lines too; a dedicated NCCL reader is not here yet.
        return "nccl-log", None, "sglang"
    return "text", "no engine, NCCL or launch-command lines recognised", None


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
    fmt, reason, engine = _sniff(path, head)
    return Candidate(path, display, size, fmt, reason, engine)


def single_file(path: Path) -> Candidate:
    """A file named directly on the command line instead of a directory."""
    return _candidate(path.parent.resolve(), path.resolve(), path.name)
