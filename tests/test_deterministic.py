"""The same inputs give the same document on every run (polars' group_by and unique give rows
in any order, and a fresh interpreter hashes differently each time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
DIRS = [DATA / "corpus", DATA / "generated" / "nccl_1gpu_torch2.11" / "fr_desync_tp2x2"]


def _document(logdir: Path, out: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "diagnose", "report", str(logdir), "--fail-on", "never"]
    subprocess.run([*command, "-o", str(out / "r.html"), "--json", str(out / "r.json")],
                   check=True, capture_output=True)  # fmt: skip
    return json.loads((out / "r.json").read_text())


@pytest.mark.parametrize("logdir", DIRS, ids=[d.name for d in DIRS])
def test_two_runs_write_the_same_document(logdir: Path, tmp_path: Path) -> None:
    assert _document(logdir, tmp_path) == _document(logdir, tmp_path)
