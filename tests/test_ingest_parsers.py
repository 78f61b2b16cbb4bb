"""The fast ingestion paths of the parsers give what the plain ones give.

Every log in tests/data and sample_logs is parsed file by file and in batches (the NCCL,
PyTorch and SGLang facts of many files in one polars run), from the shared frame or from the
file, with all prefixes or only the distinct ones: all of it must agree row for row.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from parsers import lines as lines_module
from parsers import nccl_log, torch_dist_log
from parsers.lines import any_word, read_lines, split_lines
from parsers.nccl_log import parse_nccl, parse_nccl_files
from parsers.sglang_log import (
    parse_sglang_log,
    rare_lines,
    scan_sglang_log,
    sglang_logs,
)
from parsers.torch_dist_log import parse_torch_dist, parse_torch_dist_files

REPO = Path(__file__).resolve().parent.parent
LOGS = sorted(
    p
    for root in (REPO / "tests" / "data", REPO / "sample_logs")
    for p in root.rglob("*")
    if p.is_file() and p.suffix not in (".json", ".md")
)
COORDS = ["dp", "pp", "attn_cp", "moe_dp", "tp", "ep"]


def _same(a: Any, b: Any) -> bool:
    """Equal dataclasses, frames compared row for row and schema for schema."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, pl.DataFrame):
            if not (x.equals(y) and x.schema == y.schema):
                return False
        elif x != y:
            return False
    return True


def _frames() -> list[tuple[pl.DataFrame, str]]:
    return [(read_lines(path), str(path.relative_to(REPO))) for path in LOGS]


def _sglang_files() -> list[tuple[Path, pl.DataFrame]]:
    """The plain-text logs SGLang's parser reads without error."""
    found = []
    for path in LOGS:
        if path.read_bytes()[:2] == b"\x1f\x8b":
            continue
        frame = read_lines(path)
        try:
            parse_sglang_log(path, path.name, frame)
        except pl.exceptions.PolarsError:
            continue
        found.append((path, frame))
    return found


def test_the_corpus_is_there() -> None:
    assert len(LOGS) > 50


def test_nccl_and_torch_batches_match_file_by_file() -> None:
    files = _frames()
    for one, many in ((parse_nccl, parse_nccl_files), (parse_torch_dist, parse_torch_dist_files)):
        alone = [one(frame, display) for frame, display in files]
        for picked in (slice(None), slice(None, None, 3), slice(1, 2), slice(0, 0)):
            together = many(files[picked])
            assert len(together) == len(alone[picked])
            for expected, facts in zip(alone[picked], together, strict=True):
                assert _same(expected, facts), facts.path


def test_nccl_and_torch_read_only_their_candidate_lines() -> None:
    wanted = rare_lines(pl.col("text"), nccl_log.CANDIDATES, torch_dist_log.CANDIDATES)
    files = _frames()
    cut = [(frame.filter(wanted), display) for frame, display in files]
    for many in (parse_nccl_files, parse_torch_dist_files):
        for whole, picked in zip(many(files), many(cut), strict=True):
            assert _same(whole, picked), whole.path


@pytest.mark.parametrize("distinct", [False, True])
def test_sglang_batches_match_file_by_file(distinct: bool) -> None:
    files = _sglang_files()
    wanted = rare_lines(pl.col("text"), nccl_log.CANDIDATES, torch_dist_log.CANDIDATES)
    scans = [
        scan_sglang_log(
            frame,
            path.name,
            distinct_prefixes=distinct,
            candidates=frame.filter(wanted) if i % 2 else None,
        )
        for i, (path, frame) in enumerate(files)
    ]
    for (path, frame), log in zip(files, sglang_logs(scans), strict=True):
        alone = parse_sglang_log(path, path.name, frame, distinct_prefixes=distinct)
        assert _same(alone, log), path.name


def test_sglang_frame_and_distinct_prefixes() -> None:
    """The shared frame changes nothing; distinct prefixes are the first of each combination."""
    for path, frame in _sglang_files():
        plain = parse_sglang_log(path, path.name)
        assert _same(plain, parse_sglang_log(path, path.name, frame)), path.name
        distinct = parse_sglang_log(path, path.name, frame, distinct_prefixes=True)
        expected = plain.prefixes.unique(COORDS, keep="first", maintain_order=True)
        assert distinct.prefixes.equals(expected), path.name
        assert _same(replace_prefixes(plain, expected), distinct), path.name


def replace_prefixes(log: Any, prefixes: pl.DataFrame) -> Any:
    return dataclasses.replace(log, prefixes=prefixes)


def test_distinct_prefixes_after_the_first_lines(tmp_path: Path) -> None:
    """Past the sample a line is skipped only when it repeats a known prefix exactly."""
    lines = [
        f"[2026-01-01 00:00:{i % 60:02d} DP{i % 2} TP{i % 2}] Decode batch." for i in range(5000)
    ]
    lines += [
        "[2026-01-01T00:00:00 TP7] not a prefix: the stamp is odd",
        "[2026-01-01 00:00:00 TP0 EP3] a new combination",
        "[2026-01-01 00:00:00.5 DP5 TP5] fractional seconds",
        "(worker) [2026-01-01 00:00:00 DP1 TP9] behind another prefix",
        "[2026-01-01 00:00:0x DP0 TP0] odd stamp [2026-01-01 00:00:01 DP3 TP3] later on",
        "[2026-01-01 00:00:01 DP00 TP0] zero-padded: a known combination",
        "[2026-99-99 99:99:99 DP6 TP6] impossible date, new combination",
        "[2026-01-01 00:00:01 DP1 TP1] known again",
    ]
    path = tmp_path / "serve.log"
    path.write_text("\n".join(lines) + "\n")
    plain = parse_sglang_log(path, "serve.log")
    distinct = parse_sglang_log(path, "serve.log", distinct_prefixes=True)
    expected = plain.prefixes.unique(COORDS, keep="first", maintain_order=True)
    assert distinct.prefixes.equals(expected)
    assert distinct.prefixes["line"].to_list() == [1, 2, 5002, 5003, 5004, 5005, 5007]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"one\r\ntwo\r\r\n\r\nlast\r",
        b"no newline at the end",
        b"bad \xff\xfe bytes\n\xc3\n",
        b"x^ looks like zlib\nsecond\n",
        b"\x28\xb5\x2f\xfd looks like zstd\n",
        gzip.compress(b"compressed bytes stay bytes\n"),
    ],
)
def test_split_lines_with_and_without_polars_reader(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = split_lines(data)
    monkeypatch.delattr(pl, "read_lines", raising=False)
    assert fast.equals(split_lines(data))
    assert fast.schema == lines_module.SCHEMA


def test_text_that_looks_compressed_is_read_as_text(tmp_path: Path) -> None:
    for name, data in (("zlib.log", b"x^2 + y^2\nnext\n"), ("zstd.log", b"(\xb5/\xfd\nnext\n")):
        path = tmp_path / name
        path.write_bytes(data)
        assert read_lines(path).equals(split_lines(data))


def test_any_word_is_literal() -> None:
    words = ["a.b", "[c10d]", "x(y)", "a|b", "^$", "m-n #&~", "q\\z", "init_model_parallel_group("]
    series = pl.Series([*words, "ab", "c10d", "xy"])
    assert series.str.contains(any_word(words)).to_list() == [True] * len(words) + [False] * 3
