"""PyTorch distributed log facts: real torch 2.11 C++ logs, corpus pastes, older formats."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from diagnose.model import Evidence
from parsers.lines import read_lines
from parsers.nccl_log import parse_nccl
from parsers.torch_dist_log import TorchDistFacts, parse_torch_dist

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "corpus"
GENERATED = DATA / "generated" / "nccl_1gpu_torch2.11"
LAYOUTS = ["megatron_tp2_pp2_dp2", "sglang_tp8_attncp2_moeep4", "fr_desync_tp2x2"]


def _torch_log(layout: str, rank: int) -> TorchDistFacts:
    path = GENERATED / layout / "torch_log" / f"rank{rank}.log.gz"
    return parse_torch_dist(read_lines(path), path.name)


def _lines(*texts: str) -> TorchDistFacts:
    frame = pl.DataFrame(
        {"line": range(1, len(texts) + 1), "text": list(texts)},
        schema={"line": pl.Int64, "text": pl.Utf8},
    )
    return parse_torch_dist(frame, "synthetic.log")


def _kinds(errors: list[Evidence]) -> list[tuple[int | None, str]]:
    return [(e.line, e.kind) for e in errors]


# --- generated torch 2.11 logs (TORCH_CPP_LOG_LEVEL=INFO) with ground truth -----------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_pgs_match_ground_truth(layout: str) -> None:
    layout_json = json.loads((GENERATED / layout / "layout.json").read_text())
    truth = {g["pg_name"]: g for g in layout_json["groups_in_creation_order"]}
    world = layout_json["world_size"]
    for rank in range(world):
        pgs = _torch_log(layout, rank).pgs
        assert set(pgs["global_rank"]) == {rank}
        default = pgs.filter(pl.col("pg_name") == "0").row(0, named=True)
        assert (default["pg_id"], default["rank"], default["size"]) == (0, rank, world)
        assert default["ranks"] == list(range(world))
        checked = 0
        for row in pgs.filter(pl.col("pg_name").is_in(list(truth))).iter_rows(named=True):
            group = truth[row["pg_name"]]
            assert rank in group["ranks"]
            assert row["size"] == len(group["ranks"])
            assert row["rank"] == group["ranks"].index(rank)
            if row["pg_desc"] is not None:
                assert row["pg_desc"] == group["group_desc"]
            checked += 1
        assert checked >= 1


def test_generated_megatron_pgs_name_their_split_comms() -> None:
    pgs = _torch_log("megatron_tp2_pp2_dp2", 0).pgs
    columns = ("pg_id", "pg_name", "pg_desc", "rank", "size", "split_color", "comm")
    assert pgs.select(columns).rows() == [
        (0, "0", "default_pg", 0, 8, -2, None),
        (1, "1", "DATA_PARALLEL_GROUP", 0, 2, 1684518034, "0x116c2c90"),
        (2, "9", "CONTEXT_PARALLEL_GROUP", 0, 1, 59908776, "0x118f0680"),
        (3, "17", "MODEL_PARALLEL_GROUP", 0, 4, 1247566339, "0x11d1f450"),
        (4, "19", "TENSOR_MODEL_PARALLEL_GROUP", 0, 2, 2130503744, "0x11e62fa0"),
        (5, "23", "PIPELINE_MODEL_PARALLEL_GROUP", 0, 2, 923304772, "0x120994c0"),
        (6, "27", "EMBEDDING_GROUP", 0, 2, 923304772, "0x122c44b0"),  # same color as PP
        (7, "31", "TENSOR_AND_DATA_PARALLEL_GROUP", 0, 4, 2003953581, "0x124f1ba0"),
    ]  # fmt: skip
    assert set(pgs.filter(pl.col("pg_id") > 0)["parent_comm"]) == {"0x9eda590"}
    assert set(pgs.filter(pl.col("pg_id") > 0)["timeout_ms"]) == {600000}
    assert pgs["line"].to_list() == [2, 12, 38, 66, 76, 92, 108, 124]  # first line of each
    assert pgs["text"][0].startswith(
        "[I1129 05:36:14.856941192 ProcessGroupNCCL.cpp:1725] [PG ID 0 PG GUID 0 Rank 0] "
        "HeartbeatMonitor environments:"
    )


@pytest.mark.parametrize("rank", range(8))
def test_generated_megatron_torch_and_nccl_logs_agree(rank: int) -> None:
    """Each PG's comm pointer and split color are those of an ncclCommSplit in the NCCL log."""
    pgs = _torch_log("megatron_tp2_pp2_dp2", rank).pgs.filter(pl.col("comm").is_not_null())
    nccl_log = GENERATED / "megatron_tp2_pp2_dp2" / "nccl_log" / f"nccl_rank{rank}.log.gz"
    comms = parse_nccl(read_lines(nccl_log), nccl_log.name).comms
    joined = pgs.join(comms, on="comm", how="left")
    assert joined.height == 7
    assert (joined["split_color"] == joined["color"]).all()
    assert (joined["size"] == joined["nranks"]).all()
    assert (joined["rank"] == joined["rank_right"]).all()
    assert (joined["parent_comm"] == joined["parent"]).all()


