"""The command line: exit codes, the JSON contract, the pre-flight gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from diagnose.cli import main

LAUNCH = ["python", "-m", "sglang.launch_server"]
DSV3 = ["--model-path", "deepseek-ai/DeepSeek-V3"]
GROUP_KEYS = {"kind", "label", "cut", "ranks", "alias_of", "explanation", "hosts"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def check_json(*argv: str) -> tuple[int, dict]:
    code, out = run("check", "--json", "-", "--", *argv)
    start = out.index('{\n  "schema"')
    return code, json.loads(out[start:])


def test_seed_situation_prints_every_group_and_exits_0():
    code, out = run("check", "--", *LAUNCH, *DSV3, "--tp", "8", "--dp", "2",
                    "--enable-dp-attention", "--attn-cp-size", "2")  # fmt: skip
    assert code == 0
    for label in ("TP", "ATTN_CP", "ATTN_TP", "MOE_DP", "MOE_EP", "MOE_TP", "PP"):
        assert f"  {label} " in out
    assert "[0,2] [1,3] [4,6] [5,7]" in out
    assert "SGLang makes MOE_DP the ATTN_CP group" in out


def test_tp16_over_two_nodes_fails_on_warning():
    code, out = run("check", "--gpus-per-node", "8", "--fail-on", "warning", "--",
                    *LAUNCH, *DSV3, "--tp", "16", "--nnodes", "2")  # fmt: skip
    assert code == 1
    assert "RM101" in out and "spans 2 nodes" in out


def test_tp16_over_two_nodes_passes_default_fail_on():
    code, _ = run("check", "--gpus-per-node", "8", "--", *LAUNCH, *DSV3, "--tp", "16",
                  "--nnodes", "2")  # fmt: skip
    assert code == 0


def test_tp12_dp8_is_refused_like_sglang():
    code, out = run("check", "--", *LAUNCH, *DSV3, "--tp", "12", "--dp", "8",
                    "--enable-dp-attention")  # fmt: skip
    assert code == 1
    assert "RM003" in out and "tp_size (12) is not divisible by the attention DP size (8)" in out


def test_check_json_follows_rankmap_1():
    code, doc = check_json(*LAUNCH, "--tp", "8", "--dp", "2", "--enable-dp-attention",
                           "--attn-cp-size", "2")  # fmt: skip
    assert code == 0
    assert doc["schema"] == "rankmap/1"
    assert doc["engine"] == "sglang" and doc["engine_version"] is None
    assert doc["world_size"] == 8 and doc["nnodes"] == 1
    assert doc["params"]["attn_cp_size"] == {"value": 2, "source": "command line"}
    assert doc["params"]["moe_dp_size"] == {"value": 1, "source": "default"}
    kinds = {g["kind"]: g for g in doc["groups"]}
    assert kinds["attn_cp"]["ranks"] == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert kinds["attn_cp"]["cut"] == "sequences" and kinds["attn_cp"]["label"] == "ATTN_CP"
    assert kinds["moe_dp"]["alias_of"] == "attn_cp"
    assert kinds["moe_dp"]["ranks"] == kinds["attn_cp"]["ranks"]
    for g in doc["groups"]:
        assert set(g) >= GROUP_KEYS
    assert doc["placement"][6] == {
        "rank": 6, "host": "node0", "gpu": 6, "node": 0, "replica": 0, "pid": None,
        "nccl_version": None,
    }  # fmt: skip
    assert doc["gpus_per_node"] is None
    for f in doc["findings"]:
        assert {"rule", "severity", "message", "evidence", "fix"} <= set(f)


def test_rewrite_is_recorded_as_provenance():
    _, doc = check_json(*LAUNCH, "--tp", "16", "--moe-a2a-backend", "deepep", "--nnodes", "2")
    assert doc["params"]["ep_size"]["value"] == 16
    assert doc["params"]["ep_size"]["source"].startswith("engine rewrite:")


def test_unknown_launch_command_is_a_usage_error():
    code, out = run("check", "--", "python", "train.py", "--tp", "8")
    assert code == 2
    assert "not a launch command of a known engine" in out


def test_ambiguous_flag_is_rejected_as_argparse_would():
    code, out = run("check", "--", *LAUNCH, "--tp", "8", "--pp", "2")
    assert code == 2 and "ambiguous option: --pp" in out


def test_report_without_logdir_uses_the_bundled_sample(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run("report")
    assert code == 0
    assert "bundled sample" in out
    html = (tmp_path / "rankmap-report.html").read_text()
    assert html.startswith("<!doctype html>")


def test_report_on_an_empty_directory_exits_2(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "notes.txt").write_text("nothing here\n")
    code, out = run("report", str(tmp_path / "logs"), "-o", str(tmp_path / "r.html"))
    assert code == 2
    assert "notes.txt" in out and "Traceback" not in out


def test_report_accounts_for_every_file(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "launch.sh").write_text("python -m sglang.launch_server --tp 4 --model-path m\n")
    (logs / "trace.json.gz").write_bytes(b"\x1f\x8b\x08\x00rest")
    (logs / "notes.txt").write_text("hello\n")
    (logs / "bad.json").write_text('{"architectures": ["X"], "num_hidden_layers": "many"}')
    code, out = run("report", str(logs), "-o", str(tmp_path / "r.html"), "--json",
                    str(tmp_path / "r.json"))  # fmt: skip
    assert code == 0, out
    inputs = {i["path"]: i for i in json.loads((tmp_path / "r.json").read_text())["inputs"]}
    assert inputs["launch.sh"]["status"] == "parsed"
    assert inputs["trace.json.gz"]["status"] == "skipped"
    assert inputs["notes.txt"]["status"] == "skipped"
    assert inputs["bad.json"]["status"] == "failed" and "bad.json" in inputs["bad.json"]["reason"]


@pytest.mark.parametrize("name", ["ATTN_CP", "MOE_DP", "MOEDP", "attn_tp", "EP", "SP", "ATTN_DP"])
def test_explain_group_kinds(name: str):
    code, out = run("explain", name)
    assert code == 0 and "cut:" in out


def test_explain_rule_and_unknown():
    code, out = run("explain", "RM101")
    assert code == 0 and "What it checks" in out and "900 GB/s" in out
    code, out = run("explain", "NOPE")
    assert code == 2


def test_rules_lists_the_catalogue():
    code, out = run("rules")
    assert code == 0 and "RM001" in out and "RM101" in out and "RM304" in out
