"""How much each group kind communicated, and who sent how much to whom, from traces.

Each rank's trace records every collective it issued, with its process group, message
sizes and dtype; summed over the traces that is the traffic per group kind, and spread
over the group's members it is a rank x rank matrix of bytes.

Counting: each collective is counted once per rank that issued it: the rank's
`record_param_comms` CPU op, or its NCCL kernel when the CPU op is missing (kernels and
CPU ops are linked by `External id`). `wait`, `init` and `broadcastUniqueNCCLID` are
bookkeeping and are not counted. Time is the linked kernel's duration (the time the
collective occupied the GPU) and the CPU op's when there is no kernel (gloo, CPU traces).

Bytes are an estimate of what each rank sends to each other member, from the op, this
rank's message size B (elements x dtype size) and the group size n, following the
algorithm-independent volumes nccl-tests uses for bus bandwidth:

- all_reduce: a reduce-scatter then an all-gather, 2·B/n to every other member;
- all_gather: this rank's input B to every other member;
- reduce_scatter: B/n of its input (one output chunk) to every other member;
- all_to_all: its split for each member (`In split size` rows scaled to B), B/n each when
  even;
- broadcast, reduce, gather, scatter: the root is not recorded, so B/n to every other
  member (about the B a pipelined ring moves per rank);
- send: B to the peer; recv: nothing (the sender's send counts it), unless the sender's
  trace is missing, then B from the peer; barrier: nothing.

Groups whose ranks the trace cannot tell (kernels without process-group args) are counted
per kind but left out of the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from parsers.kineto import NOT_COLLECTIVES, KinetoTrace, dtype_bytes

KindOf = Callable[[str | None, str | None], str | None]

# c10d collective names (record_param_comms, kernel fallbacks) -> the op a user wrote.
OPS = {
    "allreduce": "all_reduce",
    "allreduce_coalesced": "all_reduce",
    "_allgather_base": "all_gather",
    "allgather": "all_gather",
    "all_gather": "all_gather",
    "allgather_into_tensor_coalesced": "all_gather",
    "_reduce_scatter_base": "reduce_scatter",
    "reduce_scatter": "reduce_scatter",
    "reduce_scatter_tensor_coalesced": "reduce_scatter",
    "all_to_all": "all_to_all",
    "all_to_allv": "all_to_all",
    "alltoall": "all_to_all",
    "alltoall_base": "all_to_all",
}
METHOD = (
    "bytes each rank sends, estimated from the op, its message size B and the group size n: "
    "all_reduce 2B/n per peer, all_gather B per peer, reduce_scatter B/n per peer, "
    "all_to_all its splits, rooted ops B/n per peer, send B; time from NCCL kernels, else "
    "the CPU op"
)


def _rows(traces: list[KinetoTrace]) -> pl.DataFrame:
    """One row per collective per rank, with its time, group members and sizes."""
    frames = []
    for t in traces:
        if t.comms.is_empty():
            continue
        comms = t.comms.filter(~pl.col("collective").is_in(list(NOT_COLLECTIVES)))
        cpu = comms.filter(pl.col("kind") == "cpu_op")
        kernels = comms.filter(pl.col("kind") == "kernel")
        linked = cpu.get_column("ext_id").drop_nulls().to_list()
        kernel_time = (
            kernels.filter(pl.col("ext_id").is_not_null())
            .select("ext_id", pl.col("dur_us").alias("kernel_us"))
            .unique("ext_id", keep="first", maintain_order=True)
        )
        cpu = cpu.join(kernel_time, on="ext_id", how="left")
        orphans = kernels.filter(
            pl.col("ext_id").is_null() | ~pl.col("ext_id").is_in(linked)
        ).with_columns(pl.col("dur_us").alias("kernel_us"))
        rows = pl.concat([cpu, orphans], how="vertical_relaxed")
        members = {g.name: g.ranks for g in [*t.pg_config, *t.event_pgs] if g.ranks is not None}
        frames.append(
            rows.with_columns(
                pl.lit(t.rank, dtype=pl.Int64).alias("rank"),
                pl.coalesce("kernel_us", "dur_us").alias("time_us"),
                pl.col("pg_name")
                .replace_strict(members, default=None, return_dtype=pl.List(pl.Int64))
                .alias("members"),
            )
        )
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="vertical_relaxed")


def _with_kind(rows: pl.DataFrame, kind_of: KindOf) -> pl.DataFrame:
    pairs = rows.select("pg_name", "pg_desc").unique()
    kinds = {
        (name, desc): kind_of(name, desc) or desc or (f"pg {name}" if name else "unknown")
        for name, desc in pairs.iter_rows()
    }
    table = pl.DataFrame(
        [(n, d, k) for (n, d), k in kinds.items()],
        schema={"pg_name": pl.Utf8, "pg_desc": pl.Utf8, "group_kind": pl.Utf8},
        orient="row",
    )
    item = pl.col("dtype").map_elements(dtype_bytes, return_dtype=pl.Int64)
    return rows.join(table, on=["pg_name", "pg_desc"], how="left", nulls_equal=True).with_columns(
        pl.col("collective").replace(OPS).alias("op"),
        (pl.col("in_nelems").fill_null(0) * item.fill_null(0)).alias("in_bytes"),
        pl.coalesce("group_size", pl.col("members").list.len()).alias("n"),
        pl.int_range(pl.len()).alias("row"),
    )


def _per_peer(rows: pl.DataFrame) -> pl.DataFrame:
    """(row, rank, to, bytes) for every member a collective sends to (members known)."""
    known = rows.filter(pl.col("members").is_not_null() & pl.col("rank").is_not_null())
    b, n, op = pl.col("in_bytes").cast(pl.Float64), pl.col("n").cast(pl.Float64), pl.col("op")
    even_splits = pl.col("in_splits").list.len() == pl.col("members").list.len()
    splits = (
        pl.when((op == "all_to_all") & even_splits.fill_null(False))
        .then(pl.col("in_splits"))
        .otherwise(pl.lit(1).repeat_by(pl.col("members").list.len()))
    )
    coll = (
        known.filter(~op.is_in(["send", "recv", "barrier", "sendrecv"]))
        .with_columns(splits.alias("splits"))
        .with_columns(pl.col("splits").list.sum().alias("split_total"))
        .explode(["members", "splits"])
        .rename({"members": "to"})
        .filter(pl.col("to") != pl.col("rank"))
        .select(
            "row",
            "rank",
            "to",
            pl.when(op == "all_reduce")
            .then(2 * b / n)
            .when(op == "all_gather")
            .then(b)
            .when(op == "all_to_all")
            .then(b * pl.col("splits") / pl.col("split_total"))
            .otherwise(b / n)
            .alias("bytes"),
        )
    )
    sends = known.filter(op == "send").select(
        "row", "rank", pl.col("peer").alias("to"), b.alias("bytes")
    )
    traced = known.get_column("rank").unique().to_list()
    # A recv counts only when the sender left no trace; otherwise its send already did.
    recvs = known.filter((op == "recv") & ~pl.col("peer").is_in(traced)).select(
        "row", pl.col("peer").alias("rank"), pl.col("rank").alias("to"), b.alias("bytes")
    )
    return pl.concat([coll, sends, recvs], how="vertical_relaxed").filter(
        pl.col("to").is_not_null()
    )


def _sent_without_members(rows: pl.DataFrame) -> pl.Expr:
    """What a rank sends when its group's members are unknown: the same volumes, summed."""
    b, n, op = pl.col("in_bytes").cast(pl.Float64), pl.col("n").cast(pl.Float64), pl.col("op")
    return (
        pl.when(op.is_in(["recv", "barrier", "sendrecv"]) | (n <= 1))
        .then(0.0)
        .when(op == "send")
        .then(b)
        .when(op == "all_reduce")
        .then(2 * b * (n - 1) / n)
        .when(op == "all_gather")
        .then(b * (n - 1))
        .otherwise(b * (n - 1) / n)
    )