def test_generated_desync_timeout_on_rank2() -> None:
    facts = _torch_log("fr_desync_tp2x2", 2)
    works = facts.works.drop("text")
    assert works.rows() == [
        (0, 2, None, None, 4, "ALLREDUCE", 1024, 1024, 20000, 20073, 14),
        (0, 2, "2", "TP", 4, "ALLREDUCE", 1024, 1024, 20000, 20073, 36),
        (0, None, "2", "TP", 4, "ALLREDUCE", 1024, 1024, 20000, 20073, 47),  # `what():`
    ]
    assert facts.works["text"][0] == (
        "[rank2]:[E1129 05:37:13.942545491 ProcessGroupNCCL.cpp:689] [Rank 0] Watchdog caught "
        "collective operation timeout: WorkNCCL(SeqNum=4, OpType=ALLREDUCE, NumelIn=1024, "
        "NumelOut=1024, Timeout(ms)=20000) ran for 20073 milliseconds before timing out."
    )
    assert facts.progress.drop("text").rows() == [
        (0, 2, "2", "TP", 4, 4, None, 3, 15),
        (2, 2, "0", None, None, -1, None, -1, 26),  # the dump signal on the default PG
    ]
    assert _kinds(facts.errors) == [
        (36, "watchdog_terminated"),
        (46, "dist_backend_error"),
        (47, "watchdog_terminated"),
    ]
    assert (
        facts.errors[1].text
        == "terminate called after throwing an instance of 'c10::DistBackendError'"
    )
    assert facts.errors[0].file == "rank2.log.gz"
    assert facts.desync.is_empty()
    tp = facts.pgs.filter(pl.col("pg_name") == "2").row(0, named=True)
    assert (tp["rank"], tp["global_rank"], tp["size"], tp["timeout_ms"]) == (0, 2, 2, 20000)


def test_generated_desync_rank3_only_dumps() -> None:
    facts = _torch_log("fr_desync_tp2x2", 3)
    assert facts.works.is_empty()
    assert facts.errors == []
    assert facts.progress.drop("text").rows() == [(3, 3, "0", None, None, -1, None, -1, 15)]


# --- corpus pastes ---------------------------------------------------------------------------


def test_deepspeed_torchrun_prefixed_barrier_warnings() -> None:
    facts = parse_torch_dist(read_lines(CORPUS / "dschat-opt350m-dpo-zero0-8gpu-startup.log"), "ds")
    pgs = facts.pgs
    assert pgs.height == 8
    assert sorted(pgs["global_rank"]) == list(range(8))
    assert (pgs["rank"] == pgs["global_rank"]).all()
    assert set(pgs.select("pg_id", "pg_name", "size").rows()) == {(0, "0", None)}
    assert pgs.row(0, named=True)["line"] == 34
    assert pgs["text"][0].startswith("[rank3]:[W102 15:45:34.866823429 ProcessGroupNCCL.cpp:4115]")


def test_sglang_refused_nccl_errors_without_traceback_source() -> None:
    facts = parse_torch_dist(read_lines(CORPUS / "dsr1-tp16-2node-nccl-connect-refused.log"), "r")
    assert len(facts.errors) == 14
    assert {e.kind for e in facts.errors} == {"nccl_error"}
    assert {e.text for e in facts.errors} == {
        "RuntimeError: NCCL error: remote process exited or there was a network error"
    }
    assert facts.errors[0].line == 45
    for frame in (facts.pgs, facts.works, facts.progress, facts.desync):
        assert frame.is_empty()


