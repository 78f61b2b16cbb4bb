"""Communicators as NCCL built them, joined across processes and files.

Each process logs its own view of a communicator (`comm 0x… rank R nranks N … commId`);
the same communicator is recognised across processes by its commId, and a communicator
made by ncclCommSplit by its parent's commId plus split count and colour. Comm-local
ranks become global ranks through a communicator as large as the world (torch's default
group, or SGLang's TP group when tp is the whole world), whose rank is the global rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from diagnose.model import Evidence
from diagnose.observed import ObservedGroup
from parsers.lines import labelled
from parsers.nccl_log import NcclFacts

NET_CLASSES = ("NET/IB", "NET/Socket", "COLLNET")


@dataclass
class NcclView:
    """Everything the pipeline takes from NCCL logs."""

    groups: list[ObservedGroup]
    keys: list[str]  # the communicator key of each group, same order
    rank_of: dict[tuple[str, int], int]  # (host, pid) -> global rank
    links: pl.DataFrame  # key, src, dst (global), src_host, dst_host, transport_class, file, line
    collectives: pl.DataFrame  # key, host, pid, op, op_count, count, line, file
    warns: pl.DataFrame  # host, pid, line, text, file


def fact_frame(facts: list[Any], name: str) -> pl.DataFrame:
    """One fact frame of every file (NCCL or PyTorch facts), with a `file` column."""
    kept = [f for f in facts if not getattr(f, name).is_empty()]
    if not kept:
        return pl.DataFrame()
    frames = [getattr(f, name) for f in kept]
    return labelled(frames, [f.path for f in kept], "file", pl.Utf8, "diagonal_relaxed")


def _keyed(comms: pl.DataFrame) -> pl.DataFrame:
    """Every comm row with the key that names its communicator across processes."""
    return comms.with_columns(
        key=pl.when(pl.col("parent_comm_id").is_not_null())
        .then(
            pl.concat_str(
                [
                    pl.lit("split "),
                    pl.col("parent_comm_id"),
                    pl.lit(" #"),
                    pl.col("split_count").cast(pl.Utf8).fill_null("?"),
                    pl.lit(" colour "),
                    pl.col("color").cast(pl.Utf8).fill_null("?"),
                ]
            )
        )
        .when(pl.col("comm_id").is_not_null())
        .then(pl.concat_str([pl.lit("commId "), pl.col("comm_id")]))
        .otherwise(
            pl.concat_str(
                [pl.col("host"), pl.lit(":"), pl.col("pid").cast(pl.Utf8), pl.lit(" comm "),
                 pl.col("comm")]
            )
        )
    )  # fmt: skip


def _rank_of(comms: pl.DataFrame, world: int | None) -> dict[tuple[str, int], int]:
    """(host, pid) → global rank, from the root communicator that spans the world."""
    roots = comms.filter(pl.col("parent_comm_id").is_null() & pl.col("rank").is_not_null())
    if roots.is_empty():
        return {}
    size = world if world and (roots["nranks"] == world).any() else roots["nranks"].max()
    rows = roots.filter(pl.col("nranks") == size).unique(
        ["host", "pid"], keep="first", maintain_order=True
    )
    return {(h, int(p)): int(r) for h, p, r in rows.select("host", "pid", "rank").iter_rows()}


def view(facts: list[NcclFacts], world: int | None) -> NcclView:
    comms = fact_frame(facts, "comms")
    if comms.is_empty():
        return NcclView([], [], {}, pl.DataFrame(), pl.DataFrame(), fact_frame(facts, "warns"))
    comms = _keyed(comms)
    rank_of = _rank_of(comms, world)
    groups, keys = _groups(comms, rank_of)
    return NcclView(
        groups,
        keys,
        rank_of,
        _links(fact_frame(facts, "links"), comms, rank_of),
        _collectives(fact_frame(facts, "collectives"), comms),
        fact_frame(facts, "warns"),
    )


def _groups(
    comms: pl.DataFrame, rank_of: dict[tuple[str, int], int]
) -> tuple[list[ObservedGroup], list[str]]:
    """One ObservedGroup per communicator key, aggregated in polars (jobs have thousands)."""
    table = pl.DataFrame(
        [(h, p, r) for (h, p), r in rank_of.items()],
        schema={"host": pl.Utf8, "pid": pl.Int64, "global": pl.Int64},
        orient="row",
    )
    rows = comms.sort("line").join(table, on=["host", "pid"], how="left")
    members = (
        rows.unique(["key", "rank"], keep="first", maintain_order=True)
        .sort("key", "rank")
        .group_by("key")
        .agg(pl.col("global"), pl.len().alias("seen"))
    )
    summary = (
        rows.group_by("key", maintain_order=True)
        .agg(
            pl.col("nranks").max().alias("size"),
            pl.col("nnodes").max(),
            pl.col("host").unique(maintain_order=True).alias("hosts"),
            pl.col("init_complete_line").is_not_null().all().alias("complete"),
            pl.col("file").first(),
            pl.col("line").first(),
            pl.col("text").first(),
        )
        .join(members, on="key", how="left", maintain_order="left")
    )
    groups, keys = [], []
    for r in summary.iter_rows(named=True):
        ranks = r["global"]
        groups.append(
            ObservedGroup(
                source="nccl",
                size=int(r["size"]),
                ranks=None if ranks is None or None in ranks else [int(g) for g in ranks],
                name=r["key"],
                hosts=r["hosts"],
                nnodes=int(r["nnodes"]) if r["nnodes"] is not None else None,
                members_seen=int(r["seen"]),
                complete=bool(r["complete"]),
                evidence=[Evidence(r["file"], r["line"], r["text"], "nccl")],
            )
        )
        keys.append(str(r["key"]))
    return groups, keys


def _links(
    links: pl.DataFrame, comms: pl.DataFrame, rank_of: dict[tuple[str, int], int]
) -> pl.DataFrame:
    """Connections with global ranks and hosts where the membership tells them."""
    if links.is_empty():
        return pl.DataFrame()
    member = comms.select("key", "host", "pid", "comm", "rank").unique(
        ["key", "rank"], keep="first", maintain_order=True
    )
    joined = links.join(
        comms.select("host", "pid", "comm", "key").unique(
            ["host", "pid", "comm"], keep="first", maintain_order=True
        ),
        on=["host", "pid", "comm"],
        how="left",
    )
    globals_ = pl.DataFrame(
        [(host, pid, rank) for (host, pid), rank in rank_of.items()],
        schema={"host": member.schema["host"], "pid": member.schema["pid"], "global": pl.Int64},
        orient="row",
    )
    ends = member.join(globals_, on=["host", "pid"], how="left").select(
        "key", pl.col("rank").alias("local"), pl.col("host").alias("peer_host"), "global"
    )
    src = ends.rename({"local": "src", "peer_host": "src_host", "global": "src_global"})
    dst = ends.rename({"local": "dst", "peer_host": "dst_host", "global": "dst_global"})
    return (
        joined.join(src, on=["key", "src"], how="left")
        .join(dst, on=["key", "dst"], how="left")
        .select(
            "key", "src_global", "dst_global", "src_host", "dst_host", "transport",
            "transport_class", "file", "line", "host",
        )
    )  # fmt: skip


def _collectives(colls: pl.DataFrame, comms: pl.DataFrame) -> pl.DataFrame:
    if colls.is_empty():
        return pl.DataFrame()
    keys = comms.select("host", "pid", "comm", "key").unique(
        ["host", "pid", "comm"], keep="first", maintain_order=True
    )
    return colls.join(keys, on=["host", "pid", "comm"], how="left")
