"""Context around evidence lines: the right lines, bounded, and never outside the log dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diagnose import context_lines
from diagnose.context_lines import WIDTH, attach


def finding(*evidence: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"rule": "RM1", "evidence": list(evidence)}]


def test_lines_around_each_hit_read_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.log").write_bytes(
        b"one\r\ntwo\nthree \xff\nfour\nfive\nsix\n" + b"x" * 1000 + b"\n"
    )
    found = attach(
        finding(
            {"file": "sub/a.log", "line": 1, "text": "one"},
            {"file": "sub/a.log", "line": 4, "text": "four"},
            {"file": "sub/a.log", "line": 6, "text": "six"},
        ),
        str(tmp_path),
    )
    first, middle, last = (e["context"] for e in found[0]["evidence"])
    assert first == {
        "before": [],
        "after": [{"line": 2, "text": "two"}, {"line": 3, "text": "three \ufffd"}],
    }
    assert [c["line"] for c in middle["before"]] == [2, 3]
    assert [c["line"] for c in middle["after"]] == [5, 6]
    assert last["after"] == [{"line": 7, "text": "x" * WIDTH + " …"}]


def test_single_file_logdir_and_missing_lines(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("a\nb\n")
    found = attach(
        finding({"file": "run.log", "line": 2, "text": "b"}, {"file": "run.log", "line": 9}),
        str(log),
    )
    assert found[0]["evidence"][0]["context"] == {"before": [{"line": 1, "text": "a"}], "after": []}
    assert found[0]["evidence"][1]["context"] is None


def test_nothing_outside_the_directory_or_without_a_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s1\ns2\ns3\n")
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "link.log").symlink_to(tmp_path / "secret")
    found = attach(
        finding(
            {"file": "../secret", "line": 2},
            {"file": "link.log", "line": 2},
            {"file": "command line", "line": None},
        ),
        str(logdir),
    )
    assert [e["context"] for e in found[0]["evidence"]] == [None, None, None]
    assert attach(finding({"file": "x", "line": 1}), None)[0]["evidence"][0]["context"] is None


def test_reading_stops_at_the_byte_budget(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "big.log").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    monkeypatch.setattr(context_lines, "MAX_BYTES", 100)
    found = attach(
        finding({"file": "big.log", "line": 3}, {"file": "big.log", "line": 900}), str(tmp_path)
    )
    assert found[0]["evidence"][0]["context"]["after"][0] == {"line": 4, "text": "line 4"}
    assert found[0]["evidence"][1]["context"] is None
