"""Profiler traces: generated torch 2.11 / 2.13 traces with ground truth, real third-party
traces, synthetic edge cases (on-demand layout, truncation, corruption, chunk boundaries)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from benchmarks import generate_trace
from diagnose.classify import merge_observed
from parsers import kineto
from parsers.kineto import TraceError, parse_kineto, sniff_kineto

DATA = Path(__file__).parent / "data"
GENERATED = DATA / "generated"
CORPUS = DATA / "corpus"
FAMILIES = ["gloo_cpu_torch2.13", "nccl_1gpu_torch2.11"]
LAYOUTS = ["megatron_tp2_pp2_dp2", "sglang_tp8_attncp2_moeep4", "fr_desync_tp2x2"]
SETS = [(f, lay) for f in FAMILIES for lay in LAYOUTS]
REPO = Path(__file__).parent.parent


@cache
def traces(family: str, layout: str) -> tuple[kineto.KinetoTrace, ...]:
    files = sorted((GENERATED / family / layout / "trace").glob("rank*.json.gz"))
    return tuple(parse_kineto(f, f"{layout}/{f.name}") for f in files)


def truth(family: str, layout: str) -> dict:
    return json.loads((GENERATED / family / layout / "layout.json").read_text())


def _raw_comm_events(path: Path) -> list[dict]:
    """What a full json.load finds: the events the scan must return, no more, no less."""
    with gzip.open(path) as fh:
        doc = json.load(fh)
    return [e for e in doc["traceEvents"] if "Collective name" in (e.get("args") or {})]


@pytest.mark.parametrize(("family", "layout"), SETS)
def test_pg_config_equals_ground_truth(family: str, layout: str) -> None:
    expected = truth(family, layout)
    found = set()
    for t in traces(family, layout):
        assert t.world_size == expected["world_size"]
        assert t.dist_info_at == "start"
        found |= {(g.name, g.desc, tuple(g.ranks or ())) for g in t.pg_config if g.name != "0"}
    wanted = {
        (g["pg_name"], g["group_desc"], tuple(g["ranks"]))
        for g in expected["groups_in_creation_order"]
    }
    assert found == wanted
    ranks = sorted(t.rank for t in traces(family, layout))
    assert ranks == sorted({int(p.stem.split(".")[0][4:]) for p in _trace_files(family, layout)})


def _trace_files(family: str, layout: str) -> list[Path]:
    return sorted((GENERATED / family / layout / "trace").glob("rank*.json.gz"))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scan_finds_exactly_the_comm_events_json_load_finds(layout: str) -> None:
    family = "nccl_1gpu_torch2.11"
    for path, trace in zip(_trace_files(family, layout), traces(family, layout), strict=True):
        raw = _raw_comm_events(path)
        assert trace.comms.height == len(raw)
        assert sorted(trace.comms["ext_id"].to_list()) == sorted(
            e["args"]["External id"] for e in raw
        )
        cpu = [e for e in raw if e["name"] == "record_param_comms"]
        assert trace.comms.filter(trace.comms["kind"] == "cpu_op").height == len(cpu)


def test_megatron_counts_and_irregular_group() -> None:
    ts = traces("nccl_1gpu_torch2.11", "megatron_tp2_pp2_dp2")
    cpu_ops = sum(t.comms.filter(t.comms["kind"] == "cpu_op").height for t in ts)
    assert cpu_ops == 184  # the corpus README's count of record_param_comms
    rank0 = ts[0]
    # MODEL_PARALLEL_GROUP [0, 1, 4, 5]: `Process Group Ranks` is "[]", pg_config has them.
    mp = next(g for g in rank0.event_pgs if g.desc == "MODEL_PARALLEL_GROUP")
    assert mp.ranks is None
    assert rank0.group(mp.name).ranks == [0, 1, 4, 5]  # type: ignore[union-attr]
    cp = next(g for g in rank0.event_pgs if g.desc == "CONTEXT_PARALLEL_GROUP")
    assert cp.ranks == [0]  # size-1 group: this rank
    send = rank0.comms.filter(rank0.comms["collective"] == "send").row(0, named=True)
    assert (send["peer"], send["bytes"], send["pg_desc"]) == (
        4,
        8192,
        "PIPELINE_MODEL_PARALLEL_GROUP",
    )


def test_late_groups_are_reported() -> None:
    expected = truth("nccl_1gpu_torch2.11", "sglang_tp8_attncp2_moeep4")
    late_truth = {
        (g["pg_name"], tuple(g["ranks"])) for g in expected["groups_created_after_profiler_start"]
    }
    ts = traces("nccl_1gpu_torch2.11", "sglang_tp8_attncp2_moeep4")
    observed = merge_observed([g for t in ts for g in kineto.observed_groups(t, "sglang")])
    late = {(g.name, tuple(g.ranks or ())) for g in observed if g.late}
    assert late == late_truth
    assert all(g.kind is None and g.desc == "late_created:device" for g in observed if g.late)
    assert {g.kind for g in observed if g.desc == "attention_tp:cpu"} == {"attention_tp"}
    assert any("created after profiling started" in n for n in ts[0].notes)
    assert {n for t in ts for n in t.late_pgs} == {"61", "62"}


def test_gloo_traces_have_groups_but_no_comm_events() -> None:
    for t in traces("gloo_cpu_torch2.13", "sglang_tp8_attncp2_moeep4"):
        assert t.comms.is_empty() and t.backend == "gloo"
        assert any("gloo records none" in n for n in t.notes)
        assert len(t.pg_config) == 17


# --- real third-party traces ------------------------------------------------------------


def _corpus(name: str) -> kineto.KinetoTrace:
    return parse_kineto(CORPUS / name, name)


def test_corpus_deepseek_world_size_and_no_invented_groups() -> None:
    t = _corpus("deepseek-v3-train-ep64-rank0-trace-trimmed.log")
    assert (t.rank, t.world_size, t.backend) == (0, 64, "nccl")
    assert t.comms.is_empty() and not t.pg_config and not t.event_pgs
    assert kineto.observed_groups(t) == []


def test_corpus_hta_control_kernels_without_group_args() -> None:
    t = _corpus("hta-control-rank3-of-8-trimmed.log")
    assert (t.rank, t.world_size) == (3, 8)
    counts = dict(t.comms.group_by("collective").len().iter_rows())
    assert counts == {"sendrecv": 42, "allreduce": 18}
    assert t.comms["pg_name"].null_count() == t.comms.height
    assert kineto.observed_groups(t) == []
    assert any("no process-group args" in n for n in t.notes)


def test_corpus_hta_two_rank_default_pg() -> None:
    t = _corpus("hta-nccl-data-2rank-default-pg-trimmed.log")
    assert (t.rank, t.world_size, t.nccl_version) == (0, 2, "2.17.1")
    assert t.pg_config == [kineto.PgEntry("0", "default_pg", 2, [0, 1], "cuda:nccl")]
    ops = t.comms.filter(t.comms["collective"] != "wait")  # Work.wait() names no group here
    assert set(ops["pg_name"]) == {"0"} and set(ops["group_size"]) == {2}
    assert set(ops["collective"]) == {"allreduce", "broadcast"}
    groups = kineto.observed_groups(t, "vllm")
    assert [(g.ranks, g.kind, g.late) for g in groups] == [([0, 1], "world", False)]


def test_corpus_hta_sampled_rank_of_128() -> None:
    t = _corpus("hta-sampled-rank1-of-128-sendrecv-trimmed.log")
    assert (t.rank, t.world_size) == (1, 128)
    assert set(t.comms["collective"]) == {"sendrecv"}
    assert kineto.observed_groups(t) == []


def test_sniff() -> None:
    for path in [*CORPUS.glob("*trace*.log"), *CORPUS.glob("hta-*.log")]:
        assert sniff_kineto(path.read_bytes()[:8192]), path
    trace = _trace_files("nccl_1gpu_torch2.11", "megatron_tp2_pp2_dp2")[0]
    assert sniff_kineto(trace.read_bytes()[:4096])
    fr = GENERATED / "nccl_1gpu_torch2.11" / "megatron_tp2_pp2_dp2"
    assert not sniff_kineto((fr / "fr" / "fr_trace_rank_0").read_bytes()[:4096])
    assert not sniff_kineto((fr / "fr_json" / "fr_trace_rank_0.json").read_bytes()[:4096])
    assert not sniff_kineto((CORPUS / "dsr1-tp16-2node-nccl-connect-refused.log").read_bytes())


# --- synthetic traces: layouts, big groups, damage ----------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("traces")
    out = {
        "before": folder / "rank5.json",
        "after": folder / "rank5.pt.trace.json",
        "gzip": folder / "worker0.1700000000.pt.trace.json.gz",
    }
    generate_trace.main([str(out["before"]), "--size-mb", "3", "--rank", "5"])
    generate_trace.main(
        [str(out["after"]), "--size-mb", "3", "--rank", "5", "--dist-info", "after"]
    )
    generate_trace.main([str(out["gzip"]), "--size-mb", "3", "--rank", "5"])
    return out


def test_dist_info_before_or_after_and_ranks_as_strings(synthetic: dict[str, Path]) -> None:
    before = parse_kineto(synthetic["before"], "before")
    after = parse_kineto(synthetic["after"], "after")
    assert (before.dist_info_at, after.dist_info_at) == ("start", "end")
    assert before.pg_config == [g._replace(backend="cuda:nccl") for g in after.pg_config]
    assert after.nccl_version == "unknown" and after.late_pgs == []
    assert before.rank == after.rank == 5 and before.world_size == 32
    assert before.comms.equals(after.comms)
    with open(synthetic["before"]) as fh:
        events = [e for e in json.load(fh)["traceEvents"] if "Collective name" in e.get("args", {})]
    assert before.comms.height == len(events)


def test_gzip_stream_equals_mapped_scan_at_any_chunk_size(
    synthetic: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mapped = parse_kineto(synthetic["before"], "plain")
    for chunk, inflater in ((1 << 20, kineto._igzip), (4093, None), (997, kineto._igzip)):
        monkeypatch.setattr(kineto, "CHUNK", chunk)
        monkeypatch.setattr(kineto, "KEEP", 2 * chunk)
        monkeypatch.setattr(kineto, "_igzip", inflater)  # None: the standard library's gzip
        streamed = parse_kineto(synthetic["gzip"], "gzip")
        assert streamed.comms.equals(mapped.comms), chunk
        assert streamed.pg_config == mapped.pg_config


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _event(args: dict, name: str = "record_param_comms", cat: str = "cpu_op") -> dict:
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": 1, "ts": 1.0, "dur": 2.0,
            "args": args}  # fmt: skip


def test_long_groups_invalid_values_and_control_characters(tmp_path: Path) -> None:
    ranks = list(range(0, 128, 2))
    cut = "[" + ", ".join(str(r) for r in ranks[:30]) + ", ...]"
    args = {"Collective name": "allreduce", "Process Group Name": "7",
            "Process Group Description": "undefined", "Process Group Ranks": cut,
            "Group size": 64, "Global rank start": 0, "Global rank stride": 2,
            "In msg nelems": 10, "Out msg nelems": 10, "dtype": "BFloat16",
            "In split size": "[]", "Out split size": "[]"}  # fmt: skip
    kernel = {**args, "Process Group Description": "PLACEHOLDER"}
    del kernel["Global rank start"], kernel["Global rank stride"]
    doc = {"schemaVersion": 1,
           "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 128,
                               "pg_config": [{"pg_name": "0", "pg_desc": "default_pg",
                                              "pg_size": 128, "ranks": list(range(128))}]},
           "traceEvents": [_event(args), _event(kernel, "ncclDevKernel_AllReduce(x)", "kernel"),
                           _event({"note": "a\tb"}, "aten::mm")]}  # fmt: skip
    text = json.dumps(doc).replace('"PLACEHOLDER"', "").replace("a\\tb", "a\tb")
    t = parse_kineto(_write(tmp_path / "t.json", text), "t.json")
    assert t.comms.height == 2
    assert t.comms["pg_desc"].to_list() == ["undefined", ""]
    assert t.comms["bytes"].to_list() == [20, 20]
    assert t.event_pgs[0].ranks == ranks  # rebuilt from start/stride, not the cut string
    assert t.late_pgs == ["7"]


@pytest.mark.parametrize("isal", [True, False])
def test_truncated_and_corrupt_traces_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isal: bool
) -> None:
    if not isal:
        monkeypatch.setattr(kineto, "_igzip", None)
    source = _trace_files("nccl_1gpu_torch2.11", "megatron_tp2_pp2_dp2")[0].read_bytes()
    cut = _write_bytes(tmp_path / "cut.json.gz", source[: len(source) // 2])
    with pytest.raises(TraceError, match=r"cut\.json\.gz: truncated gzip"):
        parse_kineto(cut, "cut.json.gz")
    damaged = bytearray(source)
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = b"\xff" * 64
    bad = _write_bytes(tmp_path / "bad.json.gz", bytes(damaged))
    with pytest.raises(TraceError, match=r"bad\.json\.gz: (corrupt|truncated) gzip"):
        parse_kineto(bad, "bad.json.gz")
    plain = gzip.decompress(source)
    half = _write_bytes(tmp_path / "half.json", plain[: len(plain) // 2])
    with pytest.raises(TraceError, match=r"half\.json: truncated trace"):
        parse_kineto(half, "half.json")
    fr_json = GENERATED / "nccl_1gpu_torch2.11/megatron_tp2_pp2_dp2/fr_json/fr_trace_rank_0.json"
    with pytest.raises(TraceError, match="no traceEvents"):
        parse_kineto(fr_json, "fr.json")
    with pytest.raises(TraceError, match="empty"):
        parse_kineto(_write_bytes(tmp_path / "empty.json", b""), "empty.json")


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_benchmark_runs_small(tmp_path: Path) -> None:
    """The CI-sized benchmark: every reader of the side-by-side table runs."""
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_trace.py"), "--size-mb", "2",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    lines = out.stdout.splitlines()
    assert any(line.startswith("rankmap       gzip") and "comm events" in line for line in lines)
    assert any(line.startswith("json.load") and "events" in line for line in lines)
