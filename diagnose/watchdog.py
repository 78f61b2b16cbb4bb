"""Hangs as PyTorch's watchdog and NCCL's own lines tell them, in group terms.

A watchdog timeout names the process group, the sequence number and the collective a rank
was waiting in; the members of that group that did not time out at the same sequence are
the ones it waited for. NCCL logs without PyTorch lines show a quieter hang: every member
reached the same last collective and then nothing but network warnings.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from diagnose.model import Evidence
from diagnose.nccl_groups import NcclView, fact_frame
from diagnose.observed import ObservedGroup
from parsers.torch_dist_log import TorchDistFacts


def torch_groups(torch: list[TorchDistFacts]) -> list[ObservedGroup]:
    """Process groups from ProcessGroupNCCL lines: one per PG name, members = the global
    ranks whose logs name it (group order unknown, so sorted)."""
    pgs = fact_frame(torch, "pgs")
    if pgs.is_empty():
        return []
    out = []
    for (name,), rows in pgs.drop_nulls("global_rank").group_by("pg_name", maintain_order=True):
        ranks = sorted(set(rows["global_rank"].to_list()))
        first = rows.sort("line").row(0, named=True)
        size = int(rows["size"].max() or len(ranks))
        out.append(
            ObservedGroup(
                source="torch-log",
                size=size,
                ranks=ranks,
                name=str(name),
                desc=first["pg_desc"],
                members_seen=len(ranks),
                evidence=[Evidence(first["file"], first["line"], first["text"], "torch")],
            )
        )
    return out


def torch_hangs(
    torch: list[TorchDistFacts], groups: list[ObservedGroup], kind_of: dict[str, str]
) -> list[dict[str, Any]]:
    """One hang per (process group, sequence) a watchdog timed out on."""
    works = fact_frame(torch, "works")
    if works.is_empty():
        return []
    works = works.drop_nulls(["global_rank", "seq"])
    # The bare "Watchdog caught …" line names no group; the same rank's "[PG ID … PG GUID
    # 2(TP) …] … terminated" line about the same sequence does.
    named = works.drop_nulls("pg_name").unique(
        ["global_rank", "seq"], keep="first", maintain_order=True
    )
    works = works.join(
        named.select("global_rank", "seq", pl.col("pg_name").alias("named_pg"),
                     pl.col("pg_desc").alias("named_desc")),
        on=["global_rank", "seq"],
        how="left",
    ).with_columns(
        pl.col("pg_name").fill_null(pl.col("named_pg")),
        pl.col("pg_desc").fill_null(pl.col("named_desc")),
    )  # fmt: skip
    timed_out = works.unique(["pg_name", "seq", "global_rank"], keep="first", maintain_order=True)
    by_name = {g.name: g for g in groups}
    out = []
    for (pg, seq), rows in timed_out.group_by(["pg_name", "seq"], maintain_order=True):
        group = by_name.get(pg)
        waiting = sorted(rows["global_rank"].to_list())
        members = group.ranks if group and group.ranks else waiting
        stuck = [r for r in members if r not in waiting]
        first = rows.row(0, named=True)
        kind = kind_of.get(str(pg)) or first["pg_desc"] or f"process group {pg}"
        op = first["op"]
        size = f"{first['numel_in']} elements" if first["numel_in"] is not None else "?"
        verdict = (
            f"rank{'s' if len(stuck) != 1 else ''} {_list(stuck)} of {kind} group {members} "
            f"never joined {op} #{seq} ({size}); rank{'s' if len(waiting) != 1 else ''} "
            f"{_list(waiting)} waited there and timed out after {first['timeout_ms']} ms"
            if stuck
            else f"every member of {kind} group {members} timed out in {op} #{seq} ({size})"
        )
        out.append(
            {
                "group_kind": kind,
                "ranks": members,
                "op": op,
                "seq": int(seq),
                "stuck_ranks": stuck,
                "waiting_ranks": waiting,
                "verdict": verdict,
                "evidence": [
                    Evidence(r["file"], r["line"], r["text"], "torch").to_json()
                    for r in rows.head(3).iter_rows(named=True)
                ],
            }
        )
    return out


def nccl_stalls(view: NcclView, kind_of: list[list[str]]) -> list[dict[str, Any]]:
    """A communicator whose members' last logged collective is followed by NCCL warnings
    only: a hang that NCCL's COLL lines show (NCCL_DEBUG_SUBSYS=COLL or ALL)."""
    colls, warns = view.collectives, view.warns
    if colls.is_empty() or warns.is_empty():
        return []
    out = []
    for key, group, kinds in zip(view.keys, view.groups, kind_of, strict=True):
        mine = colls.filter(pl.col("key") == key)
        if group.size < 2 or mine.is_empty():
            continue
        last = mine.sort("line").group_by(["file", "host", "pid"]).last()
        first_last = last.sort("line").row(0, named=True)
        after = warns.filter(
            (pl.col("file") == first_last["file"]) & (pl.col("line") > first_last["line"])
        )
        if after.is_empty():
            continue
        op, count = first_last["op"], first_last["op_count"]
        kind = kinds[0] if kinds else f"communicator of {group.size}"
        hosts = after["host"].drop_nulls().unique(maintain_order=True).to_list()
        out.append(
            {
                "group_kind": kind,
                "ranks": group.ranks or [],
                "op": op,
                "seq": int(count),
                "stuck_ranks": [],
                "waiting_ranks": group.ranks or [],
                "verdict": (
                    f"the {kind} communicator of {group.size} ranks ({', '.join(group.hosts)}) "
                    f"logged {op} #{count} and nothing after it but NCCL warnings on "
                    f"{', '.join(hosts)}: that collective never completed"
                ),
                "evidence": [
                    Evidence(r["file"], r["line"], r["text"], "nccl").to_json()
                    for r in after.head(2).iter_rows(named=True)
                ],
            }
        )
    return out


def _list(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks))