@pytest.mark.parametrize(
    "name",
    [
        "dsr1-decode-tp16-2node-hang-ib-completion-error.log",
        "dsr1-pd-decode-tp16-2node-nccl-info.log",
        "sglang-dsr1-decode-tp16-node1-nccl-init.log",
        "deepseek-v2.5-tp8-pp2-2node-ray-ib.log",
        "deepseek-v2.5-tp8-pp2-2node-ray-noib.log",
    ],
)
def test_corpus_logs_without_distributed_facts(name: str) -> None:
    facts = parse_torch_dist(read_lines(CORPUS / name), name)
    for frame in (facts.pgs, facts.works, facts.progress, facts.desync):
        assert frame.is_empty()
    assert facts.errors == []


# --- synthetic lines: the formats of older and newer torch -----------------------------------


def test_pg_prefix_variants() -> None:
    facts = _lines(
        # torch 2.5+: PG ID (local) + PG GUID (pg_name) + desc
        "[rank4]:[I1129 05:36:15.617533871 ProcessGroupNCCL.cpp:1068] [PG ID 1 PG GUID 5(DP) "
        "Rank 1] Using non-blocking mode: 0",
        # torch 2.4: [PG name (desc) Rank r], glog header of a merged multi-rank file
        "I0527 15:16:57.738664 58629 ProcessGroupNCCL.cpp:2183] [PG 0 (default_pg) Rank 5] "
        "ProcessGroupNCCL created ncclComm_ 0x555b8d27b370 on CUDA device: \x05",
        # torch 2.3: [PG uid Rank r]; `PG Name:` on the options line names it
        "I0527 15:16:51.665375 58626 ProcessGroupNCCL.cpp:869] [PG 3 Rank 2] ProcessGroupNCCL "
        "initialization options: size: 8, global rank: 2, TIMEOUT(ms): 1800000, "
        "USE_HIGH_PRIORITY_STREAM: 0, SPLIT_FROM: 0, SPLIT_COLOR: 0, PG Name: 7",
        # torch <= 2.2: [Rank r] and no PG name at all
        "[I ProcessGroupNCCL.cpp:686] [Rank 0] ProcessGroupNCCL initialization options: NCCL "
        "version: 2.18.1, NCCL_ASYNC_ERROR_HANDLING: 1, NCCL_DESYNC_DEBUG: 0, "
        "NCCL_ENABLE_TIMING: 0, NCCL_BLOCKING_WAIT: 0, TIMEOUT(ms): 600000, "
        "USE_HIGH_PRIORITY_STREAM: 0, TORCH_DISTRIBUTED_DEBUG: OFF, ID=94234567",
    )
    rows = facts.pgs.select(
        "rank", "global_rank", "pg_id", "pg_name", "pg_desc", "size", "ranks", "timeout_ms", "comm"
    ).rows()
    assert rows == [
        (1, 4, 1, "5", "DP", None, None, None, None),
        (5, None, None, "0", "default_pg", None, None, None, "0x555b8d27b370"),
        (2, 2, None, "7", None, 8, None, 1800000, None),
        (0, None, None, None, None, None, None, 600000, None),
    ]


def test_pg_rows_merge_lines_of_one_process_in_a_merged_file() -> None:
    opts = (
        "[PG ID 0 PG GUID 0 Rank {0}] ProcessGroupNCCL initialization options: size: 2, "
        "global rank: {0}, TIMEOUT(ms): 600000, USE_HIGH_PRIORITY_STREAM: 0, SPLIT_FROM: 0, "
        "SPLIT_COLOR: -2, PG Name: 0"
    )
    facts = _lines(
        opts.format(0),
        opts.format(1),
        "[PG ID 0 PG GUID 0(default_pg) Rank 1] Using non-blocking mode: 0",
        "[PG ID 0 PG GUID 0(default_pg) Rank 0] Using non-blocking mode: 0",
    )
    assert facts.pgs.select("rank", "global_rank", "pg_desc", "size", "ranks", "line").rows() == [
        (0, 0, "default_pg", 2, [0, 1], 1),
        (1, 1, "default_pg", 2, [0, 1], 2),
    ]


