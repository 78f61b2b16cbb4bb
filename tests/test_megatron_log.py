"""Reading Megatron training logs: argument dump, size summary, rank prefixes, NCCL lines.

The log below is written from the print statements of megatron/training/arguments.py and
initialize.py (core_v0.13 – main) and torch's `[rankN]:` prefix; no real Megatron log is
in the shared corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from diagnose.cli import main
from diagnose.engines import registry
from parsers.megatron_log import parse_megatron_log, sniff_megatron

LOG = """\
+ torchrun --nnodes 2 --nproc-per-node 8 --node-rank 0 --master-addr gpu-a \\
    pretrain_gpt.py --tensor-model-parallel-size 2 --context-parallel-size 2 \\
    --pipeline-model-parallel-size 2 --expert-model-parallel-size 2 --num-experts 8
megatron-core version: 0.16.1
using world size: 16, data-parallel size: 2, context-parallel size: 2, hierarchical \
context-parallel sizes: None, tensor-model-parallel size: 2, pipeline-model-parallel size: 2
Number of virtual stages per pipeline stage: None
------------------------ arguments ------------------------
  context_parallel_size ........................... 2
  data_parallel_size .............................. 2
  enable_gloo_process_groups ...................... True
  expert_model_parallel_size ...................... 2
  expert_tensor_parallel_size ..................... 2
  hierarchical_context_parallel_sizes ............. None
  lr .............................................. 0.0001
  num_experts ..................................... 8
  num_layers ...................................... 24
  pipeline_model_parallel_size .................... 2
  sequence_parallel ............................... True
  tensor_model_parallel_size ...................... 2
  use_tp_pp_dp_mapping ............................ False
  world_size ...................................... 16
-------------------- end of arguments ---------------------
> initializing torch distributed ...
gpu-a:1234:1234 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>
gpu-a:1234:1234 [0] NCCL INFO NCCL version 2.21.5+cuda12.4
gpu-a:1234:1300 [0] NCCL INFO comm 0x55d0 rank 0 nRanks 16 nNodes 2 localRanks 8 localRank 0 \
MNNVL 0
> initialized tensor model parallel with size 2
> initialized pipeline model parallel with size 2
[rank3]: Traceback (most recent call last):
[rank3]: RuntimeError: NCCL communicator was aborted
"""


def write(tmp_path: Path, text: str = LOG, name: str = "train.log") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sniff_picks_megatron():
    assert sniff_megatron(LOG)
    assert registry.sniff(LOG).name == "megatron"
    assert not sniff_megatron("[2026-01-01 10:00:00 TP0] Init torch distributed begin.")


def test_parse_log(tmp_path: Path):
    log = parse_megatron_log(write(tmp_path), "train.log")
    cfg = {k: p.value for k, p in log.config.items()}
    assert cfg["tensor_model_parallel_size"] == 2 and cfg["world_size"] == 16
    assert cfg["num_experts"] == 8 and cfg["sequence_parallel"] is True
    assert cfg["use_gloo_process_groups"] is True  # the 0.13 name, renamed
    assert cfg["hierarchical_context_parallel_sizes"] is None
    assert "lr" not in cfg  # arguments that do not shape groups are left out
    assert str(log.config["world_size"].source) == "train.log:21"
    assert str(log.config["data_parallel_size"].source) == "train.log:9"
    assert log.config_line is not None and log.config_line.line == 7
    assert log.version == "0.16.1"
    assert [c.params["nnodes"].value for c in log.commands] == [2]
    assert log.commands[0].line == 1
    assert log.prefixes.select("rank").to_series().to_list() == [3, 3]
    kinds = {e.kind for e in log.events}
    assert {"megatron_init", "nccl_version", "exception"} <= kinds
    assert "gpu-a" in log.hosts["host"].to_list()


def test_summary_lines_alone_give_the_sizes(tmp_path: Path):
    text = (
        "using world size: 8, data-parallel size: 2, context-parallel size: 1, hierarchical "
        "context-parallel sizes: Nonetensor-model-parallel size: 4, encoder-tensor-model-parallel"
        " size: 0, pipeline-model-parallel size: 1, encoder-pipeline-model-parallel size: 0\n"
        "> initialized pipeline model parallel with size 1\n"
    )
    log = parse_megatron_log(write(tmp_path, text), "old.log")
    cfg = {k: p.value for k, p in log.config.items()}
    assert cfg == {
        "world_size": 8,
        "data_parallel_size": 2,
        "context_parallel_size": 1,
        "tensor_model_parallel_size": 4,
        "pipeline_model_parallel_size": 1,
    }


def test_report_on_a_megatron_log(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs)
    out = tmp_path / "doc.json"
    result = CliRunner().invoke(
        main, ["report", str(logs), "-o", str(tmp_path / "r.html"), "--json", str(out)]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    doc = json.loads(out.read_text())
    assert doc["engine"] == "megatron" and doc["engine_version"] == "0.16.1"
    assert doc["world_size"] == 16 and doc["nnodes"] == 2
    kinds = {g["kind"]: g for g in doc["groups"]}
    assert kinds["CONTEXT_PARALLEL_GROUP"]["ranks"][:2] == [[0, 2], [1, 3]]
    assert doc["params"]["tensor_model_parallel_size"]["source"] == "train.log:19"
    assert doc["placement"][0]["host"] == "gpu-a"
    assert doc["inputs"][0]["status"] == "parsed"
    assert (tmp_path / "r.html").exists()


def test_report_shows_a_logged_refusal(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    text = LOG.replace("--num-experts 8", "--num-experts 6").replace(
        "RuntimeError: NCCL communicator was aborted",
        "AssertionError: Number of experts should be a multiple of expert model parallel_size.",
    )
    write(logs, text)
    result = CliRunner().invoke(main, ["report", str(logs), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert "RM518" in result.output and "see RM511" in result.output