def traffic(traces: list[KinetoTrace], kind_of: KindOf) -> dict[str, Any]:
    """The `rankmap/1` traffic section.

    `kind_of(pg_name, pg_desc)` names the group kind (None: the description is shown).
    Returns {"per_group": [{group_kind, op, calls, bytes, time_us, ranks, per_rank: [{rank,
    calls, bytes, time_us}]}], "matrix": {"ranks": [...], "bytes": [[...]]}, "method",
    "notes"}; bytes are what the ranks send (see the module doc), time_us summed over ranks.
    """
    rows = _rows(traces)
    notes = sorted({f"{t.path}: {n}" for t in traces for n in t.notes if "record_param" in n})
    if rows.is_empty():
        return {"per_group": [], "matrix": {"ranks": [], "bytes": []}, "method": METHOD,
                "notes": notes}  # fmt: skip
    rows = _with_kind(rows, kind_of)
    peers = _per_peer(rows)
    sent = peers.group_by("row").agg(pl.col("bytes").sum().alias("sent"))
    rows = rows.join(sent, on="row", how="left").with_columns(
        pl.when(pl.col("members").is_not_null() & pl.col("rank").is_not_null())
        .then(pl.col("sent").fill_null(0.0))
        .otherwise(_sent_without_members(rows))
        .alias("sent")
    )
    per_rank = rows.group_by("group_kind", "op", "rank").agg(
        pl.len().alias("calls"),
        pl.col("sent").sum().round(0).cast(pl.Int64).alias("bytes"),
        pl.col("time_us").sum().round(3).alias("time_us"),
    )
    per_group = (
        per_rank.sort("rank", nulls_last=True)
        .group_by("group_kind", "op", maintain_order=True)
        .agg(
            pl.col("calls").sum(),
            pl.col("bytes").sum(),
            pl.col("time_us").sum().round(3),
            pl.col("rank").drop_nulls().alias("ranks"),
            pl.struct("rank", "calls", "bytes", "time_us").alias("per_rank"),
        )
        # Ties in the same order on every run (group_by gives them in any order).
        .sort("bytes", "calls", "group_kind", "op", descending=[True, True, False, False])
    )
    return {
        "per_group": per_group.to_dicts(),
        "matrix": _matrix(peers, traces),
        "method": METHOD,
        "notes": notes,
    }


def _matrix(peers: pl.DataFrame, traces: list[KinetoTrace]) -> dict[str, Any]:
    worlds = {t.world_size for t in traces if t.world_size}
    if len(worlds) == 1:
        ranks = list(range(worlds.pop()))
    else:
        ranks = sorted(set(peers.get_column("rank").to_list()) | set(peers.get_column("to")))
    index = {r: i for i, r in enumerate(ranks)}
    grid = [[0] * len(ranks) for _ in ranks]
    totals = peers.group_by("rank", "to").agg(pl.col("bytes").sum())
    for src, dst, value in totals.iter_rows():
        if src in index and dst in index:
            grid[index[src]][index[dst]] += round(value)
    return {"ranks": ranks, "bytes": grid}
