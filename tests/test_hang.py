"""Hang analysis from Flight Recorder dumps, checked against the desync samples and against
what PyTorch's own analyzer printed for them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from diagnose.classify import kind_of_desc
from diagnose.hang import hangs, progress, ranks_text, trace_hangs
from parsers.flight_recorder import FRDump, parse_flight_recorder
from parsers.kineto import KinetoTrace, parse_kineto

GENERATED = Path(__file__).parent / "data" / "generated"
NCCL = GENERATED / "nccl_1gpu_torch2.11"
GLOO = GENERATED / "gloo_cpu_torch2.13"


def no_kind(name: str | None, desc: str | None) -> str | None:
    return None


def dumps(*folders: Path) -> list[FRDump]:
    return [
        parse_flight_recorder(p, f"{p.parent.name}/{p.name}")
        for folder in folders
        for p in sorted(folder.iterdir())
    ]


def analyzer_report(path: Path) -> dict[str, object]:
    """The fields of torchfrtrace's `Not all ranks joining collective` block."""
    text = path.read_text()
    group = re.search(r"group info: (\S+):(\S+)", text)
    assert group is not None
    return {
        "seq": int(re.search(r"sequence number: (\d+)", text).group(1)),  # type: ignore[union-attr]
        "pg_name": group.group(1),
        "pg_desc": group.group(2),
        "profiling_name": re.search(r"collective: (\S+)", text).group(1),  # type: ignore[union-attr]
        "stuck": sorted(
            int(r) for r in re.search(r"missing ranks: \{(.*)\}", text).group(1).split(",")
        ),  # type: ignore[union-attr]
        "ranks": sorted(
            int(r) for r in re.search(r"expected ranks: \{(.*)\}", text).group(1).split(",")
        ),  # type: ignore[union-attr]
        "sizes": json.loads(re.search(r"input sizes: (\[.*\])", text).group(1)),  # type: ignore[union-attr]
        "state": re.search(r"collective state: (\w+)", text).group(1),  # type: ignore[union-attr]
    }


def test_nccl_desync_matches_pytorch_analyzer() -> None:
    expected = analyzer_report(NCCL / "fr_desync_tp2x2/fr_trace_analyzer_on_fr_auto.txt")
    (found,) = hangs(dumps(NCCL / "fr_desync_tp2x2/fr_auto"), no_kind)
    assert {
        "seq": found["seq"],
        "pg_name": found["pg_name"],
        "pg_desc": found["pg_desc"],
        "profiling_name": found["profiling_name"],
        "stuck": found["stuck_ranks"],
        "ranks": found["ranks"],
        "sizes": found["sizes"],
        "state": found["state"],
    } == expected
    assert found["op"] == "ALLREDUCE" and found["waiting_ranks"] == [2]
    assert (
        found["verdict"]
        == "rank 3 of TP group [2, 3] never joined all_reduce #4; rank 2 waits there"
    )
    assert found["last_completed"] == {"2": 3, "3": 3}
    assert found["evidence"][0]["file"] == "fr_auto/nccl_trace_rank_2"
    assert "all_reduce at" in found["evidence"][0]["text"]


def test_nccl_desync_with_explicit_and_watchdog_dumps_together() -> None:
    both = dumps(NCCL / "fr_desync_tp2x2/fr", NCCL / "fr_desync_tp2x2/fr_auto")
    (found,) = hangs(both, lambda name, desc: "tp")
    assert (
        found["verdict"]
        == "rank 3 of tp group [2, 3] never joined all_reduce #4; rank 2 waits there"
    )
    assert any("several dumps" in n for n in found["notes"])


def test_explicit_dumps_alone_cannot_blame_a_rank_without_a_dump() -> None:
    only = dumps(NCCL / "fr_desync_tp2x2/fr")  # rank 2 aborted before dumping
    assert hangs(only, no_kind) == []
    tp = next(p for p in progress(only, no_kind) if p["pg_name"] == "2")
    assert tp["no_dump"] == [2] and tp["last_issued"] == {"3": 3}


@pytest.mark.parametrize("folder", ["fr", "fr_json"])
def test_gloo_desync_where_the_analyzer_crashes(folder: str) -> None:
    assert "KeyError" in (GLOO / "fr_desync_tp2x2/fr_trace_analyzer_on_fr.txt").read_text()
    (found,) = hangs(dumps(GLOO / "fr_desync_tp2x2" / folder), no_kind)
    assert (
        found["verdict"]
        == "rank 3 of TP group [2, 3] never joined all_reduce #4; rank 2 waits there"
    )
    assert found["members_from"] == "dumps that name the group"
    assert (found["stuck_ranks"], found["waiting_ranks"], found["seq"]) == ([3], [2], 4)


@pytest.mark.parametrize("family", [NCCL, GLOO])
@pytest.mark.parametrize("layout", ["megatron_tp2_pp2_dp2", "sglang_tp8_attncp2_moeep4"])
def test_healthy_runs_have_no_hang(family: Path, layout: str) -> None:
    # The analyzer prints MISMATCH for Megatron's batch_isend_irecv and would flag the uneven
    # all_to_all's per-rank sizes; neither is a hang.
    assert hangs(dumps(family / layout / "fr"), no_kind) == []


