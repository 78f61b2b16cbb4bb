"""Which hosts a log names, and where: one row per sighting, every engine's logs alike.

A log rarely says which machine wrote it, but its lines give it away: the `host:pid:tid`
writer of every NCCL line and the address NCCL's bootstrap took, the peers it connected to,
the host in a shell prompt (`[user@host ~]$`), the rendezvous address in PyTorch's `[c10d]`
lines, and the addresses the launch configuration names (`--host`, `--dist-init-addr`, given
by each engine's parser as `configured`). Addresses that are IP literals go to `ip`, names to
`host`.
"""

from __future__ import annotations

import re

import polars as pl

from parsers.lines import FILE, collect_all, split, tagged

# `host:pid:tid [cudaDev] NCCL INFO ...`; WARN lines put `file.cc:line` before `NCCL`.
_NCCL_LINE = (
    r"^(?:\[[^\]]*\]\s*)?(?P<host>[\w.-]+):(?P<pid>\d+):\d+ \[(?P<dev>\d+)\] "
    r"(?:\S+:\d+ )?NCCL (?:INFO|WARN)"
)
_NCCL_OWN_IP = r"(?:Bootstrap\s*: Using|OOB) [\w.-]+:([0-9A-Fa-f.:]+)<\d+>"
# The peer NCCL failed to reach: `socketStartConnect: Connect to …` or `connect to …`.
_NCCL_PEER_IP = r"(?:[Cc]onnect to|from peer) ([0-9A-Fa-f.:]+)<\d+>"
_PROMPT_HOST = r"\[[^\]\s@]+@([^\]\s]+)(?:\s[^\]]*)?\]\s?[$#]|[\w.-]+@([\w.-]+):\S*[$#]\s"
_C10D_ADDR = r"\[c10d\].*?\[([^\]]+)\]:\d+"
_IP = r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)$"

HOSTS_SCHEMA = {"line": pl.Int64, "host": pl.Utf8, "ip": pl.Utf8, "kind": pl.Utf8}


def host_sightings(body: pl.DataFrame, configured: pl.DataFrame) -> pl.DataFrame:
    """Host names and addresses with the line that shows them, one row per sighting."""
    return split(collect_all(host_rows(tagged([body]), tagged([configured])))[0], 1)[0]


def host_rows(body: pl.LazyFrame, configured: pl.LazyFrame) -> pl.LazyFrame:
    """host_sightings of several files at once (FILE-tagged, parsers.lines.tagged): the
    lines of `body`, and the `configured` addresses (columns FILE, line, address, kind)."""
    text = pl.col("text")
    nccl = body.select(
        FILE,
        "line",
        text.str.extract(_NCCL_LINE, 1).alias("host"),
        text.str.extract(_NCCL_OWN_IP, 1).alias("ip"),
        pl.lit("nccl").alias("kind"),
    )
    peers = body.select(
        FILE,
        "line",
        pl.lit(None, dtype=pl.Utf8).alias("host"),
        text.str.extract(_NCCL_PEER_IP, 1).alias("ip"),
        pl.lit("nccl_peer").alias("kind"),
    )
    prompts = body.filter(text.str.contains("@", literal=True)).select(
        FILE,
        "line",
        pl.coalesce(text.str.extract(_PROMPT_HOST, 1), text.str.extract(_PROMPT_HOST, 2)).alias(
            "host"
        ),
        pl.lit(None, dtype=pl.Utf8).alias("ip"),
        pl.lit("prompt").alias("kind"),
    )
    c10d = body.select(
        FILE,
        "line",
        text.str.extract(_C10D_ADDR, 1).alias("address"),
        pl.lit("c10d").alias("kind"),
    )
    found = pl.concat([nccl, peers, prompts], how="vertical").filter(
        pl.col("host").is_not_null() | pl.col("ip").is_not_null()
    )
    c10d = c10d.filter(pl.col("address").is_not_null())
    configured = configured.select(FILE, "line", "address", "kind")
    addresses = _split_address(pl.concat([c10d, configured]))
    return pl.concat([found, addresses]).sort(FILE, "line", maintain_order=True)


def strip_port(address: str) -> str:
    """`10.0.0.1:5000` -> `10.0.0.1`, `[::1]:5000` -> `::1`."""
    return re.sub(r"^\[?(.*?)\]?:\d+$", r"\1", address)


def _split_address(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Put IP literals in `ip` (IPv4-mapped IPv6 unwrapped) and names in `host`."""
    address = pl.col("address").str.replace(r"(?i)^::ffff:", "")
    is_ip = address.str.contains(_IP)
    return frame.select(
        FILE,
        "line",
        pl.when(is_ip).then(None).otherwise(address).alias("host"),
        pl.when(is_ip).then(address).otherwise(None).alias("ip"),
        "kind",
    ).cast(HOSTS_SCHEMA)
