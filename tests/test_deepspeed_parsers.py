"""DeepSpeed launches, ds_config JSON files, and the two DeepSpeed logs of the corpus."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from diagnose.engines import registry
from parsers.deepspeed_cmd import parse_command, parse_include, read_ds_config
from parsers.deepspeed_log import parse_deepspeed_log, sniff_deepspeed
from parsers.launch_cmd import LaunchError

CORPUS = Path(__file__).parent / "data" / "corpus"
LLAMA = "dschat-llama7b-zero3-16gpu-1node-device-mismatch.log"
OPT = "dschat-opt350m-dpo-zero0-8gpu-startup.log"
DS_JSON = """{
  "train_batch_size": 64,
  "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": 2,
  "zero_optimization": {
    "stage": 3,
    "zero_hpz_partition_size": 8
  },
  "expert_parallel": {"enabled": true, "autoep_size": 4},
  "tensor_parallel": {"autotp_size": 2}
}
"""


def values(command: str, **kw) -> dict[str, object]:
    return {k: p.value for k, p in parse_command(command, **kw).params.items()}


def test_deepspeed_runner_with_config_file(tmp_path: Path):
    (tmp_path / "ds.json").write_text(DS_JSON)
    cmd = parse_command(
        "deepspeed --num_gpus 8 --num_nodes=2 train.py --deepspeed_config ds.json --lr 1e-4",
        base_dir=tmp_path,
    )
    got = {k: p.value for k, p in cmd.params.items()}
    assert got["num_gpus"] == 8 and got["nnodes"] == 2 and got["user_script"] == "train.py"
    assert got["train_batch_size"] == 64 and "train_micro_batch_size_per_gpu" not in got
    assert got["zero_stage"] == 3 and got["zero_hpz_partition_size"] == 8
    assert got["ep_size"] == 4 and got["autotp_size"] == 2
    assert str(cmd.params["zero_stage"].source) == "ds.json:6"
    assert cmd.engine == "deepspeed"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("deepspeed --include localhost:0,1,2,3 train.py",
         {"world_info": {"localhost": [0, 1, 2, 3]}}),
        ("deepspeed -H hostfile --num_gpus=4 train.py --moe --ep-world-size 4 --num-experts 8",
         {"hostfile": "hostfile", "num_gpus": 4, "ep_size": 4, "num_experts": 8}),
        ("deepspeed train.py --num-experts 8 16", {"num_experts": [8, 16]}),
        ("CUDA_VISIBLE_DEVICES=0,1 deepspeed train.py --model_name_or_path facebook/opt-350m",
         {"cuda_visible_devices": "0,1", "model_path": "facebook/opt-350m"}),
        ("torchrun --nproc_per_node 8 --nnodes 2 train.py --deepspeed_config x.json",
         {"num_gpus": 8, "nnodes": 2, "deepspeed_config": "x.json"}),
        ("python -m deepspeed.launcher.runner --num_gpus 2 train.py", {"num_gpus": 2}),
    ],
)  # fmt: skip
def test_launch_commands(command: str, expected: dict):
    got = values(command)
    assert {k: got.get(k) for k in expected} == expected


def test_runner_cmd_world_info_is_decoded():
    info = base64.urlsafe_b64encode(json.dumps({"a": [0, 1], "b": [0, 1]}).encode()).decode()
    got = values(f"python -u -m deepspeed.launcher.launch --world_info={info} --master_port=1 m.py")
    assert got["world_info"] == {"a": [0, 1], "b": [0, 1]} and got["user_script"] == "m.py"


@pytest.mark.parametrize(
    "command",
    [
        "torchrun --nproc_per_node 8 pretrain.py --lr 1",
        "python -m sglang.launch_server --tp 8",
        "trtllm-serve m --tp_size 8",
    ],
)
def test_foreign_commands_say_not_a(command: str):
    with pytest.raises(LaunchError, match=r"^not a"):
        parse_command(command)


def test_errors_are_one_line():
    with pytest.raises(LaunchError, match="needs a user script"):
        parse_command("deepspeed --num_gpus 8")
    with pytest.raises(LaunchError, match="--num_gpus expects an integer"):
        parse_command("deepspeed --num_gpus eight train.py")
    assert registry.parse_any_command(["deepspeed", "train.py"]).engine == "deepspeed"


def test_include_without_slots_is_unknown():
    assert parse_include("worker-0@worker-1:0,2") is None
    assert parse_include("worker-0:0,1@worker-1:2") == {"worker-0": [0, 1], "worker-1": [2]}


def test_ds_config_errors_name_file_and_line(tmp_path: Path):
    path = tmp_path / "ds.json"
    path.write_text('{\n  "train_batch_size": 8,\n  "zero_optimization": {"stage": }\n}')
    with pytest.raises(ValueError, match=r"^ds.json:3: not valid JSON"):
        read_ds_config(path, "ds.json")


def test_sniff_claims_ds_configs_not_model_configs():
    assert sniff_deepspeed(DS_JSON)
    assert not sniff_deepspeed('{"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 32}')
    assert sniff_deepspeed((CORPUS / LLAMA).read_text()[:65536])


def test_corpus_llama7b_zero3_facts():
    log = parse_deepspeed_log(CORPUS / LLAMA, LLAMA)
    c = {k: p.value for k, p in log.config.items()}
    assert log.version == "0.9.3"
    assert (c["nnodes"], c["num_local_procs"], c["node_rank"]) == (1, 16, 0)
    assert c["dist_world_size"] == 16 and c["world_size"] == 16
    assert c["world_info"] == {"worker-0": list(range(16))}
    assert c["zero_stage"] == 3
    assert (
        c["train_batch_size"],
        c["train_micro_batch_size_per_gpu"],
        c["gradient_accumulation_steps"],
    ) == (64, 4, 1)
    assert str(log.config["zero_stage"].source) == f"{LLAMA}:1925"
    assert [cmd.params["user_script"].value for cmd in log.commands] == ["main.py"]
    assert log.commands[0].params["world_info"].value == {"worker-0": list(range(16))}
    assert any("Expected all tensors" in e.text for e in log.events if e.kind == "exception")
    hosts = log.hosts.filter(log.hosts["kind"] == "launcher").rows()
    assert hosts == [(7, "worker-0", "10.228.58.153", "launcher")]


def test_corpus_opt350m_zero0_facts():
    log = parse_deepspeed_log(CORPUS / OPT, OPT)
    c = {k: p.value for k, p in log.config.items()}
    assert log.version == "0.16.2"
    assert (c["nnodes"], c["num_local_procs"], c["dist_world_size"], c["world_size"]) == (
        1,
        8,
        8,
        8,
    )
    assert c["zero_stage"] == 0
    assert (
        c["train_batch_size"],
        c["train_micro_batch_size_per_gpu"],
        c["gradient_accumulation_steps"],
    ) == (32, 2, 2)
    assert sorted(set(log.prefixes["rank"].to_list())) == list(range(8))