def test_progress_per_group() -> None:
    rows = progress(
        dumps(NCCL / "megatron_tp2_pp2_dp2/fr"), lambda n, d: kind_of_desc("megatron", d)
    )
    tp = next(
        r for r in rows if r["ranks"] == [0, 1] and r["group_kind"] == "TENSOR_MODEL_PARALLEL_GROUP"
    )
    assert tp["last_issued"] == tp["last_completed"] == {"0": 6, "1": 6}


def _edited(
    tmp_path: Path, edit: dict[int, dict[str, object]], drop: int | None = None
) -> list[FRDump]:
    """The NCCL desync group [0, 1] (healthy) with entries of some rank changed."""
    out = []
    for rank in (0, 1):
        doc = json.loads((NCCL / f"fr_desync_tp2x2/fr_json/fr_trace_rank_{rank}.json").read_text())
        if rank in edit:
            doc["entries"][1].update(edit[rank])
        if rank == drop:
            doc["entries"] = doc["entries"][:2]
        path = tmp_path / f"fr_trace_rank_{rank}.json"
        path.write_text(json.dumps(doc))
        out.append(parse_flight_recorder(path, path.name))
    return out


def test_different_op_and_sizes(tmp_path: Path) -> None:
    (op,) = hangs(_edited(tmp_path, {1: {"profiling_name": "nccl:all_gather"}}), no_kind)
    assert (op["problem"], op["seq"], op["stuck_ranks"], op["op"]) == ("op", 2, [1], "ALLREDUCE")
    assert op["verdict"].startswith("rank 1 of TP group [0, 1] issued a different op at #2")
    (size,) = hangs(_edited(tmp_path, {0: {"input_sizes": [[512]]}}), no_kind)
    assert size["problem"] == "sizes" and "every member completed it" in size["verdict"]
    (gone,) = hangs(_edited(tmp_path, {}, drop=1), no_kind)
    assert (gone["problem"], gone["seq"], gone["stuck_ranks"], gone["waiting_ranks"]) == (
        "missing",
        3,
        [1],
        [0],
    )


def test_pending_send_without_a_matching_recv(tmp_path: Path) -> None:
    out = []
    for rank in (0, 4):
        doc = json.loads(
            (NCCL / f"megatron_tp2_pp2_dp2/fr_json/fr_trace_rank_{rank}.json").read_text()
        )
        pp = [e for e in doc["entries"] if e["process_group"][0] == "23"]
        if rank == 0:
            pp[0]["state"], pp[0]["retired"] = "scheduled", False
        else:  # rank 4 never posted its recv
            doc["entries"] = [e for e in doc["entries"] if e is not pp[0]]
        path = tmp_path / f"fr_trace_rank_{rank}.json"
        path.write_text(json.dumps(doc))
        out.append(parse_flight_recorder(path, path.name))
    (found,) = hangs(out, no_kind)
    assert (found["problem"], found["op"], found["stuck_ranks"], found["waiting_ranks"]) == (
        "p2p",
        "SEND",
        [4],
        [0],
    )
    assert "never posted the recv matching rank 0's send" in found["verdict"]


def test_ranks_text() -> None:
    assert ranks_text([3]) == "rank 3"
    assert ranks_text([2, 0, 1]) == "ranks 0–2"
    assert ranks_text([0, 2]) == "ranks 0, 2"


def _seq_trace(tmp_path: Path, rank: int, seqs: int) -> KinetoTrace:
    """A torch >= 2.12 style trace: record_param_comms with `Seq`."""
    args = {"Collective name": "allreduce", "Process Group Name": "3",
            "Process Group Description": "tp:device", "Group size": 2, "Global rank start": 0,
            "Global rank stride": 1, "In msg nelems": 1024, "Out msg nelems": 1024,
            "dtype": "Float", "Rank": rank}  # fmt: skip
    events = [
        {"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 1,
         "ts": 10.0 * seq, "dur": 1.0, "args": {**args, "Seq": seq, "External id": seq}}
        for seq in range(1, seqs + 1)
    ]  # fmt: skip
    pgs = [{"pg_name": "3", "pg_desc": "tp:device", "pg_size": 2, "ranks": [0, 1]}]
    info = {"backend": "nccl", "rank": rank, "world_size": 2, "pg_config": pgs}
    path = tmp_path / f"rank{rank}.json"
    path.write_text(
        json.dumps({"schemaVersion": 1, "distributedInfo": info, "traceEvents": events})
    )
    return parse_kineto(path, path.name)


def test_trace_sequence_gaps(tmp_path: Path) -> None:
    traces = [_seq_trace(tmp_path, 0, 4), _seq_trace(tmp_path, 1, 3)]
    (found,) = trace_hangs(traces, lambda name, desc: "tp")
    assert (found["source"], found["seq"], found["op"]) == ("trace", 4, "ALLREDUCE")
    assert (found["stuck_ranks"], found["waiting_ranks"]) == ([1], [0])
    assert found["verdict"].startswith("rank 1 of tp group [0, 1] never joined all_reduce #4")
    assert "profiling window" in found["verdict"]
    # torch 2.11 traces carry no Seq: nothing to line up.
    files = sorted((NCCL / "fr_desync_tp2x2/trace").glob("*.json.gz"))
    assert trace_hangs([parse_kineto(f, f.name) for f in files], no_kind) == []
