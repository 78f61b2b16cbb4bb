"""The vLLM log parser on synthetic lines of every historical form and on the real corpus."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from parsers.vllm_log import parse_vllm_log, sniff_vllm

CORPUS = Path(__file__).parent / "data" / "corpus"
RAY_IB = "deepseek-v2.5-tp8-pp2-2node-ray-ib.log"
RAY_NOIB = "deepseek-v2.5-tp8-pp2-2node-ray-noib.log"

LOG = """\
INFO 05-01 10:00:00 [api_server.py:1] vLLM API server version 0.17.0
INFO 05-01 10:00:00 [utils.py:1] non-default args: {'model': 'deepseek-ai/DeepSeek-V3', \
'tensor_parallel_size': 4, 'data_parallel_size': 2, 'enable_expert_parallel': True, 'nnodes': 1}
(EngineCore_DP0 pid=100) INFO 05-01 10:00:01 [core.py:1] Initializing a V1 LLM engine \
(v0.17.0) with config: model='deepseek-ai/DeepSeek-V3', speculative_config=None, \
tensor_parallel_size=4, pipeline_parallel_size=1, data_parallel_size=2, \
decode_context_parallel_size=1, dcp_comm_backend=ag_rs, disable_custom_all_reduce=False, \
quantization=fp8
(Worker_DP1_TP1_EP5 pid=205) INFO 05-01 10:00:02 [parallel_state.py:1] world_size=8 rank=5 \
local_rank=1 distributed_init_method=tcp://10.0.0.1:1234 backend=nccl
(Worker_DP1_TP1_EP5 pid=205) INFO 05-01 10:00:03 [parallel_state.py:1] rank 5 in world size 8 \
is assigned as DP rank 1, PP rank 0, PCP rank 0, TP rank 1, EP rank 5, EPLB rank N/A
\x1b[36m(Worker_DP1_TP1_EP5 pid=205)\x1b[0m INFO 05-01 10:00:04 [custom_all_reduce.py:1] \
Custom allreduce is disabled because this process group spans across nodes.
(Worker_DP1_TP1_EP5 pid=205) WARNING 05-01 10:00:05 [cpu.py:1] CPU SHM communicator disabled \
for group ep:0: ranks do not share a node
(VllmWorker TP0 pid=300) INFO 05-01 10:00:06 [x.py:1] loading
(VllmWorker PP1_TP3 pid=301) INFO 05-01 10:00:06 [x.py:1] loading
(VllmWorker rank=2 pid=302) INFO 05-01 10:00:06 [x.py:1] loading
INFO 05-01 10:00:07 [pynccl.py:1] vLLM is using nccl==2.27.3
"""

FORMS = [
    (
        "rank 3 in world size 8 is assigned as DP rank 0, PP rank 1, TP rank 1",
        {"rank": 3, "world_size": 8, "dp": 0, "pp": 1, "tp": 1, "ep": None},
    ),
    (
        "rank 3 in world size 8 is assigned as DP rank 0, PP rank 1, TP rank 1, EP rank 3",
        {"rank": 3, "pp": 1, "tp": 1, "ep": 3, "pcp": None},
    ),
    (
        "rank 3 in world size 8 is assigned as DP rank 0, PP rank 0, PCP rank 1, TP rank 1, "
        "EP rank 3",
        {"rank": 3, "pcp": 1, "tp": 1, "ep": 3, "eplb": None},
    ),
    (
        "rank 3 in world size 8 is assigned as DP rank 0, PP rank 0, PCP rank 1, TP rank 1, "
        "EP rank N/A, EPLB rank N/A",
        {"rank": 3, "pcp": 1, "tp": 1, "ep": None, "eplb": None},
    ),
    (
        "rank 3 in world size 8 is assigned as DP rank 0, PP rank 0, PCP rank 0, TP rank 3, "
        "ETP rank 3, EP rank 3, EPLB rank 3",
        {"rank": 3, "tp": 3, "etp": 3, "ep": 3, "eplb": 3},
    ),
]


def parse_text(tmp_path: Path, text: str, name: str = "v.log"):
    (tmp_path / name).write_text(text)
    return parse_vllm_log(tmp_path / name, name)


def test_every_assignment_form(tmp_path: Path):
    text = "".join(f"INFO 05-01 10:00:00 [parallel_state.py:1] {line}\n" for line, _ in FORMS)
    rows = parse_text(tmp_path, text).prefixes.to_dicts()
    for (_, want), row in zip(FORMS, rows, strict=True):
        assert {k: row[k] for k in want} == want


def test_config_args_events_and_worker_names(tmp_path: Path):
    log = parse_text(tmp_path, LOG)
    assert log.version == "0.17.0"
    config = {k: p.value for k, p in log.config.items()}
    assert config == {
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 1,
        "data_parallel_size": 2,
        "decode_context_parallel_size": 1,
        "disable_custom_all_reduce": False,
        "model_path": "deepseek-ai/DeepSeek-V3",
    }
    assert str(log.config["tensor_parallel_size"].source) == "v.log:3"
    (args,) = log.commands
    assert args.line == 2 and "nnodes" not in args.params
    assert args.params["enable_expert_parallel"].value is True
    kinds = {e.kind for e in log.events}
    assert {"assigned", "spans_nodes", "named_group", "nccl_version"} <= kinds
    rows = log.prefixes
    worker = rows.filter(pl.col("line") == 5).to_dicts()[0]
    assert (worker["rank"], worker["dp"], worker["tp"], worker["ep"]) == (5, 1, 1, 5)
    world = rows.filter(pl.col("line") == 4).to_dicts()[0]
    assert (world["rank"], world["world_size"]) == (5, 8)
    by_line = {r["line"]: r for r in rows.to_dicts()}
    assert by_line[6]["rank"] == 5 and by_line[6]["ep"] == 5  # ANSI-coloured prefix
    assert (by_line[8]["tp"], by_line[8]["pp"]) == (0, None)
    assert (by_line[9]["pp"], by_line[9]["tp"]) == (1, 3)
    assert by_line[10]["worker_rank"] == 2
    assert by_line[3]["engine_dp"] == 0


def test_sniff():
    assert sniff_vllm("(Worker_DP1_PP1_TP1_EP5 pid=12) INFO hello")
    assert sniff_vllm("INFO 04-20 16:46:54 [api_server.py:1034] vLLM API server version 0.8.3")
    assert sniff_vllm("$ vllm serve Qwen/Qwen3-8B -tp 2")
    assert not sniff_vllm("[2025-01-01 10:00:00 TP0] server_args=ServerArgs(tp_size=2)")


def test_ray_corpus_rank_host_map():
    log = parse_vllm_log(CORPUS / RAY_IB, RAY_IB)
    assert log.version == "0.8.3"
    assert log.config["tensor_parallel_size"].value == 8
    assert log.config["pipeline_parallel_size"].value == 2
    assert log.config["distributed_executor_backend"].value == "ray"
    ranks = (
        log.prefixes.drop_nulls("rank")
        .group_by("rank")
        .agg(pl.col("host").unique())
        .sort("rank")
        .rows()
    )
    assert ranks == [
        (0, ["deepseek-v2-5-0"]),
        (4, ["deepseek-v2-5-0"]),
        (8, ["deepseek-v2-5-0-1"]),
        (13, ["deepseek-v2-5-0-1"]),
        (15, ["deepseek-v2-5-0-1"]),
    ]
    # Rank 8's statement is glued to the end of a cut NCCL line of the same process.
    eight = log.prefixes.filter((pl.col("rank") == 8) & pl.col("world_size").is_not_null())
    assert eight.select("line", "world_size", "dp", "pp", "tp").row(0) == (325, 16, 0, 1, 0)
    hosts = log.hosts.filter(pl.col("kind") == "nccl")["host"].drop_nulls().unique().sort()
    assert hosts.to_list() == ["deepseek-v2-5-0", "deepseek-v2-5-0-1"]  # `pseek…` dropped


def test_ray_corpus_without_infiniband():
    log = parse_vllm_log(CORPUS / RAY_NOIB, RAY_NOIB)
    ranks = dict(
        log.prefixes.drop_nulls("rank").unique(["rank", "host"]).select("rank", "host").rows()
    )
    assert ranks == {
        0: "deepseek-v2-5-0",
        6: "deepseek-v2-5-0",
        **{r: "deepseek-v2-5-0-1" for r in (8, 9, 10, 11, 12, 13, 15)},
    }
