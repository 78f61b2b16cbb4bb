"""`rankmap report` on the real SGLang logs of tests/data/corpus (provenance in its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnose.analyze import Options, analyse
from diagnose.reading import read_inputs
from diagnose.result import document

CORPUS = Path(__file__).parent / "data" / "corpus"

EXPECTED = {
    "dsr1-decode-tp16-2node-hang-ib-completion-error.log": {"version": "0.5.9"},
    "dsr1-pd-decode-tp16-2node-nccl-info.log": {"version": "0.5.8.post1"},
    "dsr1-tp16-2node-nccl-connect-refused.log": {"version": None},
    "sglang-dsr1-decode-tp16-node1-nccl-init.log": {"version": None},
}


def report(name: str) -> dict:
    found = read_inputs(CORPUS / name)
    return document(analyse(found, Options(), "report"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sizes_and_tp_across_nodes(name: str):
    doc = report(name)
    p = {k: v["value"] for k, v in doc["params"].items()}
    assert (p["tp_size"], p["dp_size"], p["ep_size"], p["pp_size"]) == (16, 1, 1, 1)
    assert doc["nnodes"] == 2 and doc["world_size"] == 16
    assert doc["engine_version"] == EXPECTED[name]["version"]
    tp = next(g for g in doc["groups"] if g["kind"] == "tp")
    assert tp["crosses_nodes"] and len(tp["hosts"][0]) == 2
    rm101 = [f for f in doc["findings"] if f["rule"] == "RM101"]
    assert rm101, [f["rule"] for f in doc["findings"]]
    assert all(e["file"] == name and e["line"] for e in rm101[0]["evidence"])


def test_hang_log_names_hosts_and_nccl_evidence():
    doc = report("dsr1-decode-tp16-2node-hang-ib-completion-error.log")
    tp = next(g for g in doc["groups"] if g["kind"] == "tp")
    assert tp["hosts"] == [["tpgds-aihub0007", "tpgds-aihub0008"]]
    texts = [e["text"] for f in doc["findings"] if f["rule"] == "RM101" for e in f["evidence"]]
    assert any("spans across nodes" in t for t in texts)
    assert any("nRanks 16 nNodes 2" in t for t in texts)
    warn = next(f for f in doc["findings"] if f["rule"] == "RM303")
    assert "vendor err 81" in warn["message"]


def test_server_args_dump_is_the_source_of_sizes():
    doc = report("dsr1-pd-decode-tp16-2node-nccl-info.log")
    assert doc["params"]["tp_size"]["source"] == "dsr1-pd-decode-tp16-2node-nccl-info.log:20"
    assert doc["layout_version"].startswith("v0.5.2")
    assert doc["groups"][-1]["kind"] == "attention_tp"  # built last before 0.5.9


def test_connect_refused_names_the_group_being_created():
    doc = report("dsr1-tp16-2node-nccl-connect-refused.log")
    crash = next(f for f in doc["findings"] if f["rule"] == "RM302")
    assert "creating the `tp` process group" in crash["message"]
    assert "spans 2 nodes" in crash["message"]
    assert doc["params"]["nnodes"]["source"].startswith("inferred: 2 hosts")


def test_bundled_two_node_sample_matches_its_corpus_source():
    from diagnose.resources import sample_logs_dir

    found = read_inputs(sample_logs_dir() / "two_node_tp16")
    doc = document(analyse(found, Options(gpus_per_node=8), "report"))
    assert any(f["rule"] == "RM101" for f in doc["findings"])
    assert {i["status"] for i in doc["inputs"]} == {"parsed", "skipped"}


@pytest.mark.parametrize("name", [".", "dsr1-decode-tp16-2node-hang-ib-completion-error.log"])
def test_a_rank_shows_a_process_of_its_own_host(name: str) -> None:
    """The whole corpus holds several jobs, so one rank number has a process on each job's
    hosts: a rank shows the pid its NCCL lines show on the rank's own host, or none."""
    found = read_inputs(CORPUS / name)
    doc = document(analyse(found, Options(), "report"))
    seen = {
        (host, pid)
        for facts in found.nccl
        for host, pid in facts.procs.select("host", "pid").iter_rows()
    }
    placed = [(p["host"], p["pid"]) for p in doc["placement"] if p["pid"] is not None]
    assert all(process in seen for process in placed)
    assert bool(placed) == (name != ".")  # the jobs' world communicators are on other hosts
