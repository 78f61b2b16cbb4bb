"""read_lines: the one reader every log parser shares (plain, gzip, headers, bad bytes)."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from parsers.lines import read_lines

DATA = Path(__file__).parent / "data"


def _rows(frame: pl.DataFrame) -> list[tuple[int, str]]:
    return frame.rows()


def test_plain_text_numbers_lines_from_one(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"first\nsecond\n\nfourth\n")
    frame = read_lines(path)
    assert frame.schema == pl.Schema({"line": pl.Int64, "text": pl.Utf8})
    assert _rows(frame) == [(1, "first"), (2, "second"), (3, ""), (4, "fourth")]


def test_last_line_without_newline_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo")
    assert _rows(read_lines(path)) == [(1, "one"), (2, "two")]
    path.write_bytes(b"")
    empty = read_lines(path)
    assert empty.is_empty()
    assert empty.schema == pl.Schema({"line": pl.Int64, "text": pl.Utf8})


def test_crlf_is_stripped_but_inner_carriage_returns_stay(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\r\nbar 10%\rbar 20%\r\n")
    assert _rows(read_lines(path)) == [(1, "one"), (2, "bar 10%\rbar 20%")]


def test_header_lines_are_dropped_and_numbers_kept(tmp_path: Path) -> None:
    """Only the header block at the top goes: further down, `#@ ` is whatever the log says."""
    path = tmp_path / "a.log"
    path.write_text("#@ source: x\n#@ what: y\nbody\n  #@ indented stays\n#@ later\nend\n")
    assert _rows(read_lines(path)) == [
        (3, "body"),
        (4, "  #@ indented stays"),
        (5, "#@ later"),
        (6, "end"),
    ]
    path.write_text("#@ only a header\n#@ and another\n")
    assert read_lines(path).is_empty()


def test_undecodable_bytes_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"ok\nbad \xff\xfe byte\n")
    assert _rows(read_lines(path)) == [(1, "ok"), (2, "bad \ufffd\ufffd byte")]


def test_gzip_is_recognised_by_magic_bytes_not_name(tmp_path: Path) -> None:
    body = "#@ header\nline one\r\nline \xe9 two\n".encode()
    plain = tmp_path / "plain.log"
    plain.write_bytes(body)
    packed = tmp_path / "renamed.log"  # no .gz suffix on purpose
    packed.write_bytes(gzip.compress(body))
    assert read_lines(packed).equals(read_lines(plain))
    assert _rows(read_lines(packed)) == [(2, "line one"), (3, "line é two")]


def test_real_generated_gzip_log() -> None:
    path = DATA / "generated/nccl_1gpu_torch2.11/fr_desync_tp2x2/nccl_log/nccl_rank2.log.gz"
    frame = read_lines(path)
    assert frame.height == 117  # `zcat | wc -l`
    first = "vm:1473:1473 [0] NCCL INFO ENV/Plugin: Could not find: libnccl-env.so"
    assert frame.row(0) == (1, first)
    assert frame.filter(pl.col("text") == "")["line"].to_list() == [112]  # before the WARN


def test_corpus_header_is_skipped() -> None:
    frame = read_lines(DATA / "corpus/deepseek-v2.5-tp8-pp2-2node-ray-ib.log")
    assert frame["line"][0] == 5
    assert not frame.filter(pl.col("text").str.starts_with("#@ ")).height


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        read_lines(tmp_path / "missing.log")
    with pytest.raises(OSError):
        read_lines(tmp_path)
