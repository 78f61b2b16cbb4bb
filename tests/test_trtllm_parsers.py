"""TensorRT-LLM launch commands, YAML overrides, logs and engine config.json files.

The log lines below are written in the formats TensorRT-LLM's own code prints (C++
`TLLM_LOG_INFO("MPI size: %d, rank: %d")`, `"Rank %d is using GPU %d"`, the Python logger's
`[TRT-LLM] [RANK r]` prefix); no real TensorRT-LLM log is in the shared corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnose.engines import registry
from parsers.launch_cmd import LaunchError
from parsers.trtllm_cmd import parse_command, read_llm_api_yaml
from parsers.trtllm_log import parse_trtllm_log, sniff_trtllm


def values(command: str, **kw) -> dict[str, object]:
    return {k: p.value for k, p in parse_command(command, **kw).params.items()}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("trtllm-serve deepseek-ai/DeepSeek-V3 --tp_size 8 --ep_size 8",
         {"tp_size": 8, "moe_ep_size": 8}),
        ("trtllm-serve serve m --tensor_parallel_size=4 --pp_size 2", {"tp_size": 4, "pp_size": 2}),
        ("trtllm-serve --tp 2 --ep 2 m", {"tp_size": 2, "moe_ep_size": 2, "model_path": "m"}),
        ("trtllm-serve m --cp_size 2 --cluster_size 2", {"cp_size": 2, "moe_cluster_size": 2}),
        ("python3 -u -m tensorrt_llm.commands.serve m --tp_size 4", {"tp_size": 4}),
        ("CUDA_VISIBLE_DEVICES=0,1 trtllm-serve m --tp_size 2 --trust_remote_code", {"tp_size": 2}),
        ("mpirun -n 16 --allow-run-as-root -x NCCL_DEBUG=INFO trtllm-llmapi-launch "
         "trtllm-serve m --tp_size 8 --pp_size 2", {"mpi_size": 16, "tp_size": 8}),
        ("mpirun -np 8 --npernode 4 --mca btl tcp,self trtllm-serve m --tp_size 8",
         {"mpi_size": 8, "mpi_ranks_per_node": 4}),
        ("trtllm-build --checkpoint_dir ckpt --world_size 8 --tp_size 4 --pp_size 2",
         {"mpi_size": 8, "tp_size": 4, "pp_size": 2}),
        ("python examples/llama/convert_checkpoint.py --model_dir m --tp-size 4 --pp-size 2",
         {"tp_size": 4, "pp_size": 2}),
    ],
)  # fmt: skip
def test_launch_commands(command: str, expected: dict):
    got = values(command)
    assert {k: got.get(k) for k in expected} == expected
    assert parse_command(command).engine == "trtllm"


@pytest.mark.parametrize(
    "command",
    ["python -m sglang.launch_server --tp 8", "deepspeed train.py", "echo trtllm-serve"],
)
def test_foreign_commands_say_not_a(command: str):
    with pytest.raises(LaunchError, match=r"^not a"):
        parse_command(command)


def test_bad_values_are_clear_errors():
    with pytest.raises(LaunchError, match="--tp_size expects an integer"):
        parse_command("trtllm-serve m --tp_size eight")
    with pytest.raises(LaunchError, match="requires an argument"):
        parse_command("trtllm-serve m --tp_size")


def test_registry_routes_trtllm_commands():
    cmd = registry.parse_any_command(["trtllm-serve", "m", "--tp_size", "8"])
    assert cmd.engine == "trtllm"


def test_yaml_overrides_the_flags(tmp_path: Path):
    (tmp_path / "extra.yaml").write_text(
        "# serving options\n"
        "enable_attention_dp: true\n"
        "moe_expert_parallel_size: 4\n"
        "cp_config:\n"
        "  cp_type: HELIX\n"
        "kv_cache_config:\n"
        "  free_gpu_memory_fraction: 0.8\n"
        "pp_partition: [16, 15, 15, 15]\n"
    )
    got = values("trtllm-serve m --tp_size 8 --ep_size 8 --config extra.yaml", base_dir=tmp_path)
    assert got["enable_attention_dp"] is True
    assert got["moe_ep_size"] == 4 and got["cp_type"] == "HELIX"
    assert got["pp_partition"] == [16, 15, 15, 15]
    params = read_llm_api_yaml(tmp_path / "extra.yaml")
    assert params["moe_ep_size"].source.line == 3
    assert read_llm_api_yaml(tmp_path / "missing.yaml") == {}


LOG = """\
[TensorRT-LLM] TensorRT-LLM version: 1.2.0rc4
$ mpirun -n 4 --allow-run-as-root trtllm-llmapi-launch trtllm-serve m --tp_size 4
[TensorRT-LLM][INFO] MPI size: 4, MPI local size: 4, rank: 0
[TensorRT-LLM][INFO] Rank 0 is using GPU 0
[11/03/2025-10:00:00] [TRT-LLM] [RANK 1] [I] Mapping(tp_size=4, pp_size=1, cp_size=1, moe_tp_size=2, moe_ep_size=2, enable_attention_dp=True)
[TensorRT-LLM][ERROR] Assertion failed: mpiSize == tp * pp (/src/worldConfig.cpp:95)
"""  # noqa: E501


def test_log_facts(tmp_path: Path):
    path = tmp_path / "serve.log"
    path.write_text(LOG)
    assert sniff_trtllm(LOG)
    log = parse_trtllm_log(path, "serve.log")
    assert log.version == "1.2.0rc4"
    config = {k: p.value for k, p in log.config.items()}
    assert config["tp_size"] == 4 and config["moe_ep_size"] == 2
    assert config["enable_attention_dp"] is True
    assert config["mpi_size"] == 4 and config["mpi_ranks_per_node"] == 4
    assert log.config["moe_ep_size"].source.line == 5
    assert log.prefixes["rank"].to_list() == [0, 0, 1]
    assert log.prefixes["gpu"].to_list()[1] == 0
    kinds = [e.kind for e in log.events]
    assert "mpi_size_check" in kinds
    assert [c.params["mpi_size"].value for c in log.commands] == [4]


def test_engine_config_json(tmp_path: Path):
    doc = {
        "version": "0.12.0",
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "mapping": {"world_size": 8, "tp_size": 4, "pp_size": 2, "gpus_per_node": 8},
        },
    }
    text = json.dumps(doc, indent=2)
    path = tmp_path / "config.json"
    path.write_text(text)
    assert sniff_trtllm(text)
    log = parse_trtllm_log(path, "config.json")
    config = {k: p.value for k, p in log.config.items()}
    assert config == {"tp_size": 4, "pp_size": 2, "gpus_per_node": 8, "mpi_size": 8}
    assert log.version == "0.12.0"


def test_broken_engine_json_names_the_line(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text('{"mapping": {"tp_size": 4,\n "pp_size": }}')
    with pytest.raises(ValueError, match=r"config.json:2: not valid JSON"):
        parse_trtllm_log(path, "config.json")
