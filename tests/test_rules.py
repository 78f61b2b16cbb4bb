"""Every rule against its data-driven fixtures in tests/rule_cases/RMxxx.json.

A case is a launch command (pre-flight) or a small set of log files, the options rankmap
gets, and whether the rule must fire (with a message fragment) or stay silent.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from diagnose.analyze import Options, analyse
from diagnose.engines.registry import parse_any_command
from diagnose.reading import Inputs, read_inputs
from rules.catalog import RULES

CASES_DIR = Path(__file__).parent / "rule_cases"


def _cases():
    for path in sorted(CASES_DIR.glob("RM*.json")):
        doc = json.loads(path.read_text())
        for case in doc["cases"]:
            yield pytest.param(doc["rule"], case, id=f"{doc['rule']}-{case['name']}")


def _findings(case: dict, tmp_path: Path):
    options = Options(**case.get("options", {}))
    if "model_config" in case:
        options.model_config = tmp_path / "config.json"
        options.model_config.write_text(json.dumps(case["model_config"]))
    if "files" in case:
        for name, text in case["files"].items():
            (tmp_path / "logs").mkdir(exist_ok=True)
            (tmp_path / "logs" / name).write_text(text)
        found = read_inputs(tmp_path / "logs")
        return analyse(found, options, "report").findings
    options.engine_version = case.get("version")
    cmd = parse_any_command(shlex.split(case["command"]))
    return analyse(Inputs(), options, "check", extra_commands=[cmd]).findings


@pytest.mark.parametrize(("rule_id", "case"), list(_cases()))
def test_rule_case(rule_id: str, case: dict, tmp_path: Path):
    mine = [f for f in _findings(case, tmp_path) if f.rule == rule_id]
    if case["expect"] == "pass":
        assert not mine, [f.message for f in mine]
        return
    assert mine, f"{rule_id} did not fire"
    messages = " | ".join(f.message for f in mine)
    assert case["message"] in messages
    if "severity" in case:
        assert {f.severity for f in mine} == {case["severity"]}


def test_every_rule_has_passing_and_failing_fixtures():
    for rule in RULES:
        path = CASES_DIR / f"{rule.id}.json"
        assert path.exists(), f"no fixtures for {rule.id}"
        expects = {c["expect"] for c in json.loads(path.read_text())["cases"]}
        assert expects == {"pass", "fail"}, rule.id


def test_every_rule_documents_itself():
    for rule in RULES:
        assert rule.title and rule.what and rule.why and rule.fix
        assert rule.id in rule.doc()
        assert any(ch.isdigit() for ch in rule.why), f"{rule.id}: why without numbers"
