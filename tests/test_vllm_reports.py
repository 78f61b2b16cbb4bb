"""End to end: `rankmap check` on a vLLM command and `rankmap report` on the Ray corpus logs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from diagnose.analyze import Options, analyse
from diagnose.cli import main
from diagnose.reading import read_inputs
from diagnose.result import document

CORPUS = Path(__file__).parent / "data" / "corpus"
RAY_LOGS = ["deepseek-v2.5-tp8-pp2-2node-ray-ib.log", "deepseek-v2.5-tp8-pp2-2node-ray-noib.log"]
DSV3_CHECK = (
    "vllm serve deepseek-ai/DeepSeek-V3 -tp 4 -pp 2 -dp 2 --enable-expert-parallel --nnodes 2"
)
HOSTS = {"deepseek-v2.5-tp8-pp2-2node-ray-ib.log": "10.244.1.107"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_check_dsv3_prints_every_group_in_vllm_order_with_findings():
    code, out = run("check", "--fail-on", "never", "--", *DSV3_CHECK.split())
    assert code == 0
    labels = re.findall(r"^  ([A-Z]+) +\d+ × ", out, flags=re.M)
    assert labels == ["TP", "ETP", "DCP", "PCP", "PP", "DP", "EP"]
    assert "[0,8] [4,12] [1,9] [5,13] [2,10] [6,14]" in out
    assert "[0,1,2,3,8,9,10,11] [4,5,6,7,12,13,14,15] crosses nodes" in out
    assert "vLLM has no EP size: it is always dp × pcp × tp = 2 × 1 × 4 = 8" in out
    code, out = run("check", "--json", "-", "--fail-on", "never", "--", *DSV3_CHECK.split())
    doc = json.loads(out[out.index('{\n  "schema"') :])
    assert doc["engine"] == "vllm" and doc["world_size"] == 16 and doc["nnodes"] == 2
    rules = sorted({f["rule"] for f in doc["findings"]})
    assert rules == ["RM104", "RM203", "RM205"]
    assert doc["coords"]["13"].startswith("rank 13: DP1 · PP1 · TP1 · EP5 · node1 GPU5")
    etp = next(g for g in doc["groups"] if g["kind"] == "etp")
    assert etp["alias_of"] == "tp" and not etp["built"]
    assert {g["kind"]: g["cut"] for g in doc["groups"]}["ep"] == "experts"


def report(tmp_path: Path, name: str) -> dict:
    (tmp_path / "logs").mkdir()
    shutil.copy(CORPUS / name, tmp_path / "logs" / name)
    found = read_inputs(tmp_path / "logs")
    return document(analyse(found, Options(), "report"))


@pytest.mark.parametrize("name", RAY_LOGS)
def test_ray_report_tp_inside_nodes_pp_across(tmp_path: Path, name: str):
    doc = report(tmp_path, name)
    assert doc["engine"] == "vllm" and doc["engine_version"] == "0.8.3"
    assert doc["world_size"] == 16 and doc["nnodes"] == 2
    p = {k: v["value"] for k, v in doc["params"].items()}
    assert (p["tensor_parallel_size"], p["pipeline_parallel_size"]) == (8, 2)
    assert p["data_parallel_size"] == 1 and p["distributed_executor_backend"] == "ray"
    groups = {g["kind"]: g for g in doc["groups"]}
    assert list(groups) == ["world", "tp", "pp", "dp"]
    assert groups["tp"]["ranks"] == [list(range(8)), list(range(8, 16))]
    assert not groups["tp"]["crosses_nodes"]
    assert groups["pp"]["ranks"][:2] == [[0, 8], [1, 9]] and groups["pp"]["crosses_nodes"]
    rules = {f["rule"]: f for f in doc["findings"]}
    assert rules["RM103"]["severity"] == "info"
    nodes = {p["rank"]: p["node"] for p in doc["placement"]}
    assert [nodes[r] for r in range(16)] == [0] * 8 + [1] * 8
    if name.endswith("-noib.log"):  # the layout is the same; the network is not
        assert set(rules) == {"RM103", "RM120"} and "TCP sockets" in rules["RM120"]["message"]
        assert doc["verdict"]["status"] == "error"
    else:
        assert set(rules) == {"RM103"} and doc["verdict"]["status"] == "ok"
        links = {(tuple(sorted(filter(None, x["hosts"]))), x["transport"]) for x in doc["links"]}
        assert any(t == "NET/IB" for _, t in links)


@pytest.mark.parametrize("name", RAY_LOGS)
def test_ray_report_names_hosts_from_the_ray_prefixes(tmp_path: Path, name: str):
    doc = report(tmp_path, name)
    hosts = {p["rank"]: p["host"] for p in doc["placement"]}
    assert hosts[0] == "deepseek-v2-5-0" and hosts[15] == "deepseek-v2-5-0-1"
    pp = next(g for g in doc["groups"] if g["kind"] == "pp")
    assert pp["hosts"][0] == ["deepseek-v2-5-0", "deepseek-v2-5-0-1"]


def test_report_command_writes_html_for_a_vllm_log(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    shutil.copy(CORPUS / RAY_LOGS[0], tmp_path / "logs" / RAY_LOGS[0])
    html = tmp_path / "r.html"
    code, out = run("report", str(tmp_path / "logs"), "-o", str(html))
    assert code == 0, out
    assert "rankmap · vllm 0.8.3 · world 16 · 2 node(s)" in out
    assert "RM103" in out and html.read_text().lower().startswith("<!doctype html>")
