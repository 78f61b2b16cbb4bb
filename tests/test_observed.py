"""What formed, against what was planned: communicators, links and hangs from real logs."""

from __future__ import annotations

import shutil
from pathlib import Path

from diagnose.analyze import Options, analyse
from diagnose.reading import read_inputs
from diagnose.result import document

DATA = Path(__file__).parent / "data"
HANG = DATA / "corpus" / "dsr1-decode-tp16-2node-hang-ib-completion-error.log"
DESYNC = DATA / "generated" / "nccl_1gpu_torch2.11" / "fr_desync_tp2x2"
MEGATRON = DATA / "generated" / "nccl_1gpu_torch2.11" / "megatron_tp2_pp2_dp2"


def report(path: Path) -> dict:
    return document(analyse(read_inputs(path), Options(), "report"))


def test_hang_log_names_the_tp_communicator_the_ib_error_and_the_stall():
    doc = report(HANG)
    tp = next(g for g in doc["groups"] if g["kind"] == "tp")
    assert tp["status"] == "matched" and tp["observed"] == [list(range(16))]
    assert tp["observed_by"] == "ranks"
    assert any("nNodes 2" in e["text"] or "commId" in e["text"] for e in tp["evidence"])
    hang = next(h for h in doc["hangs"] if h["group_kind"] == "tp")
    assert hang["op"] == "AllReduce" and hang["seq"] == 0
    assert any("NET/IB: Got completion" in e["text"] for e in hang["evidence"])
    assert "tpgds-aihub0007" in hang["verdict"]
    cross = [x for x in doc["links"] if x["transport"] == "NET/IB"]
    assert cross and all(x["group_kind"] == "tp" for x in cross)
    assert {tuple(x["hosts"]) for x in cross} <= {
        ("tpgds-aihub0007", "tpgds-aihub0008"),
        ("tpgds-aihub0008", "tpgds-aihub0007"),
    }
    assert {f["rule"] for f in doc["findings"]} >= {"RM101", "RM130", "RM303"}


def _with_launch(tmp_path: Path, source: Path, command: str) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    (target / "launch.sh").write_text(command + "\n")
    return target


def test_watchdog_timeout_names_the_rank_that_never_joined(tmp_path: Path):
    logs = _with_launch(
        tmp_path,
        DESYNC,
        "torchrun --nproc-per-node 4 pretrain_gpt.py --tensor-model-parallel-size 2",
    )
    doc = report(logs)
    tp = next(g for g in doc["groups"] if g["kind"] == "TENSOR_MODEL_PARALLEL_GROUP")
    assert tp["status"] == "matched"
    hang = doc["hangs"][0]
    assert hang["group_kind"] == "TENSOR_MODEL_PARALLEL_GROUP"
    assert (hang["op"], hang["seq"]) == ("ALLREDUCE", 4)
    assert hang["ranks"] == [2, 3] and hang["stuck_ranks"] == [3] and hang["waiting_ranks"] == [2]
    assert (
        "rank 3 of TENSOR_MODEL_PARALLEL_GROUP group [2, 3] never joined ALLREDUCE #4"
        in (hang["verdict"])
    )
    assert "RM130" in {f["rule"] for f in doc["findings"]}


def test_split_communicators_match_megatron_groups(tmp_path: Path):
    logs = _with_launch(
        tmp_path,
        MEGATRON,
        "torchrun --nproc-per-node 8 pretrain_gpt.py --tensor-model-parallel-size 2 "
        "--pipeline-model-parallel-size 2",
    )
    doc = report(logs)
    kinds = {g["kind"]: g for g in doc["groups"] if g["kind"]}
    for kind in ("TENSOR_MODEL_PARALLEL_GROUP", "PIPELINE_MODEL_PARALLEL_GROUP",
                 "DATA_PARALLEL_GROUP", "MODEL_PARALLEL_GROUP"):  # fmt: skip
        assert kinds[kind]["status"] == "matched", kind
        assert sorted(map(sorted, kinds[kind]["observed"])) == sorted(
            map(sorted, kinds[kind]["ranks"])
        ), kind
    assert not [g for g in doc["groups"] if g["status"] == "unexpected"]


def test_report_page_shows_the_hang_and_the_links():
    from diagnose.report_html import render_html

    html = render_html(report(HANG))
    assert '<section id="hangs">' in html and "AllReduce #0" in html
    assert '<section id="links">' in html and "NET/IB" in html
    assert "seen in the logs" in html