def test_split_child_comm_goes_to_the_latest_pg_with_that_color() -> None:
    opts = (
        "[rank0]:[I1 ProcessGroupNCCL.cpp:988] [PG ID {0} PG GUID {1} Rank 0] ProcessGroupNCCL "
        "initialization options: size: 2, global rank: 0, TIMEOUT(ms): 600000, "
        "USE_HIGH_PRIORITY_STREAM: 0, SPLIT_FROM: 1, SPLIT_COLOR: 77, PG Name: {1}"
    )
    split = (
        "[rank0]:[I1 ProcessGroupNCCL.cpp:3074] [PG ID {0} PG GUID {1}(X) Rank 0] "
        "Splitting NCCL communicator from 0x10"
    )
    child = "[rank0]:[I1 NCCLUtils.cpp:279] Rank 0: created child comm {0} with color_id {1}"
    facts = _lines(
        opts.format(1, "23"),
        split.format(1, "23"),
        child.format("0xaaa", 77),
        "[rank0]:[I1 NCCLUtils.cpp:279] Rank 0: created child comm 0 with color_id -1",  # no color
        opts.format(2, "27"),
        split.format(2, "27"),
        child.format("0xbbb", 77),
    )
    assert facts.pgs.select("pg_name", "split_color", "parent_comm", "comm").rows() == [
        ("23", 77, "0x10", "0xaaa"),
        ("27", 77, "0x10", "0xbbb"),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (  # torch 2.11: [Rank r] (rank in the PG) behind torchrun's [rankN]:
            "[rank2]:[E1129 05:37:13.942545491 ProcessGroupNCCL.cpp:689] [Rank 0] Watchdog caught "
            "collective operation timeout: WorkNCCL(SeqNum=4, OpType=ALLREDUCE, NumelIn=1024, "
            "NumelOut=1024, Timeout(ms)=20000) ran for 20073 milliseconds before timing out.",
            (0, 2, None, None, 4, "ALLREDUCE", 1024, 1024, 20000, 20073),
        ),
        (  # 2026: WorkNCCL prefix names the PG GUID and desc
            "[PG GUID 2(TP) Rank 0] Watchdog caught collective operation timeout: "
            "WorkNCCL(SeqNum=9, OpType=_ALLGATHER_BASE, NumelIn=1024, NumelOut=16384, "
            "Timeout(ms)=600000) ran for 600029 milliseconds before timing out.",
            (0, None, "2", "TP", 9, "_ALLGATHER_BASE", 1024, 16384, 600000, 600029),
        ),
        (  # Ray worker prefix, torch 2.4 exception line
            "(RayWorkerWrapper pid=270291, ip=10.175.94.190) [rank3]:[E219 08:58:32.606233339 "
            "ProcessGroupNCCL.cpp:1515] [PG 0 (default_pg) Rank 1] Process group watchdog thread "
            "terminated with exception: [Rank 1] Watchdog caught collective operation timeout: "
            "WorkNCCL(SeqNum=6463, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=1800000) "
            "ran for 1800017 milliseconds before timing out.",
            (1, 3, "0", "default_pg", 6463, "ALLREDUCE", 1, 1, 1800000, 1800017),
        ),
        (  # torch 1.x: no numel
            "[E ProcessGroupNCCL.cpp:566] [Rank 3] Watchdog caught collective operation timeout: "
            "WorkNCCL(SeqNum=212, OpType=BROADCAST, Timeout(ms)=1800000) ran for 1808204 "
            "milliseconds before timing out.",
            (3, None, None, None, 212, "BROADCAST", None, None, 1800000, 1808204),
        ),
        (  # blocking wait
            "[Rank 1] Work WorkNCCL(SeqNum=5, OpType=ALLREDUCE, NumelIn=8, NumelOut=8, "
            "Timeout(ms)=60000) timed out in blocking wait (TORCH_NCCL_BLOCKING_WAIT=1).",
            (1, None, None, None, 5, "ALLREDUCE", 8, 8, 60000, None),
        ),
    ],
)
def test_work_variants(line: str, expected: tuple) -> None:
    works = _lines(line).works
    assert works.drop("line", "text").rows() == [expected]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "[rank1]:[E1118 20:32:23.957372583 ProcessGroupNCCL.cpp:2168] [PG ID 0 PG GUID "
            "0(default_pg) Rank 1]  failure detected by watchdog at work sequence id: 2635 PG "
            "status: last enqueued work: 2635, last completed work: 2634",
            (1, 1, "0", "default_pg", 2635, 2635, None, 2634),
        ),
        (
            "[rank1]:[E1003 18:37:01.833575187 ProcessGroupNCCL.cpp:1664] [PG 0 (default_pg) "
            "Rank 1] Exception (either an error or timeout) detected by watchdog at work: 6463, "
            "last enqueued NCCL work: 6463, last completed NCCL work: 6462.",
            (1, 1, "0", "default_pg", 6463, 6463, None, 6462),
        ),
        (
            "[rank1]:[E ProcessGroupNCCL.cpp:1540] [PG 1 Rank 1] Timeout at NCCL work: 7, last "
            "enqueued NCCL work: 8, last completed NCCL work: 6.",
            (1, 1, "1", None, 7, 8, None, 6),
        ),
        (  # an uninitialised counter in torch 2.3 does not break the row
            "[rank2]:[E ProcessGroupNCCL.cpp:1537] [PG 0 Rank 2] Timeout at NCCL work: 1, last "
            "enqueued NCCL work: 1, last completed NCCL work: 76280750235782912.",
            (2, 2, "0", None, 1, 1, None, 76280750235782912),
        ),
        (  # the heartbeat monitor's dump signal
            "[rank3]:[E1129 05:37:13.174726360 ProcessGroupNCCL.cpp:1914] [PG ID 0 PG GUID 0 "
            "Rank 3] Received a dump signal due to a collective timeout from  rank 2 and we will "
            "try our best to dump the debug info. Last enqueued NCCL work: -1, last completed "
            "NCCL work: -1.This is most likely caused by incorrect usages of collectives",
            (3, 3, "0", None, None, -1, None, -1),
        ),
        (  # a Flight Recorder pg_status a framework logged
            "[PG ID 2 PG GUID 3(tp) Rank 0] pg_status: {'last_enqueued_collective': 315, "
            "'last_started_collective': 200, 'last_completed_collective': 183}",
            (0, None, "3", "tp", None, 315, 200, 183),
        ),
    ],
)
def test_progress_variants(line: str, expected: tuple) -> None:
    progress = _lines(line).progress
    assert progress.drop("line", "text").rows() == [expected]


