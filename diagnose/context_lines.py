"""A few lines of context around each evidence line, read back from the input files.

A finding's evidence is one line; whoever fixes the job wants to see it where it stands (the
traceback above an error, the NCCL lines after a warning) without opening an 80 MB log. The
reading is bounded on purpose: each file is read once, as a stream, only up to the last line
asked for and never past MAX_BYTES; every line is clipped to WIDTH characters; nothing outside
the log directory is opened, whatever an evidence item names.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

BEFORE = 2
AFTER = 2
WIDTH = 240
# Past this many bytes a file is not read further: context deep inside a multi-GB log is not
# worth a report that takes minutes; the finding still shows its own line.
MAX_BYTES = 256 * 1024 * 1024


def attach(findings: list[dict[str, Any]], logdir: str | None) -> list[dict[str, Any]]:
    """Add `context` ({"before": [...], "after": [...]}, or None) to every evidence item.

    Each context line is {"line": n, "text": str}. The evidence line itself is not repeated:
    its own `text` is already clipped around the value that matters.
    """
    items = [e for f in findings for e in f.get("evidence") or []]
    wanted: dict[str, set[int]] = {}
    for e in items:
        if e.get("file") and isinstance(e.get("line"), int):
            wanted.setdefault(e["file"], set()).add(e["line"])
    root = _root(logdir)
    lines: dict[str, dict[int, str]] = {}
    for name, hits in wanted.items():
        path = _inside(root, name) if root is not None else None
        if path is not None:
            lines[name] = _read_lines(path, _needed(hits))
    for e in items:
        e["context"] = _context(lines.get(e.get("file") or ""), e.get("line"))
    return findings


def _root(logdir: str | None) -> Path | None:
    """The directory evidence names are relative to; a single log file is its own parent's."""
    if not logdir:
        return None
    path = Path(logdir)
    try:
        return path.resolve() if path.is_dir() else path.resolve().parent
    except OSError:
        return None


def _inside(root: Path, name: str) -> Path | None:
    """`root / name` when it is a regular file that resolves inside `root`, else None."""
    try:
        path = (root / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            return path
    except (OSError, ValueError):
        return None
    return None


def _needed(hits: Iterable[int]) -> set[int]:
    """Line numbers to keep: every hit with its neighbours."""
    return {n for hit in hits for n in range(max(1, hit - BEFORE), hit + AFTER + 1)}


def _read_lines(path: Path, needed: set[int]) -> dict[int, str]:
    """The wanted lines of one file (1-based, like the parsers count), clipped to WIDTH."""
    last = max(needed)
    out: dict[int, str] = {}
    read = 0
    try:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                read += len(raw)
                if number in needed:
                    out[number] = _clip(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                if number >= last or read > MAX_BYTES:
                    break
    except OSError:
        return {}
    return out


def _clip(text: str) -> str:
    """One screen line: a server_args dump is 10 KB on one line."""
    return text if len(text) <= WIDTH else text[:WIDTH] + " …"


def _context(lines: dict[int, str] | None, hit: Any) -> dict[str, list[dict[str, Any]]] | None:
    """The neighbours of `hit` that were read; None when the hit line itself was not."""
    if not lines or not isinstance(hit, int) or hit not in lines:
        return None

    def rows(numbers: range) -> list[dict[str, Any]]:
        return [{"line": n, "text": lines[n]} for n in numbers if n in lines]

    return {
        "before": rows(range(max(1, hit - BEFORE), hit)),
        "after": rows(range(hit + 1, hit + AFTER + 1)),
    }
