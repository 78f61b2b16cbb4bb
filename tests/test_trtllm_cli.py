"""`rankmap check` on TensorRT-LLM commands: every group in Mapping's order, explained, with
the engine's own refusals and the cross-engine rules working through its Shape."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from diagnose.cli import main

SERVE = ["trtllm-serve", "deepseek-ai/DeepSeek-V3"]
LLAMA = ["trtllm-serve", "meta-llama/Llama-3.1-70B-Instruct"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def check_json(*argv: str) -> tuple[int, dict]:
    code, out = run("check", "--json", "-", *argv)
    return code, json.loads(out[out.index('{\n  "schema"') :])


def findings(doc: dict) -> dict[str, str]:
    return {f["rule"]: f["message"] for f in doc["findings"]}


def test_issue_example_prints_every_group_in_mapping_order():
    code, out = run("check", "--", *SERVE, "--tp_size", "8", "--ep_size", "8")
    assert code == 0
    order = ["PP ", "CP ", "TP ", "MOE_TP ", "MOE_CLUSTER ", "MOE_EP ", "ATTN_TP "]
    positions = [out.index(f"\n  {label}") for label in order]
    assert positions == sorted(positions)
    assert "[0,1,2,3,4,5,6,7]" in out
    assert "From moe_ep_size=8 (command line)" in out
    assert "moe_tp_size = moe_world_size // (moe_ep_size × moe_cluster_size) = 8 // (8 × 1)" in out
    assert "RM203" in out and "enable_attention_dp: true" in out  # MLA with attention TP 8


def test_issue_example_json_follows_rankmap_1():
    code, doc = check_json("--", *SERVE, "--tp_size", "8", "--ep_size", "8")
    assert code == 0
    assert doc["engine"] == "trtllm" and doc["world_size"] == 8 and doc["nnodes"] == 1
    assert doc["layout_version"].startswith("current")
    kinds = [g["kind"] for g in doc["groups"]]
    assert kinds == [
        "world",
        "pp_group",
        "cp_group",
        "tp_group",
        "moe_tp_group",
        "moe_cluster_group",
        "moe_ep_group",
        "attn_tp_group",
    ]
    g = {x["kind"]: x for x in doc["groups"]}
    assert g["moe_ep_group"]["cut"] == "experts" and g["moe_ep_group"]["label"] == "MOE_EP"
    assert g["attn_tp_group"]["alias_of"] == "tp_group"
    assert g["attn_tp_group"]["ranks"] == g["tp_group"]["ranks"]
    assert doc["params"]["moe_ep_size"] == {"value": 8, "source": "command line"}
    assert doc["params"]["mpi_size"]["value"] is None
    assert set(findings(doc)) == {"RM203"}


def test_attention_dp_silences_mla_warning_and_shows_attention_dp(tmp_path, monkeypatch):
    (tmp_path / "extra.yaml").write_text("enable_attention_dp: true\n")
    monkeypatch.chdir(tmp_path)
    code, doc = check_json(
        "--", *SERVE, "--tp_size", "8", "--ep_size", "8", "--config", "extra.yaml"
    )
    assert code == 0 and "RM203" not in findings(doc)
    g = {x["kind"]: x for x in doc["groups"]}
    assert g["attn_dp_group"]["alias_of"] == "tp_group" and g["attn_dp_group"]["cut"] == "requests"
    assert doc["params"]["enable_attention_dp"]["source"].endswith("extra.yaml:1")


def test_tp16_over_two_nodes_warns_rm101_with_trtllm_flags():
    _, doc = check_json("--gpus-per-node", "8", "--nnodes", "2", "--", *LLAMA, "--tp_size", "16")
    msg = findings(doc)
    assert "RM101" in msg and "spans 2 nodes" in msg["RM101"]
    fix = next(f["fix"] for f in doc["findings"] if f["rule"] == "RM101")
    assert "--tp_size 8 --pp_size 2" in fix


def test_pp_across_nodes_is_fine_and_layers_split_first_stages():
    _, doc = check_json(
        "--gpus-per-node", "8", "--nnodes", "4", "--", *SERVE, "--tp_size", "8", "--pp_size", "4"
    )
    msg = findings(doc)
    assert "RM101" not in msg and "RM103" in msg
    assert "[16, 15, 15, 15]" in msg["RM205"]
    assert doc["nnodes"] == 4


def test_model_shape_rules_read_trtllm_sizes():
    _, doc = check_json("--", *SERVE, "--tp_size", "6", "--ep_size", "3")
    assert "not divisible by the EP size 3" in findings(doc)["RM204"]
    assert (
        "128 attention heads, not divisible by attn_tp_size × attn_cp_size = 6"
        in (findings(doc)["RM201"])
    )
    _, doc = check_json("--", *LLAMA, "--tp_size", "8", "--ep_size", "2")
    assert "EP size 2 is set" in findings(doc)["RM206"]


def test_gpu_fit_counts_ranks_per_node():
    _, doc = check_json("--gpus-per-node", "8", "--", *LLAMA, "--tp_size", "16")
    assert "GPU ids up to 15" in findings(doc)["RM102"]


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["mpirun", "-n", "16", *LLAMA, "--tp_size", "8"], "RM601"),
        ([*SERVE, "--tp_size", "8", "--ep_size", "3"], "RM602"),
        ([*SERVE, "--tp_size", "4", "--cp_size", "2", "--ep_size", "2"], "RM604"),
    ],
)
def test_refusals_exit_1(argv: list[str], rule: str):
    code, out = run("check", "--", *argv)
    assert code == 1 and rule in out


def test_explain_names_new_rules():
    code, out = run("explain", "RM601")
    assert code == 0 and "mpiSize == tp * pp" in out
