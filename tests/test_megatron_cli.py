"""`rankmap check` on Megatron launches: the issue's example, JSON, cross-engine rules."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from diagnose.cli import main

TORCHRUN = ["torchrun", "--nnodes", "2", "--nproc-per-node", "8", "pretrain_gpt.py"]
ISSUE = [
    *TORCHRUN,
    "--tensor-model-parallel-size", "2", "--context-parallel-size", "2",
    "--pipeline-model-parallel-size", "2", "--expert-model-parallel-size", "2",
    "--num-experts", "8", "--sequence-parallel", "--seq-length", "4096",
]  # fmt: skip
ORDER = [
    "DP-CP", "INTRA_DP-CP", "DP", "CP", "MP", "TP", "PP", "EMB", "POS_EMB", "TP-DP-CP", "TP-DP",
    "TP-CP", "EP", "ETP", "ETP-EP", "ETP-EP-PP", "EDP", "INTRA_EDP", "DISTOPT",
]  # fmt: skip


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def check_json(*argv: str) -> tuple[int, dict]:
    code, out = run("check", "--json", "-", *argv)
    return code, json.loads(out[out.index('{\n  "schema"') :])


def model_config(tmp_path: Path, **fields: object) -> str:
    base = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(base | fields))
    return str(path)


def test_issue_example_prints_every_group_in_megatron_order_and_exits_0():
    code, out = run("check", "--", *ISSUE)
    assert code == 0, out
    assert "rankmap · megatron (version unknown) · world 16 · 2 node(s)" in out
    group_lines = [
        line.split()[0]
        for line in out.split("Groups (in the engine's creation order):")[1]
        .split("Findings:")[0]
        .splitlines()
        if line.startswith("  ") and not line.startswith("     ")
    ]
    assert group_lines == ORDER
    assert "[0,2] [1,3] [4,6] [5,7] [8,10] [9,11]" in out  # CP, and EP folded onto it
    assert "MoE parallel folding" in out
    assert "gloo twin `DATA_PARALLEL_GROUP_GLOO`" in out
    assert "RM103" in out and "error" not in out.split("Findings:")[1]


def test_issue_example_json():
    code, doc = check_json("--", *ISSUE)
    assert code == 0
    assert doc["engine"] == "megatron" and doc["world_size"] == 16 and doc["nnodes"] == 2
    assert doc["layout_version"].startswith("core 0.13")
    kinds = [g["kind"] for g in doc["groups"]]
    assert kinds[0] == "DATA_PARALLEL_GROUP_WITH_CP"
    assert "EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP" in kinds
    groups = {g["kind"]: g for g in doc["groups"]}
    assert groups["EXPERT_MODEL_PARALLEL_GROUP"]["cut"] == "experts"
    assert groups["CONTEXT_PARALLEL_GROUP"]["cut"] == "sequences"
    assert groups["INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP"]["alias_of"] == (
        "EXPERT_DATA_PARALLEL_GROUP"
    )
    assert groups["PIPELINE_MODEL_PARALLEL_GROUP"]["crosses_nodes"] is True
    assert groups["TENSOR_MODEL_PARALLEL_GROUP"]["crosses_nodes"] is False
    assert doc["params"]["world_size"]["source"].startswith("inferred: torchrun WORLD_SIZE")
    derived = {d["name"]: d for d in doc["derived"]}
    assert derived["min_gpus"]["value"] == 8
    assert derived["expert_data_parallel_size"]["value"] == 2
    assert doc["coords"]["11"] == (
        "rank 11: PP1 · DP0 · CP1 · TP1 · EDP0 · EP1 · ETP1 · node1 GPU3"
    )
    assert [f["rule"] for f in doc["findings"]] == ["RM103"]


def test_tp_across_nodes_through_the_shape():
    code, out = run("check", "--fail-on", "warning", "--", *TORCHRUN,
                    "--tensor-model-parallel-size", "16")  # fmt: skip
    assert code == 1
    assert "RM101" in out and "The TP group of 16 spans 2 nodes" in out
    assert "--tensor-model-parallel-size ≤ 8" in out


def test_idle_gpus_through_the_shape():
    code, out = run("check", "--gpus-per-node", "8", "--", "torchrun", "--nnodes", "2",
                    "--nproc-per-node", "4", "pretrain_gpt.py")  # fmt: skip
    assert code == 0
    assert "RM102" in out and "Each node runs 4 of its 8 GPUs" in out


def test_expert_parallel_across_nodes_without_all_to_all():
    argv = [*TORCHRUN, "--expert-model-parallel-size", "16", "--num-experts", "64"]
    _, out = run("check", "--", *argv)
    assert "RM104" in out and "EP groups of 16 span nodes" in out
    _, out = run("check", "--", *argv, "--moe-token-dispatcher-type", "alltoall")
    assert "RM104" not in out


def test_model_shape_rules_through_the_shape(tmp_path: Path):
    heads = model_config(tmp_path, num_attention_heads=10)
    _, out = run("check", "--model-config", heads, "--", *TORCHRUN,
                 "--tensor-model-parallel-size", "4")  # fmt: skip
    assert "RM201" in out and "not divisible by tensor_model_parallel_size = 4" in out
    layers = model_config(tmp_path, num_hidden_layers=30)
    code, out = run("check", "--model-config", layers, "--", *TORCHRUN,
                    "--pipeline-model-parallel-size", "4")  # fmt: skip
    assert code == 1
    assert "RM205" in out and "[8, 8, 7, 7]" in out
    assert "RM513" in out and "Number of layers should be divisible" in out
    dense = model_config(tmp_path)
    _, out = run("check", "--model-config", dense, "--", *TORCHRUN,
                 "--expert-model-parallel-size", "2", "--num-experts", "8")  # fmt: skip
    assert "RM206" in out


def test_refused_layout_exits_1_with_megatron_words():
    argv = ["torchrun", "--nnodes", "3", "--nproc-per-node", "8", "pretrain_gpt.py",
            "--tensor-model-parallel-size", "4", "--pipeline-model-parallel-size", "2",
            "--context-parallel-size", "2"]  # fmt: skip
    code, out = run("check", "--", *argv)
    assert code == 1
    assert "No groups: world_size (24) is not divisible by 16" in out
    assert "RM501" in out


def test_unknown_world_is_a_clear_message():
    code, out = run("check", "--", "torchrun", "--nnodes", "1:4", "--nproc-per-node", "8",
                    "pretrain_gpt.py")  # fmt: skip
    assert "the world size is unknown" in out
    code, out = run("check", "--nnodes", "2", "--", "torchrun", "--nnodes", "1:4",
                    "--nproc-per-node", "8", "pretrain_gpt.py")  # fmt: skip
    assert code == 0 and "world 16" in out


def test_explain_megatron_rule():
    code, out = run("explain", "RM503")
    assert code == 0 and "pp × max(tp × cp, ep × etp)" in out
