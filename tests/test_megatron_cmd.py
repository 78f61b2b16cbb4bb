"""Reading Megatron launch commands: torchrun, python -m torch.distributed.*, ms-swift, NeMo."""

from __future__ import annotations

import pytest

from diagnose.engines.registry import parse_any_command
from parsers.launch_cmd import LaunchError
from parsers.megatron_cmd import find_commands, parse_command

ISSUE = (
    "torchrun --nnodes 2 --nproc-per-node 8 pretrain_gpt.py --tensor-model-parallel-size 2 "
    "--context-parallel-size 2 --pipeline-model-parallel-size 2 --expert-model-parallel-size 2 "
    "--num-experts 8"
)


def values(command: str) -> dict:
    return {k: p.value for k, p in parse_command(command).params.items()}


def test_issue_command():
    cmd = parse_command(ISSUE)
    assert cmd.engine == "megatron"
    assert values(ISSUE) == {
        "nnodes": 2,
        "nproc_per_node": 8,
        "tensor_model_parallel_size": 2,
        "context_parallel_size": 2,
        "pipeline_model_parallel_size": 2,
        "expert_model_parallel_size": 2,
        "num_experts": 8,
    }
    assert parse_any_command(ISSUE.split()).engine == "megatron"


@pytest.mark.parametrize(
    "command",
    [
        "python -m torch.distributed.run --nproc_per_node=8 --nnodes=2 --node_rank=1 "
        "--master_addr=10.0.0.1 --master_port=6000 pretrain_gpt.py --tensor-model-parallel-size 2",
        "python3 -m torch.distributed.launch --nproc_per_node 8 --nnodes 2 "
        "Megatron-LM/pretrain_gpt.py --tensor-model-parallel-size=2",
        "NCCL_DEBUG=INFO torchrun --nnodes=2:2 --nproc-per-node=8 --rdzv-endpoint host:29500 "
        "/opt/megatron/pretrain_mamba.py --tensor-model-parallel-size 2",
        "srun torchrun --nnodes 2 --nproc-per-node 8 train.py --tensor-model-parallel-size 2",
    ],
)
def test_launcher_spellings(command: str):
    got = values(command)
    assert got["nproc_per_node"] == 8 and got["nnodes"] == 2
    assert got["tensor_model_parallel_size"] == 2


def test_torchrun_options_and_values():
    got = values(
        "torchrun --standalone --nproc-per-node gpu pretrain_gpt.py "
        "--hierarchical-context-parallel-sizes 2 4 --context-parallel-size 8 "
        "--sequence-parallel --no-overlap-p2p-communication --disable-gloo-process-groups "
        "--use-tp-pp-dp-mapping --lr 1e-4 --data-path a b c"
    )
    assert got["nnodes"] == 1 and got["nproc_per_node"] == "gpu"
    assert got["hierarchical_context_parallel_sizes"] == [2, 4]
    assert got["sequence_parallel"] is True and got["overlap_p2p_comm"] is False
    assert got["use_gloo_process_groups"] is False and got["use_tp_pp_dp_mapping"] is True
    assert parse_command("torchrun pretrain_gpt.py --lr 1 --data-path a b").unknown == [
        "--lr",
        "--data-path",
    ]


def test_elastic_range_and_shell_variables_stay_unknown():
    assert values("torchrun --nnodes 1:4 pretrain_gpt.py")["nnodes"] == "1:4"
    got = values("torchrun --nnodes $NNODES pretrain_gpt.py --tensor-model-parallel-size $TP")
    assert got["nnodes"] == "$NNODES" and got["tensor_model_parallel_size"] == "$TP"


def test_plain_python_reads_world_size_from_the_environment():
    got = values("WORLD_SIZE=4 python pretrain_gpt.py --tensor-model-parallel-size 2")
    assert got["world_size"] == 4
    assert "world_size" not in values("python pretrain_gpt.py")


def test_ms_swift_megatron_cli():
    got = values(
        "NPROC_PER_NODE=8 NNODES=2 NODE_RANK=0 megatron sft --model Qwen/Qwen3-30B-A3B "
        "--tensor_model_parallel_size 2 --expert_model_parallel_size 4 --sequence_parallel true "
        "--num_experts 128"
    )
    assert got == {
        "nnodes": 2,
        "nproc_per_node": 8,
        "node_rank": 0,
        "model_path": "Qwen/Qwen3-30B-A3B",
        "tensor_model_parallel_size": 2,
        "expert_model_parallel_size": 4,
        "sequence_parallel": True,
        "num_experts": 128,
    }


def test_nemo_hydra_overrides():
    got = values(
        "python megatron_gpt_pretraining.py trainer.num_nodes=2 trainer.devices=8 "
        "model.tensor_model_parallel_size=4 model.pipeline_model_parallel_size=2 "
        "model.sequence_parallel=True model.virtual_pipeline_model_parallel_size=null "
        "model.optim.lr=1e-4"
    )
    assert got["nnodes"] == 2 and got["nproc_per_node"] == 8
    assert got["tensor_model_parallel_size"] == 4 and got["pipeline_model_parallel_size"] == 2
    assert got["sequence_parallel"] is True
    assert got["virtual_pipeline_model_parallel_size"] is None


@pytest.mark.parametrize(
    "command",
    [
        "torchrun --nproc-per-node 8 train.py --lr 1",
        "deepspeed pretrain_gpt.py --tensor-model-parallel-size 2",
        "torchrun --nproc-per-node 8 pretrain_gpt.py --deepspeed --deepspeed_config ds.json",
        "python -m sglang.launch_server --tp 8",
        "echo pretrain_gpt.py",
    ],
)
def test_foreign_commands_are_not_claimed(command: str):
    with pytest.raises(LaunchError, match=r"^not a"):
        parse_command(command)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("torchrun pretrain_gpt.py --tensor-model-parallel-size two", "expects integers"),
        ("torchrun pretrain_gpt.py --num-layers", "expects a value"),
        ("torchrun --nnodes x pretrain_gpt.py", "expects an integer"),
    ],
)
def test_bad_values_are_one_line_errors(command: str, message: str):
    with pytest.raises(LaunchError, match=message):
        parse_command(command)


def test_find_commands_joins_continuations_and_drops_prompts():
    lines = [
        "some output",
        "[user@node0 ~]$ torchrun --nnodes 2 --nproc-per-node 8 \\",
        "    pretrain_gpt.py \\",
        "    --tensor-model-parallel-size 4",
        "the torchrun docs say so",
    ]
    found = find_commands(lines, "run.sh", [10, 11, 12, 13, 14])
    assert len(found) == 1
    assert found[0].line == 11 and found[0].file == "run.sh"
    assert found[0].params["tensor_model_parallel_size"].value == 4
    assert str(found[0].params["nnodes"].source) == "run.sh:11"
