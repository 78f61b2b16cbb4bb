"""parsers.hosts: every kind of host sighting, read the same way whatever engine wrote the log."""

from __future__ import annotations

import polars as pl

from parsers.hosts import host_sightings, strip_port

LINES = [
    "gpu-a:1234:1240 [3] NCCL INFO Bootstrap : Using eth0:10.0.0.7<0>",
    "gpu-a:1234:1240 [3] misc/socket.cc:484 NCCL WARN socketStartConnect: Connect to "
    "10.0.0.9<43211> failed",
    "[ubuntu@gpu-b ~]$ python -m sglang.launch_server --tp 8",
    "[W1129 10:00:00 socket.cpp:200] [c10d] The client socket has failed to connect to "
    "[head-node.example]:29500",
    "plain text, no host here",
]


def test_each_kind_of_sighting_with_its_line() -> None:
    body = pl.DataFrame({"line": range(1, len(LINES) + 1), "text": LINES})
    configured = pl.DataFrame(
        {"line": [9, 9], "address": ["10.0.0.2", "::ffff:10.0.0.3"], "kind": ["host_arg"] * 2}
    )
    rows = host_sightings(body, configured).rows()
    assert rows == [
        (1, "gpu-a", "10.0.0.7", "nccl"),
        (2, "gpu-a", None, "nccl"),
        (2, None, "10.0.0.9", "nccl_peer"),
        (3, "gpu-b", None, "prompt"),
        (4, "head-node.example", None, "c10d"),
        (9, None, "10.0.0.2", "host_arg"),
        (9, None, "10.0.0.3", "host_arg"),
    ]


def test_ports_come_off_addresses() -> None:
    assert strip_port("10.0.0.1:5000") == "10.0.0.1"
    assert strip_port("[::1]:5000") == "::1"
    assert strip_port("head-node") == "head-node"
