"""Locating files that ship with rankmap.

Templates and sample logs live at the top of the repository (DESIGN.md's layout) and are
copied inside the `diagnose` package when the wheel is built, so both a checkout and an
installed wheel must be served.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    for candidate in (_HERE / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"rankmap is installed without its {name}/ directory")


def templates_dir() -> Path:
    return _shipped("templates")


def sample_logs_dir() -> Path:
    return _shipped("sample_logs")
