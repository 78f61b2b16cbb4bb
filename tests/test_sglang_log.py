"""SGLang log facts: the four real pastes in tests/data/corpus plus synthetic lines."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from diagnose.engines.base import EngineLog
from diagnose.model import Source
from parsers.sglang_log import parse_sglang_log, sniff_sglang

CORPUS = Path(__file__).parent / "data" / "corpus"
HANG = "dsr1-decode-tp16-2node-hang-ib-completion-error.log"
PD = "dsr1-pd-decode-tp16-2node-nccl-info.log"
REFUSED = "dsr1-tp16-2node-nccl-connect-refused.log"
NCCL_INIT = "sglang-dsr1-decode-tp16-node1-nccl-init.log"


def _corpus(name: str) -> EngineLog:
    return parse_sglang_log(CORPUS / name, name)


def _write(tmp_path: Path, text: str | bytes) -> EngineLog:
    path = tmp_path / "run.log"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return parse_sglang_log(path, "run.log")


def _kinds(log: EngineLog, kind: str) -> list[int | None]:
    return [event.line for event in log.events if event.kind == kind]


def _host_rows(log: EngineLog, kind: str) -> set[tuple[str | None, str | None]]:
    rows = log.hosts.filter(pl.col("kind") == kind).select("host", "ip").rows()
    return set(rows)


# --- the decode instance of a PD setup, node-rank 0 (SGLang 0.5.8.post1) -----------


def test_pd_server_args_with_provenance() -> None:
    log = _corpus(PD)
    assert log.path == PD
    values = {name: param.value for name, param in log.config.items()}
    assert values["tp_size"] == 16
    assert values["nnodes"] == 2
    assert values["node_rank"] == 0
    assert values["dp_size"] == 1
    assert values["ep_size"] == 1
    assert values["pp_size"] == 1
    assert values["enable_dp_attention"] is False
    assert values["disaggregation_mode"] == "decode"
    assert log.config["tp_size"].source == Source("file", PD, 20)
    assert log.config_line is not None
    assert log.config_line.line == 20
    assert log.config_line.text.startswith("[2026-02-27 14:33:04] server_args=ServerArgs(")


def test_pd_version_commands_and_prefixes() -> None:
    log = _corpus(PD)
    assert log.version == "0.5.8.post1"
    assert [c.line for c in log.commands] == [6, 8, 11, 13]
    assert sorted(log.prefixes["tp"].unique().to_list()) == list(range(8))
    assert (
        log.prefixes.select(pl.col("dp", "pp", "attn_cp", "moe_dp", "ep").null_count()).row(0)
        == (len(log.prefixes),) * 5
    )
    first = log.prefixes.row(0, named=True)
    assert first["line"] == 24
    assert first["ts"] == datetime(2026, 2, 27, 14, 33, 13)
    assert first["text"] == "Init torch distributed begin."
    assert _kinds(log, "init_begin") == [24, 28, 33, 34, 35, 36, 37, 38]


def test_pd_nccl_hosts_and_communicators() -> None:
    log = _corpus(PD)
    assert ("tpgds-aihub0003", None) in _host_rows(log, "nccl")
    assert ("tpgds-aihub0003", "10.99.91.49") in _host_rows(log, "nccl")
    assert _host_rows(log, "prompt") == {
        ("tpgds-aihub0001", None),
        ("tpgds-aihub0002", None),
        ("tpgds-aihub0003", None),
        ("tpgds-aihub0006", None),
    }
    assert _host_rows(log, "c10d") == {("tpgds-aihub0003.delta.sbrf.ru", None)}
    assert (None, "10.99.91.49") in _host_rows(log, "dist_init_addr")


def test_provenance_header_is_skipped_but_line_numbers_are_kept() -> None:
    log = _corpus(PD)
    header_lines = range(1, 6)  # `#@ expected:` there mentions NCCL, TP0-TP7, ...
    assert not [e for e in log.events if e.line in header_lines]
    assert log.hosts.filter(pl.col("line") <= 5).is_empty()
    assert log.prefixes["line"].min() > 5


# --- the hanging 0.5.9 decode pair, with a healthy-pair excerpt ---------------------


def test_hang_spans_nodes_for_tp0_to_tp7() -> None:
    log = _corpus(HANG)
    lines = _kinds(log, "spans_nodes")
    assert lines == list(range(181, 189))
    on_those = log.prefixes.filter(pl.col("line").is_in(lines))
    assert on_those["tp"].to_list() == list(range(8))


def test_hang_version_commands_and_nccl_warn() -> None:
    log = _corpus(HANG)
    assert log.version == "0.5.9"
    assert log.config == {}
    assert log.config_line is None
    ranks = [(c.line, c.params["node_rank"].value) for c in log.commands]
    assert ranks == [(128, 0), (144, 1), (247, 0), (249, 1)]
    assert log.commands[1].params["tp_size"].source == Source("file", HANG, 144)
    assert log.commands[1].file == HANG
    warns = [e for e in log.events if e.kind == "nccl_warn"]
    assert [e.line for e in warns] == [121, 336]
    assert all("Got completion from peer 10.99.91.63" in e.text for e in warns)
    assert warns[0].text.startswith("[2026-03-03 12:11:38] tpgds-aihub0007:185303:186751 [1]")
    assert _host_rows(log, "nccl_peer") == {(None, "10.99.91.63")}
    assert _kinds(log, "nccl_version") == [173, 207]


def test_hang_hosts_and_communicators() -> None:
    log = _corpus(HANG)
    nccl_hosts = {host for host, _ in _host_rows(log, "nccl")}
    assert {"tpgds-aihub0007", "tpgds-aihub0008"} <= nccl_hosts
    assert {host for host, _ in _host_rows(log, "prompt")} == {
        "tpgds-aihub0003",
        "tpgds-aihub0007",
        "tpgds-aihub0008",
    }
    assert (None, "10.99.91.59") in _host_rows(log, "c10d")
    assert _host_rows(log, "host_arg") == {(None, "10.99.91.59"), (None, "10.99.91.63")}


# --- every scheduler dies with connection refused (0.5.8.post1) ---------------------


def test_refused_prefixes_cover_both_nodes() -> None:
    log = _corpus(REFUSED)
    # The paste starts mid-output and no line of TP5 survived in it.
    assert sorted(log.prefixes["tp"].unique().to_list()) == [t for t in range(16) if t != 5]
    assert log.version is None
    assert log.commands == []


def test_refused_exceptions_and_nccl_warn() -> None:
    log = _corpus(REFUSED)
    exceptions = [e for e in log.events if e.kind == "exception"]
    hit = [e for e in exceptions if "Scheduler hit an exception" in e.text]
    errors = [e for e in exceptions if e.text.startswith("RuntimeError: NCCL error")]
    assert len(hit) == 14
    assert len(errors) == 14
    assert len(exceptions) == 28
    assert hit[0].line == 8
    warns = [e for e in log.events if e.kind == "nccl_warn"]
    assert len(warns) == 14
    assert all(
        "connect to 10.82.101.249<37857> returned Connection refused" in e.text for e in warns
    )
    assert _host_rows(log, "nccl_peer") == {(None, "10.82.101.249")}
    assert _host_rows(log, "c10d") == {(None, "10.99.91.49")}
    assert {host for host, _ in _host_rows(log, "nccl")} == {"tpgds-aihub0003", "tpgds-aihub0006"}


# --- NCCL INFO from the node-rank-1 host -------------------------------------------


def test_nccl_init_commands_and_host_of_the_second_node() -> None:
    """Its communicators are parsers.nccl_log's (test_nccl_log); the engine log keeps the
    commands and the host its NCCL lines name."""
    log = _corpus(NCCL_INIT)
    assert [(c.line, c.params["node_rank"].value) for c in log.commands] == [(8, 0), (25, 1)]
    assert ("tpgds-aihub0008", "10.99.91.63") in _host_rows(log, "nccl")
    assert log.prefixes.is_empty()


@pytest.mark.parametrize("name", [HANG, PD, REFUSED, NCCL_INIT])
def test_sniff_accepts_every_corpus_file(name: str) -> None:
    assert sniff_sglang((CORPUS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("(APIServer pid=1) INFO 09-24 02:18:51 [api_utils.py:286] non-default args: {}", False),
        ("host:1:1 [0] NCCL INFO Bootstrap: Using eth0:10.0.0.1<0>\n", False),
        ("just some text\n", False),
        ("[2025-01-01 10:00:00 DP1 TP9] Init torch distributed begin.\n", True),
        ("[2025-01-01 10:00:00] server_args={'tp_size': 8}\n", True),
        ("ps: 1234 sglang::scheduler_DP1_TP9_EP9\n", True),
        ("sglang serve /m --tp 8\n", True),
        ("x" * 70_000 + "\nsglang serve /m\n", False),
    ],
)
def test_sniff(head: str, expected: bool) -> None:
    assert sniff_sglang(head) is expected


# --- synthetic lines ------------------------------------------------------------


def test_every_historical_prefix_order(tmp_path: Path) -> None:
    log = _write(
        tmp_path,
        "[2026-06-15 10:00:00 DP1 PP0 ATTN_CP1 MOE_DP0 TP6 EP6] current order\n"
        "[2025-09-01 10:00:00.123 DP0 PP1 TP3 EP3] 0.4.10-0.5.x order, with ms\n"
        "[2025-05-01 10:00:00 DP0 TP2 PP1] PP after TP\n"
        "[2025-01-16 10:00:00 DP1 TP9] DP attention\n"
        "[2025-01-01 10:00:00 TP3] plain TP\n"
        "[2025-01-01 10:00:00] no scheduler prefix\n"
        "[2025-01-01 10:00:00 TP3 no closing bracket\n",
    )
    rows = log.prefixes.select("line", "dp", "pp", "attn_cp", "moe_dp", "tp", "ep").rows()
    assert rows == [
        (1, 1, 0, 1, 0, 6, 6),
        (2, 0, 1, None, None, 3, 3),
        (3, 0, 1, None, None, 2, None),
        (4, 1, None, None, None, 9, None),
        (5, None, None, None, None, 3, None),
    ]
    assert log.prefixes["ts"][1] == datetime(2025, 9, 1, 10, 0, 0, 123000)
    assert log.prefixes["text"].to_list()[2] == "PP after TP"
    assert log.prefixes.schema["tp"] == pl.Int64


REWRITES = [
    "[2026-01-01 10:00:00] DeepEP MoE is enabled. The expert parallel size is adjusted to be "
    "the same as the tensor parallel size[16].",
    "[2026-01-01 10:00:00] Mooncake MoE is enabled. The expert parallel size is adjusted to be "
    "the same as the tensor parallel size[8].",
    "[2026-01-01 10:00:00] Flashinfer MoE A2A is enabled. The expert parallel size is adjusted "
    "to be the same as the tensor parallel size[8].",
    "[2026-01-01 10:00:00] Mega MoE is enabled. The expert parallel size is adjusted to be the "
    "same as the tensor parallel size[8].",
    "[2025-06-01 10:00:00] EP MoE is enabled. The expert parallel size is adjusted to be the "
    "same as the tensor parallel size[8].",
    "[2026-01-01 10:00:00] Enabled DSA context parallel: strategy=zigzag, dp_size=1, "
    "moe_dense_tp_size=1, ep_size=8, tp_size=8, attn_cp_size=8, kv_cache_dtype=fp8_e4m3, "
    "moe_a2a_backend=deepep, cuda_graph_config[prefill].backend=disabled",
    "[2026-01-01 10:00:00] Enable Context Parallel opt for MLA, Setting dp_size == 1 and "
    "attn_cp_size == 8, ...",
    "[2026-01-01 10:00:00] DP attention is enabled. The chunked prefill size is adjusted to 1024 "
    "to avoid MoE kernel issues. ",
    "[2026-01-01 10:00:00] DP attention is enabled. chunked prefill size is adjusted from 8192 "
    "to 1024.",
]


def test_rewrite_warnings(tmp_path: Path) -> None:
    log = _write(tmp_path, "\n".join(REWRITES) + "\n")
    assert [(e.kind, e.line, e.file) for e in log.events] == [
        ("rewrite", n, "run.log") for n in range(1, len(REWRITES) + 1)
    ]
    assert log.events[-1].text == REWRITES[-1].strip()


def test_other_event_kinds(tmp_path: Path) -> None:
    log = _write(
        tmp_path,
        "[2026-01-01 10:00:00 TP0] Init torch distributed begin.\n"
        "[2026-01-01 10:00:01 TP0] Init torch distributed ends. elapsed=1.33 s, mem usage=0.6 GB\n"
        "[2026-01-01 10:00:01] Launch DP1 starting at GPU #8.\n"
        "[2026-01-01 10:00:02 TP0 EP0] CustomAllreduce is disabled because this process group "
        "spans across nodes.\n"
        "h:1:1 [0] NCCL INFO NCCL version 2.21.5+cuda12.4\n"
        "h:1:2 [0] transport/net_ib.cc:2453 NCCL WARN NET/IB: Got completion\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "AssertionError\n"
        "torch.distributed.DistBackendError: NCCL error\n"
        "ValueError: tp_size must be divisible by number of nodes\n"
        "An Error: prose, not a traceback\n",
    )
    assert [(e.line, e.kind) for e in log.events] == [
        (1, "init_begin"),
        (2, "init_end"),
        (3, "dp_launch"),
        (4, "spans_nodes"),
        (5, "nccl_version"),
        (6, "nccl_warn"),
        (7, "exception"),
        (9, "exception"),
        (10, "exception"),
        (11, "exception"),
    ]


@pytest.mark.parametrize(
    ("line", "version"),
    [
        ("((sglang-0.5.9) ) [u@h ~]$ ls", "0.5.9"),
        ("(sglang-0.5.8.post1) $ ls", "0.5.8.post1"),
        ("Successfully installed sglang==0.4.10.post2", "0.4.10.post2"),
        ("SGLang v0.5.9 starting", "0.5.9"),
        ("sglang version: 0.5.3rc0", "0.5.3rc0"),
        ("/app/sglang/sglang-latest/bin/python3 -m sglang.launch_server", None),
        ("[2026-01-01 10:00:00 TP0] sglang is using nccl==2.27.5", None),
    ],
)
def test_version(tmp_path: Path, line: str, version: str | None) -> None:
    assert _write(tmp_path, line + "\n").version == version


def test_last_parseable_server_args_line_wins(tmp_path: Path) -> None:
    log = _write(
        tmp_path,
        "[2025-01-01 10:00:00] server_args=ServerArgs(tp_size=4, nnodes=1)\n"
        "[2025-01-01 10:01:00] server_args={'tp_size': 8, 'dist_init_addr': '[::1]:5000', "
        "'host': 'node-0'}\n"
        "[2025-01-01 10:02:00] server_args=ServerArgs(tp_size=16, nno\n",
    )
    assert {k: p.value for k, p in log.config.items()} == {
        "tp_size": 8,
        "dist_init_addr": "[::1]:5000",
        "host": "node-0",
    }
    assert log.config["tp_size"].source == Source("file", "run.log", 2)
    assert log.config_line is not None and log.config_line.line == 2
    assert _host_rows(log, "dist_init_addr") == {(None, "::1")}
    assert _host_rows(log, "host_arg") == {("node-0", None)}


def test_unparseable_server_args_gives_nothing(tmp_path: Path) -> None:
    log = _write(tmp_path, "[2025-01-01 10:00:00] server_args=ServerArgs(tp_size=16\n")
    assert log.config == {}
    assert log.config_line is None


def test_c10d_addresses_are_split_into_host_and_ip(tmp_path: Path) -> None:
    log = _write(
        tmp_path,
        "[W225 16:40:53.5 socket.cpp:767] [c10d] The client socket cannot be initialized to "
        "connect to [::ffff:10.99.91.49]:5000 (errno: 97).\n"
        "[W225 16:40:53.5 socket.cpp:767] [c10d] The client socket cannot be initialized to "
        "connect to [node-3.example]:5000 (errno: 97).\n",
    )
    assert log.hosts.rows() == [
        (1, None, "10.99.91.49", "c10d"),
        (2, "node-3.example", None, "c10d"),
    ]
    assert log.hosts.schema == pl.Schema(
        {"line": pl.Int64, "host": pl.Utf8, "ip": pl.Utf8, "kind": pl.Utf8}
    )


def test_crlf_and_bad_bytes_are_tolerated(tmp_path: Path) -> None:
    log = _write(tmp_path, b"caf\xe9\r\n#@ header\r\n[2025-01-01 10:00:00 TP1] hi\r\n")
    assert log.prefixes.select("line", "tp", "text").rows() == [(3, 1, "hi")]


def test_empty_file(tmp_path: Path) -> None:
    log = _write(tmp_path, "")
    assert log.version is None
    assert log.events == [] and log.commands == []
    assert log.prefixes.is_empty() and log.hosts.is_empty()


def test_unreadable_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        parse_sglang_log(tmp_path / "missing.log", "missing.log")
    with pytest.raises(OSError):
        parse_sglang_log(tmp_path, "a directory")
