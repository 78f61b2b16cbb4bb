"""`rankmap check` on DeepSpeed launches with a ds_config fixture, and `rankmap report` on
the two DeepSpeed logs of the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from diagnose.cli import main

CORPUS = Path(__file__).parent / "data" / "corpus"
DS_JSON = {
    "train_batch_size": 64,
    "train_micro_batch_size_per_gpu": 4,
    "gradient_accumulation_steps": 2,
    "zero_optimization": {"stage": 3, "zero_hpz_partition_size": 4},
}
LAUNCH = ["deepspeed", "--num_gpus", "8", "train.py", "--deepspeed_config", "ds.json"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def as_json(out: str) -> dict:
    return json.loads(out[out.index('{\n  "schema"') :])


@pytest.fixture
def fixture_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "ds.json").write_text(json.dumps(DS_JSON, indent=2))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_prints_every_group_in_creation_order(fixture_dir: Path):
    code, out = run("check", "--", *LAUNCH, "--moe", "--ep-world-size", "4", "--num-experts", "8")
    assert code == 0
    positions = [out.index(f"\n  {label} ") for label in ("EDP", "EP", "DP", "HPZ")]
    assert positions == sorted(positions)
    assert "[0,4] [1,5] [2,6] [3,7]" in out  # expert-DP, stride ep_size
    assert "[0,1,2,3] [4,5,6,7]" in out  # EP and hpZ blocks
    assert "train_batch_size = micro 4 × grad_acc 2 × DP 8 = 64" in out
    assert "ZeRO-3" in out and "zero_optimization.stage=3, ds.json:" in out
    assert "8 experts → 2 per rank" in out
    assert "Findings:" not in out


def test_check_json_of_the_issue_example(fixture_dir: Path):
    code, out = run("check", "--json", "-", "--", *LAUNCH)
    doc = as_json(out)
    assert code == 0 and doc["engine"] == "deepspeed"
    assert doc["world_size"] == 8 and doc["nnodes"] == 1
    assert [g["kind"] for g in doc["groups"]] == [
        "world",
        "data_parallel",
        "zero_param_intra_parallel",
    ]
    assert doc["params"]["zero_stage"] == {"value": 3, "source": "ds.json:6"}
    assert doc["params"]["dist_world_size"]["source"] == "inferred: num_gpus × nnodes = 8 × 1"
    derived = {d["name"]: d["formula"] for d in doc["derived"]}
    assert (
        derived["train_batch_size"] == "train_batch_size = micro × grad_acc × DP = 4 × 2 × 8 = 64"
    )
    assert doc["findings"] == []


def test_check_on_16_gpus_fails_the_batch_assertion(fixture_dir: Path):
    code, out = run("check", "--", "deepspeed", "--num_gpus", "8", "--num_nodes", "2",
                    *LAUNCH[3:])  # fmt: skip
    assert code == 1
    assert "RM701" in out and "64 != 4 * 2 * 16" in out


def test_check_flags_num_experts_as_ep_size(fixture_dir: Path):
    code, out = run("check", "--", *LAUNCH, "--moe", "--ep-world-size", "64", "--num-experts", "64")
    assert code == 1 and "RM703" in out and "ep_size equals num_experts (64)" in out


def test_cross_engine_rules_through_the_deepspeed_shape(fixture_dir: Path):
    _, out = run("check", "--json", "-", "--gpus-per-node", "8", "--",
                    "deepspeed", "--num_gpus", "4", "train.py", "--deepspeed_config", "ds.json",
                    "--model_name_or_path", "mistralai/Mixtral-8x7B-v0.1", "--moe",
                    "--ep-world-size", "4")  # fmt: skip
    rules = {f["rule"]: f["message"] for f in as_json(out)["findings"]}
    assert "runs 4 of its 8 GPUs" in rules["RM102"]
    assert "RM204" not in rules  # 8 experts over EP 4
    (fixture_dir / "tp.json").write_text('{"train_micro_batch_size_per_gpu": 1, '
                                         '"tensor_parallel": {"autotp_size": 16}}')  # fmt: skip
    _, out = run("check", "--json", "-", "--", "deepspeed", "--num_gpus", "8", "--num_nodes",
                    "2", "train.py", "--deepspeed_config", "tp.json",
                    "--model_name_or_path", "meta-llama/Llama-3.1-70B-Instruct")  # fmt: skip
    doc = as_json(out)
    rules = {f["rule"]: f["message"] for f in doc["findings"]}
    assert "The TP group of 16 spans 2 nodes" in rules["RM101"]
    kinds = [g["kind"] for g in doc["groups"]]
    assert kinds == ["world", "data_parallel", "tensor_model_parallel", "model_parallel"]


@pytest.mark.parametrize(
    ("name", "world", "stage", "batch"),
    [
        ("dschat-llama7b-zero3-16gpu-1node-device-mismatch.log", 16, 3, "4 × 1 × 16 = 64"),
        ("dschat-opt350m-dpo-zero0-8gpu-startup.log", 8, 0, "2 × 2 × 8 = 32"),
    ],
)
def test_report_on_corpus_logs(tmp_path: Path, name: str, world: int, stage: int, batch: str):
    _, out = run("report", str(CORPUS / name), "-o", str(tmp_path / "r.html"), "--json", "-")
    doc = as_json(out)
    assert doc["engine"] == "deepspeed" and doc["layout_error"] is None
    assert doc["world_size"] == world and doc["nnodes"] == 1
    assert doc["params"]["zero_stage"]["value"] == stage
    assert doc["params"]["world_size"]["value"] == world  # the config dump's DP size
    dp = next(g for g in doc["groups"] if g["kind"] == "data_parallel")
    assert dp["ranks"] == [list(range(world))]
    derived = {d["name"]: d for d in doc["derived"]}
    assert derived["dp_world_size"]["value"] == world
    assert derived["train_batch_size"]["formula"].endswith(batch)
    assert not [f for f in doc["findings"] if f["rule"].startswith("RM7")]
    assert doc["placement"][world - 1]["gpu"] == world - 1


def test_report_reads_a_launch_script_and_its_config(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run.sh").write_text("#!/bin/bash\n" + " ".join(LAUNCH) + "\n")
    (logs / "ds.json").write_text(json.dumps(DS_JSON, indent=2))
    code, out = run("report", str(logs), "-o", str(tmp_path / "r.html"), "--json", "-")
    doc = as_json(out)
    assert code == 0 and doc["world_size"] == 8
    assert {i["path"]: i["status"] for i in doc["inputs"]} == {
        "ds.json": "parsed",
        "run.sh": "parsed",
    }
    assert doc["params"]["train_batch_size"]["source"] == "ds.json:2"
