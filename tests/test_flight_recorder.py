"""Flight Recorder dumps: pickle and JSON flavours, gloo and NCCL, and refused pickles."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import polars as pl
import pytest

from parsers.flight_recorder import (
    FlightRecorderError,
    observed_groups,
    parse_flight_recorder,
    rank_of_file,
    sniff_flight_recorder,
)

GENERATED = Path(__file__).parent / "data" / "generated"
NCCL = GENERATED / "nccl_1gpu_torch2.11"
GLOO = GENERATED / "gloo_cpu_torch2.13"
KEY = ["record_id", "pg_name", "pg_desc", "collective_seq_id", "p2p_seq_id", "op", "src", "dst",
       "input_sizes", "output_sizes", "input_dtypes", "state", "retired"]  # fmt: skip


@pytest.mark.parametrize("family", [NCCL, GLOO])
@pytest.mark.parametrize("layout", ["megatron_tp2_pp2_dp2", "sglang_tp8_attncp2_moeep4"])
def test_pickle_and_json_dumps_agree(family: Path, layout: str) -> None:
    for pickled in sorted((family / layout / "fr").iterdir()):
        as_json = family / layout / "fr_json" / f"{pickled.name}.json"
        a = parse_flight_recorder(pickled, pickled.name)
        b = parse_flight_recorder(as_json, as_json.name)
        assert a.rank == b.rank == rank_of_file(pickled.name)
        assert a.entries.select(KEY).equals(b.entries.select(KEY))
        assert a.pg_config == b.pg_config
        assert a.pg_status.equals(b.pg_status)
        assert sniff_flight_recorder(pickled.read_bytes()[:4096])
        assert sniff_flight_recorder(as_json.read_bytes()[:4096])


@pytest.mark.parametrize("layout", ["megatron_tp2_pp2_dp2", "sglang_tp8_attncp2_moeep4"])
def test_nccl_pg_config_is_ground_truth(layout: str) -> None:
    truth = json.loads((NCCL / layout / "layout.json").read_text())
    groups = truth["groups_in_creation_order"] + truth.get(
        "groups_created_after_profiler_start", []
    )
    wanted = {(g["pg_name"], g["group_desc"], tuple(g["ranks"])) for g in groups}
    found = set()
    for path in sorted((NCCL / layout / "fr").iterdir()):
        dump = parse_flight_recorder(path, path.name)
        for g in observed_groups(dump):
            assert dump.rank in g.ranks  # type: ignore[operator]
            found.add((g.name, g.desc, tuple(g.ranks or ())))
    found.discard(("0", "default_pg", tuple(range(truth["world_size"]))))
    # Only NCCL groups that made a communicator register: no gloo twins, no idle groups.
    assert found <= wanted
    assert all(not (d.endswith(":cpu") or d.endswith("_GLOO")) for _, d, _ in found)
    assert len(found) >= 12


def test_entries_and_status() -> None:
    dump = parse_flight_recorder(NCCL / "megatron_tp2_pp2_dp2/fr/fr_trace_rank_4", "r4")
    assert (dump.version, dump.comm_lib_version) == ("2.10", "2.28.9")
    sends = dump.entries.filter(pl.col("op") == "send")
    assert sends.select("src", "dst").rows() == [(1, 0), (1, 0)]  # "nccl:send 1->0"
    recv = dump.entries.filter(pl.col("op") == "recv").row(0, named=True)
    assert (recv["src"], recv["dst"], recv["is_p2p"]) == (0, 1, True)  # "nccl:recv 1<-0"
    tp = dump.pg_status.filter(pl.col("pg_name") == "21").row(0, named=True)
    assert (tp["last_enqueued"], tp["last_completed"]) == (6, 6)
    auto = parse_flight_recorder(NCCL / "fr_desync_tp2x2/fr_auto/nccl_trace_rank_2", "auto")
    assert auto.entries["stack"][3].startswith("all_reduce at ")
    assert auto.entries["state"].to_list() == ["completed"] * 3 + ["scheduled"]


def test_gloo_dump_has_no_pg_config() -> None:
    dump = parse_flight_recorder(GLOO / "fr_desync_tp2x2/fr/fr_trace_rank_3", "g3")
    assert dump.pg_config == [] and observed_groups(dump) == []
    assert dump.entries["pg_name"].unique().to_list() == ["2"]
    assert any("no pg_config" in n for n in dump.notes)


class _Payload:
    """Would run a shell command when unpickled, if anything let it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _Plain:
    pass


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickle_is_refused_and_never_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    dump = {"version": "2.10", "pg_config": {}, "entries": [{"frames": _Payload(marker)}]}
    path = tmp_path / "nccl_trace_rank_0"
    path.write_bytes(pickle.dumps(dump, protocol=protocol))
    with pytest.raises(
        FlightRecorderError, match=r"refused to unpickle: it asks for (posix|os)\.system"
    ):
        parse_flight_recorder(path, "nccl_trace_rank_0")
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"version": "2.10", "entries": [_Plain()]}, protocol=protocol))
    with pytest.raises(FlightRecorderError, match="refused to unpickle"):
        parse_flight_recorder(path, "nccl_trace_rank_0")


def test_damaged_and_foreign_dumps(tmp_path: Path) -> None:
    data = (NCCL / "megatron_tp2_pp2_dp2/fr/fr_trace_rank_0").read_bytes()
    cut = tmp_path / "fr_trace_rank_0"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FlightRecorderError, match="truncated or corrupt pickle"):
        parse_flight_recorder(cut, "cut")
    other = tmp_path / "x.json"
    other.write_text('{"traceEvents": []}')
    with pytest.raises(FlightRecorderError, match="not a Flight Recorder dump"):
        parse_flight_recorder(other, "x.json")
    other.write_text("[1, 2]")
    with pytest.raises(FlightRecorderError, match="not a Flight Recorder dump"):
        parse_flight_recorder(other, "x.json")
    assert not sniff_flight_recorder(b'{"schemaVersion": 1, "distributedInfo": {"pg_config": []}}')
