"""Merging the inputs of one job: hosts per node and per rank, conflicts, priorities."""

from __future__ import annotations

from pathlib import Path

from diagnose.analyze import Options, analyse
from diagnose.reading import read_inputs

DUMP = (
    "[2026-03-01 10:00:00] server_args=ServerArgs(model_path='m', tp_size=16, dp_size=1, "
    "pp_size=1, ep_size=1, nnodes=2, node_rank={node}, enable_dp_attention=False)\n"
)


def _write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def _analyse(d: Path):
    found = read_inputs(d)
    return analyse(found, Options(), "report")


def test_one_log_per_node_gives_node_hosts(tmp_path: Path):
    files = {}
    for node, host in ((0, "gpu-a"), (1, "gpu-b")):
        nccl = f"{host}:1{node}:1{node} [0] NCCL INFO Bootstrap : Using eth0:10.0.0.{node}<0>\n"
        files[f"node{node}.log"] = DUMP.format(node=node) + nccl
    a = _analyse(_write(tmp_path / "logs", files))
    hosts = {p.rank: p.host for p in a.layout.placement}
    assert hosts[0] == "gpu-a" and hosts[15] == "gpu-b"
    assert a.layout.group("tp").hosts == [["gpu-a", "gpu-b"]]


def test_one_log_per_rank_gives_rank_hosts(tmp_path: Path):
    files = {"launch.sh": "python -m sglang.launch_server --tp 4 --nnodes 2 --model-path m\n"}
    for rank in range(4):
        host = "left" if rank < 2 else "right"
        files[f"rank{rank}.log"] = (
            f"[2026-03-01 10:00:01 TP{rank}] Init torch distributed begin.\n"
            f"{host}:5{rank}:5{rank} [{rank % 2}] NCCL INFO cudaDriverVersion 12040\n"
        )
    a = _analyse(_write(tmp_path / "logs", files))
    assert [p.host for p in a.layout.placement] == ["left", "left", "right", "right"]


def test_dump_wins_over_launch_command(tmp_path: Path):
    files = {
        "launch.sh": "python -m sglang.launch_server --tp 16 --nnodes 2 --model-path m\n",
        "node0.log": DUMP.format(node=0),
    }
    a = _analyse(_write(tmp_path / "logs", files))
    assert str(a.cfg.params["tp_size"].source) == "node0.log:1"
    assert not a.assembled.conflicts


def test_rewrite_warning_becomes_the_provenance_of_the_dumped_value(tmp_path: Path):
    log = (
        "[2026-03-01 10:00:00] WARNING server_args.py:100: DeepEP MoE is enabled. The expert "
        "parallel size is adjusted to be the same as the tensor parallel size[16].\n"
        "[2026-03-01 10:00:00] server_args=ServerArgs(model_path='m', tp_size=16, ep_size=16, "
        "moe_a2a_backend='deepep', nnodes=2)\n"
    )
    a = _analyse(_write(tmp_path / "logs", {"server.log": log}))
    source = str(a.cfg.params["ep_size"].source)
    assert source.startswith("engine rewrite: ") and "DeepEP MoE is enabled" in source
    assert "server.log:1" in source