def test_desync_report_lines() -> None:
    facts = _lines(
        "[E ProcessGroupNCCL.cpp:1150] Rank 0",
        "\t - To our best knowledge, the lagging/dead/mismatched ranks that caused the desync are:",
        "\t   - [0, 3] joined but didn't finish collective #183 (count from 1)",
        "\t     [7] finished collective #182, but didn't join collective #183 (count from 1)",
        "[1] finished collective #1155873, but didn't join collective #1155874",
        "\t - To our best knowledge, ranks [2, 5] are the lagging ranks that caused this "
        "timeout. They never joined any collectives",
    )
    assert facts.desync.drop("text").rows() == [
        (0, "not_finished", 182, 183, 3),
        (3, "not_finished", 182, 183, 3),
        (7, "not_joined", 182, 183, 4),
        (1, "not_joined", 1155873, 1155874, 5),
        (2, "never_joined", 0, 1, 6),
        (5, "never_joined", 0, 1, 6),
    ]
    assert facts.desync["text"][2].startswith("[7] finished collective #182")


def test_error_lines() -> None:
    facts = _lines(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
        "ProcessGroupNCCL.cpp:1251, internal error - please report this issue to the NCCL "
        "developers, NCCL version 2.18.6",
        "ncclInternalError: Internal check failed.",
        "ncclRemoteError: A call failed possibly due to a network error or a remote process "
        "exiting prematurely.",
        "ncclSystemError: System call (e.g. socket, malloc) or external library call failed.",
        "RuntimeError: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO for details)",
        '    raise RuntimeError(f"NCCL error: {error_str}")',
        "[PG 1 Rank 1] NCCL watchdog thread terminated with exception: [Rank 1] Watchdog caught",
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        "ncclSuccess is fine",
    )
    assert _kinds(facts.errors) == [
        (1, "dist_backend_error"),
        (2, "nccl_result"),
        (3, "nccl_result"),
        (4, "nccl_result"),
        (5, "nccl_error"),
        (7, "watchdog_terminated"),
    ]
    assert facts.errors[1] == Evidence(
        "synthetic.log", 2, "ncclInternalError: Internal check failed.", "nccl_result"
    )


def test_nothing_distributed() -> None:
    facts = _lines("hello", "Rank of the matrix is 3", "")
    assert facts.path == "synthetic.log"
    for frame in (facts.pgs, facts.works, facts.progress, facts.desync):
        assert frame.is_empty()
    assert facts.pgs.schema["ranks"] == pl.List(pl.Int64)
    assert facts.works.schema["seq"] == pl.Int64
    assert facts.errors == []
