"""vLLM launch commands, parsed as vLLM's argparse would parse them."""

from __future__ import annotations

import pytest

from diagnose.engines.registry import parse_any_command
from parsers.launch_cmd import LaunchError
from parsers.vllm_cmd import find_commands, parse_command


def values(command: str) -> dict:
    return {k: p.value for k, p in parse_command(command).params.items()}


def test_every_short_alias():
    got = values(
        "vllm serve m -tp 4 -pp 2 -dp 8 -dpl 2 -dpn 1 -dpr 2 -dpa 10.0.0.1 -dpp 13345 -dpb ray "
        "-dph -dpe -ep -dcp 2 -pcp 2 -n 2 -r 1"
    )
    assert got == {
        "model_path": "m",
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2,
        "data_parallel_size": 8,
        "data_parallel_size_local": 2,
        "data_parallel_rank": 1,
        "data_parallel_start_rank": 2,
        "data_parallel_address": "10.0.0.1",
        "data_parallel_rpc_port": 13345,
        "data_parallel_backend": "ray",
        "data_parallel_hybrid_lb": True,
        "data_parallel_external_lb": True,
        "enable_expert_parallel": True,
        "decode_context_parallel_size": 2,
        "prefill_context_parallel_size": 2,
        "nnodes": 2,
        "node_rank": 1,
    }


def test_long_names_underscores_equals_and_negations():
    got = values(
        "python3 -m vllm.entrypoints.openai.api_server --model /m --tensor_parallel_size=8 "
        "--pipeline-parallel-size 2 --enable-expert-parallel --no-enable-expert-parallel "
        "--enable-eplb --disable-eplb --disable-custom-all-reduce --enable-custom-all-reduce"
    )
    assert got["tensor_parallel_size"] == 8 and got["pipeline_parallel_size"] == 2
    assert got["enable_expert_parallel"] is False and got["enable_eplb"] is False
    assert got["disable_custom_all_reduce"] is False and got["model_path"] == "/m"
    assert values("vllm serve m --disable-expert-parallel")["enable_expert_parallel"] is False


def test_environment_json_keys_and_unknown_flags():
    cmd = parse_command(
        "VLLM_PP_LAYER_PARTITION=31,30 VLLM_ALL2ALL_BACKEND=deepep_low_latency nohup vllm serve "
        "m -pp 2 --eplb-config.num_redundant_experts 32 --max-num-seqs 64 --some-list a b "
        "--served-model-name x > log 2>&1 &"
    )
    got = {k: p.value for k, p in cmd.params.items()}
    assert got["pp_layer_partition"] == "31,30"
    assert got["all2all_backend"] == "deepep_low_latency"
    assert got["num_redundant_experts"] == 32
    assert cmd.unknown == ["--max-num-seqs", "--some-list", "--served-model-name"]
    assert cmd.engine == "vllm" and cmd.env["VLLM_PP_LAYER_PARTITION"] == "31,30"
    assert values("vllm serve m --eplb-config '{\"num_redundant_experts\": 8}'") == {
        "model_path": "m",
        "num_redundant_experts": 8,
    }


def test_cli_main_module_and_wrappers():
    got = values("env CUDA_VISIBLE_DEVICES=0,1 python -m vllm.entrypoints.cli.main serve m -tp 2")
    assert got == {"model_path": "m", "tensor_parallel_size": 2}


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("python -m sglang.launch_server --tp 2", "not a vLLM launch command"),
        ("vllm bench serve -tp 2", "not a vLLM launch command"),
        ("vllm serve m -tp two", "-tp expects an integer, got 'two'"),
        ("vllm serve m -tp", "-tp expects a value"),
        ("vllm serve m -ep=1", "takes no value"),
        ("vllm serve m stray", "unrecognized argument 'stray'"),
    ],
)
def test_errors(command: str, error: str):
    with pytest.raises(LaunchError, match=error):
        parse_command(command)


def test_registry_picks_vllm_and_keeps_sglang():
    assert parse_any_command(["vllm", "serve", "m", "-tp", "2"]).engine == "vllm"
    assert parse_any_command(["python", "-m", "sglang.launch_server", "--tp", "2"]).engine == (
        "sglang"
    )


def test_find_commands_in_a_paste():
    lines = [
        "root@pod:/w# python3 -m vllm.entrypoints.openai.api_server \\",
        "    --model deepseek-ai/DeepSeek-V2.5 \\",
        "    --tensor-parallel-size 8 \\",
        "    --pipeline-parallel-size 2",
        "the vllm serve docs say -tp is the TP size",
        "INFO 04-20 16:46:52 [__init__.py:239] Automatically detected platform cuda.",
    ]
    found = find_commands(lines, "paste.log")
    assert len(found) == 1 and found[0].line == 1
    assert found[0].params["tensor_parallel_size"].value == 8
    assert str(found[0].params["model_path"].source) == "paste.log:1"
