"""SGLang launch commands: entry points, wrappers, every flag alias, errors, and the corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.model import Source
from parsers.launch_cmd import FLAGS, LaunchError, find_commands, parse_command

CORPUS = Path(__file__).parent / "data" / "corpus"


def _values(command: str) -> dict[str, object]:
    return {name: param.value for name, param in parse_command(command).params.items()}


def _corpus_lines(name: str) -> list[str]:
    return (CORPUS / name).read_text(encoding="utf-8").split("\n")


@pytest.mark.parametrize(
    "prefix",
    [
        "python -m sglang.launch_server",
        "python3 -m sglang.launch_server",
        "python3.12 -m sglang.launch_server",
        "/app/sglang/sglang-latest/bin/python3 -m sglang.launch_server",
        "python3 -u -X faulthandler -m sglang.launch_server",
        "sglang serve",
        "/usr/local/bin/sglang serve",
        "/opt/x/run-with-new-libstdc.sh python3 -m sglang.launch_server",
        "env A=1 B=two python -m sglang.launch_server",
        "env -u HOME A=1 python -m sglang.launch_server",
        "nohup python -m sglang.launch_server",
        "numactl --cpunodebind=0 --membind=0 -- python -m sglang.launch_server",
        "taskset -c 0-7 python3 -m sglang.launch_server",
        "CUDA_VISIBLE_DEVICES=0,1 python -m sglang.launch_server",
        "sudo -E CUDA_VISIBLE_DEVICES=0,1 nohup python -m sglang.launch_server",
    ],
)
def test_entry_points_and_wrappers(prefix: str) -> None:
    command = parse_command(f"{prefix} --model-path /m --tp 2")
    assert command.params["tp_size"].value == 2
    assert command.params["model_path"].value == "/m"
    assert command.argv[-4:] == ["--model-path", "/m", "--tp", "2"]


def test_env_assignments_are_collected() -> None:
    command = parse_command(
        "env NCCL_P2P_DISABLE=1 CUDA_VISIBLE_DEVICES=0,1 python -m sglang.launch_server --tp 2"
    )
    assert command.env == {"NCCL_P2P_DISABLE": "1", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert parse_command("A='x y' python -m sglang.launch_server").env == {"A": "x y"}


@pytest.mark.parametrize(
    "command",
    [
        "python -m vllm.entrypoints.openai.api_server --tp 2",
        "python3 -c 'import sglang.launch_server'",
        "python script.py -m sglang.launch_server",
        "vllm serve /m --tensor-parallel-size 2",
        "Example: sglang serve --model-path <model> [options]",
        "We then ran python -m sglang.launch_server --tp 2",
        "# python -m sglang.launch_server --tp 2",
        "",
        "sglang",
        "python -m",
    ],
)
def test_not_an_sglang_launch(command: str) -> None:
    with pytest.raises(LaunchError, match="not an SGLang launch command"):
        parse_command(command)


def test_sglang_serve_takes_the_model_as_first_positional() -> None:
    command = parse_command("sglang serve deepseek-ai/DeepSeek-R1 --tp 8 --model-type llm")
    assert command.params["model_path"].value == "deepseek-ai/DeepSeek-R1"
    assert command.params["tp_size"].value == 8
    assert command.unknown == ["--model-type"]


SPELLINGS: list[tuple[str, str, object]] = [
    ("--tp-size 4", "tp_size", 4),
    ("--tensor-parallel-size 4", "tp_size", 4),
    ("--tp 4", "tp_size", 4),
    ("--tp=4", "tp_size", 4),
    ("--pp-size 2", "pp_size", 2),
    ("--pipeline-parallel-size=2", "pp_size", 2),
    ("--dp-size 2", "dp_size", 2),
    ("--data-parallel-size 2", "dp_size", 2),
    ("--dp 2", "dp_size", 2),
    ("--enable-dp-attention", "enable_dp_attention", True),
    ("--attn-dp-size 2", "attn_dp_size", 2),
    ("--attention-data-parallel-size 2", "attn_dp_size", 2),
    ("--ep-size 8", "ep_size", 8),
    ("--expert-parallel-size 8", "ep_size", 8),
    ("--ep 8", "ep_size", 8),
    ("--attn-cp-size 2", "attn_cp_size", 2),
    ("--attention-context-parallel-size 2", "attn_cp_size", 2),
    ("--moe-dp-size 2", "moe_dp_size", 2),
    ("--moe-data-parallel-size 2", "moe_dp_size", 2),
    ("--moe-dense-tp-size 1", "moe_dense_tp_size", 1),
    ("--dcp-size 2", "dcp_size", 2),
    ("--decode-context-parallel-size 2", "dcp_size", 2),
    ("--shared-experts-tp-size 2", "shared_experts_tp_size", 2),
    ("--dwdp-size 8", "dwdp_size", 8),
    ("--nnodes 2", "nnodes", 2),
    ("--node-rank 1", "node_rank", 1),
    ("--dist-init-addr 10.0.0.1:5000", "dist_init_addr", "10.0.0.1:5000"),
    ("--nccl-init-addr=10.0.0.1:5000", "dist_init_addr", "10.0.0.1:5000"),
    ("--nccl-port 29500", "nccl_port", 29500),
    ("--base-gpu-id 4", "base_gpu_id", 4),
    ("--gpu-id-step 2", "gpu_id_step", 2),
    ("--moe-a2a-backend deepep", "moe_a2a_backend", "deepep"),
    ("--enable-deepep-moe", "enable_deepep_moe", True),
    ("--enable-ep-moe", "enable_ep_moe", True),
    ("--enable-deepep-waterfill", "enable_deepep_waterfill", True),
    ("--enable-waterfill", "enable_waterfill", True),
    ("--enable-prefill-cp", "enable_prefill_cp", True),
    ("--cp-strategy zigzag", "cp_strategy", "zigzag"),
    ("--enable-prefill-context-parallel", "enable_prefill_context_parallel", True),
    ("--prefill-cp-mode in-seq-split", "prefill_cp_mode", "in-seq-split"),
    ("--enable-nsa-prefill-context-parallel", "enable_nsa_prefill_context_parallel", True),
    ("--enable-dsa-prefill-context-parallel", "enable_dsa_prefill_context_parallel", True),
    ("--nsa-prefill-cp-mode in-seq-split", "nsa_prefill_cp_mode", "in-seq-split"),
    ("--dsa-prefill-cp-mode round-robin-split", "dsa_prefill_cp_mode", "round-robin-split"),
    ("--enable-dp-lm-head", "enable_dp_lm_head", True),
    ("--enable-eplb", "enable_eplb", True),
    ("--ep-num-redundant-experts 32", "ep_num_redundant_experts", 32),
    ("--model-path /m", "model_path", "/m"),
    ("--model /m", "model_path", "/m"),
    ("--host 0.0.0.0", "host", "0.0.0.0"),
    ("--port 30000", "port", 30000),
    ("--disaggregation-mode prefill", "disaggregation_mode", "prefill"),
    ("--pre-warm-nccl", "pre_warm_nccl", True),
    ("--kv-cache-dtype fp8_e4m3", "kv_cache_dtype", "fp8_e4m3"),
    ("--dtype bfloat16", "dtype", "bfloat16"),
    ("--quantization fp8", "quantization", "fp8"),
    ("--trust-remote-code", "trust_remote_code", True),
    ("--enable-pdmux", "enable_pdmux", True),
    ("--speculative-algorithm EAGLE", "speculative_algorithm", "EAGLE"),
    ("--disable-overlap-schedule", "disable_overlap_schedule", True),
]


@pytest.mark.parametrize(("flags", "field", "value"), SPELLINGS)
def test_every_flag_spelling(flags: str, field: str, value: object) -> None:
    values = _values(f"python -m sglang.launch_server {flags}")
    assert values == {field: value}
    assert type(values[field]) is type(value)


def test_every_table_entry_is_tested() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    assert [
        flag
        for flag in FLAGS
        if f'"{flag} ' not in source and f'"{flag}=' not in source and f'"{flag}"' not in source
    ] == []


def test_last_occurrence_wins_and_aliases_share_a_field() -> None:
    assert _values("python -m sglang.launch_server --tp 2 --tensor-parallel-size 8") == {
        "tp_size": 8
    }


def test_negative_integer_is_a_value() -> None:
    assert _values("python -m sglang.launch_server --base-gpu-id -1") == {"base_gpu_id": -1}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--tp abc", "--tp expects an integer, got 'abc'"),
        ("--tp-size=1.5", "--tp-size expects an integer"),
        ("--nnodes", "--nnodes expects a value"),
        ("--nnodes --tp 2", "--nnodes expects a value"),
        ("--trust-remote-code=yes", "--trust-remote-code takes no value"),
        ("--pp 2", "ambiguous option: --pp"),
        ("--tp 2 4", "unrecognized argument '4'"),
    ],
)
def test_argparse_errors(flags: str, message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        parse_command(f"python -m sglang.launch_server {flags}")


def test_unknown_flags_are_kept_with_their_values_skipped() -> None:
    command = parse_command(
        "python -m sglang.launch_server --mem-fraction-static 0.8 --tp 2 --disable-cuda-graph "
        "--cuda-graph-bs 1 2 4 --max-running-requests=128 --nnodes 2"
    )
    assert command.unknown == [
        "--mem-fraction-static",
        "--disable-cuda-graph",
        "--cuda-graph-bs",
        "--max-running-requests",
    ]
    assert {k: p.value for k, p in command.params.items()} == {"tp_size": 2, "nnodes": 2}


def test_command_ends_at_shell_operators_and_comments() -> None:
    command = parse_command(
        "nohup python -m sglang.launch_server --tp 2 --model-path /m#1 > log.txt 2>&1 & # bg"
    )
    assert command.argv == ["nohup", "python", "-m", "sglang.launch_server", "--tp", "2",
                            "--model-path", "/m#1"]  # fmt: skip
    assert _values("python -m sglang.launch_server --tp 2 | tee out.log") == {"tp_size": 2}
    assert _values("python -m sglang.launch_server --tp 2 2>&1") == {"tp_size": 2}
    assert _values("python -m sglang.launch_server --tp 2; echo done") == {"tp_size": 2}


def test_unbalanced_quote_is_a_launch_error() -> None:
    with pytest.raises(LaunchError, match="cannot split"):
        parse_command("python -m sglang.launch_server --model-path '/m")


def test_argv_list_and_provenance() -> None:
    command = parse_command(["python", "-m", "sglang.launch_server", "--model", "/a b"])
    assert command.text == "python -m sglang.launch_server --model '/a b'"
    assert command.params["model_path"].source == Source("command line")
    assert command.file is None and command.line is None
    in_file = parse_command("python -m sglang.launch_server --tp 2", file="run.sh", line=7)
    assert in_file.params["tp_size"].source == Source("file", "run.sh", 7)
    assert (in_file.file, in_file.line) == ("run.sh", 7)


def test_text_is_one_line() -> None:
    command = parse_command("python -m sglang.launch_server \\\n  --tp 2 \\\n  --nnodes 1")
    assert "\n" not in command.text
    assert _values(command.text) == {"tp_size": 2, "nnodes": 1}


def test_find_commands_joins_continuations_and_strips_prompts() -> None:
    lines = [
        "some prose mentioning sglang.launch_server in passing",
        "((sglang-0.5.9) ) [me@gpu-node-1 models]$ CUDA_VISIBLE_DEVICES=0,1 \\",
        "  python3 -m sglang.launch_server --tp 2 \\",
        "  --nnodes 1",
        "(base) root@box:/work# python -m sglang.launch_server --dp 2",
        "$ sglang serve /m --ep 2",
        "bashSGLANG_HOST_IP=10.0.0.1 python -m sglang.launch_server --tp 4",
        "bashpython3 -m sglang.launch_server --tp 8",
    ]
    found = find_commands(lines, "run.log")
    assert [(c.line, {k: p.value for k, p in c.params.items()}) for c in found] == [
        (2, {"tp_size": 2, "nnodes": 1}),
        (5, {"dp_size": 2}),
        (6, {"model_path": "/m", "ep_size": 2}),
        (7, {"tp_size": 4}),
        (8, {"tp_size": 8}),
    ]
    assert found[0].env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert found[0].text == (
        "CUDA_VISIBLE_DEVICES=0,1 python3 -m sglang.launch_server --tp 2 --nnodes 1"
    )
    assert found[3].env == {"SGLANG_HOST_IP": "10.0.0.1"}
    assert found[0].params["tp_size"].source == Source("file", "run.log", 2)


def test_hang_log_commands_for_both_nodes() -> None:
    name = "dsr1-decode-tp16-2node-hang-ib-completion-error.log"
    found = find_commands(_corpus_lines(name), name)
    assert [c.line for c in found] == [128, 144, 247, 249]
    multi_line = found[:2]
    for node_rank, command in enumerate(multi_line):
        values = {k: p.value for k, p in command.params.items()}
        assert values["tp_size"] == 16
        assert values["nnodes"] == 2
        assert values["node_rank"] == node_rank
        assert values["dist_init_addr"] == "10.99.91.59:5000"
        assert values["disaggregation_mode"] == "decode"
        assert command.env["NCCL_ALGO"] == "Ring"
        assert "--max-running-requests" in command.unknown
    assert found[0].env["SGLANG_HOST_IP"] == "10.99.91.59"
    assert found[1].env["SGLANG_HOST_IP"] == "10.99.91.63"
    assert [c.params["node_rank"].value for c in found[2:]] == [0, 1]
    assert found[2].env["NCCL_DEBUG_SUBSYS"] == "ALL"


def test_pd_log_has_prefill_and_decode_instances() -> None:
    name = "dsr1-pd-decode-tp16-2node-nccl-info.log"
    found = find_commands(_corpus_lines(name), name)
    summary = [
        (
            c.line,
            c.params["disaggregation_mode"].value,
            c.params["node_rank"].value,
            c.params["host"].value,
        )
        for c in found
    ]
    assert summary == [
        (6, "prefill", 0, "10.99.91.39"),
        (8, "prefill", 1, "10.99.91.41"),
        (11, "decode", 0, "10.99.91.49"),
        (13, "decode", 1, "10.99.91.35"),
    ]
    assert all(c.params["tp_size"].value == 16 and c.params["nnodes"].value == 2 for c in found)
    assert found[0].argv[found[0].argv.index("-m") - 1] == "/app/sglang/sglang-latest/bin/python3"


def test_nccl_log_commands_and_connect_refused_has_none() -> None:
    name = "sglang-dsr1-decode-tp16-node1-nccl-init.log"
    found = find_commands(_corpus_lines(name), name)
    assert [(c.line, c.params["node_rank"].value) for c in found] == [(8, 0), (25, 1)]
    assert found[0].env["LD_LIBRARY_PATH"] == "/usr/local/cuda-13.1/lib64:$LD_LIBRARY_PATH"
    refused = "dsr1-tp16-2node-nccl-connect-refused.log"
    assert find_commands(_corpus_lines(refused), refused) == []
