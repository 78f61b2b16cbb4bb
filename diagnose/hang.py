"""Where a hung job stopped, in group terms, from the ranks' Flight Recorder dumps.

Every member of a process group issues the group's collectives in the same order, and the
Flight Recorder numbers them per group (`collective_seq_id`, the same on every member for
the same op). Lining the members' entries up by that number finds the first collective
where they disagree: a member that never issued it (it is stuck elsewhere, or died), or
members that issued different ops or sizes (a code path that diverged). The members that
did issue it are the ones waiting. PyTorch's own analyzer (`torchfrtrace`) does the same
matching; this module phrases the answer with the group's kind and ranks, and copes with
gloo dumps (no `pg_config`: membership comes from which dumps name the group) and with
`batch_isend_irecv` (its ops stay `scheduled` while the closing `coalesced` entry
completes, which the analyzer reports as a mismatch).

Point-to-point ops have their own counter (`p2p_seq_id`); a send or recv still pending
whose peer never posted the matching op is reported the same way.

Profiler traces from torch >= 2.12 number collectives too (`Seq` on record_param_comms);
trace_hangs lines those up the same way. It is weaker evidence: a rank whose profiling
window closed earlier looks like a rank that stopped, so its verdicts say so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from diagnose.model import Evidence
from parsers.flight_recorder import ENTRIES_SCHEMA, STATUS_SCHEMA, FRDump
from parsers.kineto import NOT_COLLECTIVES, KinetoTrace

KindOf = Callable[[str | None, str | None], str | None]
FIELDS = {"op": "op", "sizes": "input_sizes", "dtypes": "input_dtypes", "totals": "input_sizes"}

# c10d OpType names (what WorkNCCL(OpType=…) and the analyzer print) by profiling name.
OP_TYPES = {
    "all_reduce": "ALLREDUCE",
    "all_reduce_barrier": "BARRIER",
    "barrier": "BARRIER",
    "broadcast": "BROADCAST",
    "reduce": "REDUCE",
    "all_gather": "ALLGATHER",
    "_all_gather_base": "_ALLGATHER_BASE",
    "allgather_into_tensor_coalesced": "ALLGATHER_COALESCED",
    "reduce_scatter": "REDUCE_SCATTER",
    "_reduce_scatter_base": "_REDUCE_SCATTER_BASE",
    "reduce_scatter_tensor_coalesced": "REDUCE_SCATTER_COALESCED",
    "allreduce_coalesced": "ALLREDUCE_COALESCED",
    "all_to_all": "ALLTOALL_BASE",
    "all_to_allv": "ALLTOALL_BASE",
    "alltoall": "ALLTOALL",
    "gather": "GATHER",
    "scatter": "SCATTER",
    "send": "SEND",
    "recv": "RECV",
    "coalesced": "COALESCED",
}


@dataclass
class _Group:
    name: str
    desc: str | None
    kind: str | None
    members: list[int]
    from_config: bool
    dumps: dict[int, pl.DataFrame] = field(default_factory=dict)  # rank -> its entries
    files: dict[int, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        what = self.kind or self.desc or f"pg {self.name}"
        return f"{what} group {self.members}"


def op_type(op: str | None) -> str:
    return OP_TYPES.get(op or "", (op or "?").upper())


def ranks_text(ranks: Sequence[int]) -> str:
    """`rank 3`, `ranks 0–2`, `ranks 0, 2, 5`: how a verdict names ranks."""
    ranks = sorted(ranks)
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    if ranks == list(range(ranks[0], ranks[-1] + 1)) and len(ranks) > 2:
        return f"ranks {ranks[0]}–{ranks[-1]}"
    return "ranks " + ", ".join(str(r) for r in ranks)


def _verb(ranks: Sequence[int], singular: str, plural: str) -> str:
    return singular if len(ranks) == 1 else plural


def _one_dump_per_rank(dumps: list[FRDump]) -> tuple[dict[int, FRDump], list[str]]:
    """The most recent dump of each rank (a watchdog dump and an explicit one may both
    exist); dumps without a rank in their name cannot be placed and are left out."""
    chosen: dict[int, FRDump] = {}
    notes = []
    for dump in dumps:
        if dump.rank is None:
            notes.append(f"{dump.path}: no rank in the file name, left out")
            continue
        old = chosen.get(dump.rank)
        if old is None or _recency(dump) > _recency(old):
            chosen[dump.rank] = dump
        if old is not None:
            notes.append(f"rank {dump.rank} has several dumps; the most recent one is used")
    return chosen, notes


def _recency(dump: FRDump) -> tuple[int, int]:
    ids = dump.entries.get_column("record_id").drop_nulls()
    created = dump.entries.get_column("time_created_ns").drop_nulls()
    return (int(created.max()) if len(created) else -1, int(ids.max()) if len(ids) else -1)  # type: ignore[arg-type]


def _groups(chosen: dict[int, FRDump], kind_of: KindOf) -> list[_Group]:
    """Every group with entries, with its members: pg_config's ranks where a dump lists
    them, else the ranks whose dumps name the group (gloo)."""
    configs = {pg.name: pg for d in chosen.values() for pg in d.pg_config if pg.ranks}
    groups: dict[str, _Group] = {}
    for rank, dump in sorted(chosen.items()):
        for (name,), entries in dump.entries.group_by(["pg_name"], maintain_order=True):
            g = groups.get(name)
            if g is None:
                cfg = configs.get(name)
                desc = entries.get_column("pg_desc")[0]
                g = groups[name] = _Group(
                    name,
                    desc,
                    kind_of(name, desc),
                    list(cfg.ranks) if cfg and cfg.ranks else [],
                    cfg is not None,
                )
            g.dumps[rank] = entries
            g.files[rank] = dump.path
            if not g.from_config and rank not in g.members:
                g.members = sorted([*g.members, rank])
    return list(groups.values())


def _completed(entries: pl.DataFrame, dump: FRDump) -> pl.DataFrame:
    """Entries with a `done` flag: the entry says completed, or pg_status says this group
    completed at least that sequence number."""
    status = dump.pg_status.select(
        pl.col("pg_name"), pl.col("last_completed").alias("status_done")
    ).filter(pl.col("pg_name").is_not_null())
    joined = entries.join(status, on="pg_name", how="left")
    return joined.with_columns(
        done=(pl.col("state") == "completed")
        | (pl.col("collective_seq_id") <= pl.col("status_done")).fill_null(False)
    )


def progress(dumps: list[FRDump], kind_of: KindOf) -> list[dict[str, Any]]:
    """For each group: the last collective each member issued and completed."""
    chosen, _ = _one_dump_per_rank(dumps)
    out = []
    for g in _groups(chosen, kind_of):
        issued, completed = {}, {}
        for rank, entries in g.dumps.items():
            coll = _completed(_collectives(entries), chosen[rank])
            seqs = coll.get_column("collective_seq_id")
            done = coll.filter(pl.col("done")).get_column("collective_seq_id")
            issued[str(rank)] = int(seqs.max()) if len(seqs) else None  # type: ignore[arg-type]
            completed[str(rank)] = int(done.max()) if len(done) else None  # type: ignore[arg-type]
        out.append(
            {
                "group_kind": g.kind,
                "pg_name": g.name,
                "pg_desc": g.desc,
                "ranks": g.members,
                "last_issued": issued,
                "last_completed": completed,
                "no_dump": sorted(set(g.members) - set(g.dumps)),
            }
        )
    return out


def _collectives(entries: pl.DataFrame) -> pl.DataFrame:
    """Entries that take part in the per-group collective order."""
    return entries.filter(~pl.col("is_p2p") & (pl.col("collective_seq_id") > 0))


def hangs(dumps: list[FRDump], kind_of: KindOf) -> list[dict[str, Any]]:
    """The first disagreement of every group, as `rankmap/1` `hangs` entries.

    `kind_of(pg_name, pg_desc)` gives the group kind to report (None: the description).
    Each entry: group_kind, pg_name, pg_desc, ranks, op (c10d OpType), profiling_name,
    seq, stuck_ranks (never issued it, or issued something else), waiting_ranks (issued
    it and wait for the others), problem ("missing", "op", "sizes", "dtypes" or "p2p"),
    sizes, last_completed per rank, evidence, verdict. Ranks whose dumps are missing are
    named in `no_dump` and never called stuck.
    """
    chosen, notes = _one_dump_per_rank(dumps)
    out = []
    for g in _groups(chosen, kind_of):
        found = _first_disagreement(g, chosen) or _pending_p2p(g, chosen)
        if found is not None:
            found["source"] = "flight_recorder"
            found["notes"] = notes
            out.append(found)
    return out


def _first_disagreement(g: _Group, chosen: dict[int, FRDump]) -> dict[str, Any] | None:
    per_rank = {
        rank: _completed(_collectives(entries), chosen[rank]).sort("collective_seq_id")
        for rank, entries in g.dumps.items()
    }
    per_rank = {r: e for r, e in per_rank.items() if not e.is_empty()}
    if not per_rank:
        return None
    first = max(int(e.get_column("collective_seq_id").min()) for e in per_rank.values())  # type: ignore[arg-type]
    last = max(int(e.get_column("collective_seq_id").max()) for e in per_rank.values())  # type: ignore[arg-type]
    by_seq = {
        rank: {row["collective_seq_id"]: row for row in e.iter_rows(named=True)}
        for rank, e in per_rank.items()
    }
    no_dump = sorted(set(g.members) - set(g.dumps))
    for seq in range(first, last + 1):
        rows = {rank: rows[seq] for rank, rows in by_seq.items() if seq in rows}
        absent = sorted(
            r for r, e in by_seq.items() if seq not in e and max(e) < seq
        )  # issued everything before, never this one
        if absent:
            return _missing(g, seq, rows, absent, no_dump, by_seq)
        problem = _mismatch(rows)
        if problem is not None:
            return _mismatched(g, seq, rows, problem, no_dump, by_seq)
    return None


def _key(row: dict[str, Any], problem: str) -> str:
    if problem == "sizes" and _uneven(row):
        return "any"  # each rank sends its own split sizes; only the totals must agree
    return str(row[FIELDS[problem]])


def _uneven(row: dict[str, Any]) -> bool:
    return "all_to_all" in (row["op"] or "") or "alltoall" in (row["op"] or "")


def _numel(sizes: list[list[int]] | None) -> int:
    total = 0
    for shape in sizes or []:
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def _mismatch(rows: dict[int, dict[str, Any]]) -> str | None:
    for problem in ("op", "sizes", "dtypes"):
        if len({_key(row, problem) for row in rows.values()}) > 1:
            return problem
    first = next(iter(rows.values()))
    if _uneven(first):
        sent = sum(_numel(row["input_sizes"]) for row in rows.values())
        received = sum(_numel(row["output_sizes"]) for row in rows.values())
        if sent != received:
            return "totals"
    return None


def _last_completed(by_seq: dict[int, dict[int, dict[str, Any]]]) -> dict[str, int | None]:
    return {
        str(rank): max((s for s, row in rows.items() if row["done"]), default=None)
        for rank, rows in sorted(by_seq.items())
    }


def _evidence(g: _Group, rows: dict[int, dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    out = []
    for rank, row in sorted(rows.items()):
        text = (
            f"rank {rank}: #{seq} {row['profiling_name']} {row['input_sizes']} "
            f"{row['input_dtypes']} state {row['state']}"
            + (", retired" if row["retired"] else "")
            + (f"; {row['stack']}" if row.get("stack") else "")
        )
        out.append(Evidence(g.files[rank], None, text, "flight_recorder").to_json())
    return out


def _base(
    g: _Group,
    seq: int,
    row: dict[str, Any],
    no_dump: list[int],
    by_seq: dict[int, dict[int, dict[str, Any]]],
) -> dict[str, Any]:
    return {
        "group_kind": g.kind,
        "pg_name": g.name,
        "pg_desc": g.desc,
        "ranks": g.members,
        "op": op_type(row["op"]),
        "profiling_name": row["profiling_name"],
        "seq": seq,
        "sizes": row["input_sizes"],
        "last_completed": _last_completed(by_seq),
        "no_dump": no_dump,
        "members_from": "pg_config" if g.from_config else "dumps that name the group",
    }


def _missing(
    g: _Group,
    seq: int,
    rows: dict[int, dict[str, Any]],
    absent: list[int],
    no_dump: list[int],
    by_seq: dict[int, dict[int, dict[str, Any]]],
) -> dict[str, Any]:
    row = next(iter(rows.values()))
    waiting = sorted(rows)
    verdict = (
        f"{ranks_text(absent)} of {g.label} never joined {row['op']} #{seq}; "
        f"{ranks_text(waiting)} {_verb(waiting, 'waits', 'wait')} there"
    )
    if no_dump:
        verdict += f" (no dump from {ranks_text(no_dump)})"
    evidence = _evidence(g, rows, seq)
    for rank in absent:
        last = max(by_seq[rank])
        text = f"rank {rank}: last collective in the group is #{last}, nothing after it"
        evidence.append(Evidence(g.files[rank], None, text, "flight_recorder").to_json())
    return {
        **_base(g, seq, row, no_dump, by_seq),
        "problem": "missing",
        "state": row["state"],
        "stuck_ranks": absent,
        "waiting_ranks": waiting,
        "evidence": evidence,
        "verdict": verdict,
    }


def _mismatched(
    g: _Group,
    seq: int,
    rows: dict[int, dict[str, Any]],
    problem: str,
    no_dump: list[int],
    by_seq: dict[int, dict[int, dict[str, Any]]],
) -> dict[str, Any]:
    if problem == "totals":
        stuck, waiting = [], sorted(rows)
        row = rows[waiting[0]]
        sent = sum(_numel(r["input_sizes"]) for r in rows.values())
        received = sum(_numel(r["output_sizes"]) for r in rows.values())
        verdict = (
            f"the members of {g.label} disagree on {row['op']} #{seq}: their inputs add up to "
            f"{sent} elements, their outputs to {received}"
        )
    else:
        counts = Counter(_key(row, problem) for row in rows.values())
        majority = counts.most_common(1)[0][0]
        stuck = sorted(r for r, row in rows.items() if _key(row, problem) != majority)
        waiting = sorted(r for r in rows if r not in stuck)
        row, odd = rows[waiting[0]], rows[stuck[0]]
        shown = FIELDS[problem]
        what = {"op": "a different op", "sizes": "different sizes", "dtypes": "different dtypes"}
        verdict = (
            f"{ranks_text(stuck)} of {g.label} issued {what[problem]} at #{seq} "
            f"({odd['profiling_name']} {odd[shown]} instead of {row['profiling_name']} "
            f"{row[shown]}); {ranks_text(waiting)} {_verb(waiting, 'waits', 'wait')} in "
            f"{row['op']} #{seq}"
        )
    if all(r["done"] for r in rows.values()) and rows[sorted(rows)[0]]["backend"] != "gloo":
        verdict += " (every member completed it: NCCL does not check sizes, so data may be wrong)"
    return {
        **_base(g, seq, row, no_dump, by_seq),
        "problem": problem,
        "state": row["state"],
        "stuck_ranks": stuck,
        "waiting_ranks": waiting,
        "evidence": _evidence(g, rows, seq),
        "verdict": verdict,
    }


def _pending_p2p(g: _Group, chosen: dict[int, FRDump]) -> dict[str, Any] | None:
    """A send/recv still pending whose peer (with a dump) never posted the matching op.

    Ops inside a batch stay `scheduled` while the batch's `coalesced` entry completes, so
    an op counts as done when a completed `coalesced` entry has its p2p sequence number.
    """
    posted: dict[int, Counter[tuple[str, int, int]]] = {}
    pending: list[tuple[int, dict[str, Any]]] = []
    for rank, entries in g.dumps.items():
        dump = chosen[rank]
        p2p = entries.filter(pl.col("is_p2p") & pl.col("src").is_not_null())
        batches = set(
            entries.filter((pl.col("op") == "coalesced") & (pl.col("state") == "completed"))
            .get_column("p2p_seq_id")
            .to_list()
        )
        posted[rank] = Counter((r["op"], r["src"], r["dst"]) for r in p2p.iter_rows(named=True))
        for row in p2p.iter_rows(named=True):
            done = row["state"] == "completed" or row["p2p_seq_id"] in batches
            # gloo never updates states; a retired op left the watchdog's list.
            if not done and row["backend"] != "gloo" and not row["retired"]:
                pending.append((rank, {**row, "file": dump.path}))
    for rank, row in pending:
        if not g.members or max(row["src"], row["dst"]) >= len(g.members):
            continue
        peer_local = row["dst"] if row["op"] == "send" else row["src"]
        peer = g.members[peer_local]
        if peer not in posted:
            continue  # no dump from the peer: cannot tell
        other = "recv" if row["op"] == "send" else "send"
        mine = posted[rank][(row["op"], row["src"], row["dst"])]
        theirs = posted[peer][(other, row["src"], row["dst"])]
        if theirs >= mine:
            continue
        text = f"rank {rank}: p2p #{row['p2p_seq_id']} {row['profiling_name']} state {row['state']}"
        peer_text = (
            f"rank {peer}: posted {theirs} {other} ops for this pair, rank {rank} posted {mine}"
        )
        return {
            "group_kind": g.kind,
            "pg_name": g.name,
            "pg_desc": g.desc,
            "ranks": g.members,
            "op": op_type(row["op"]),
            "profiling_name": row["profiling_name"],
            "seq": row["p2p_seq_id"],
            "sizes": row["input_sizes"],
            "last_completed": {},
            "no_dump": sorted(set(g.members) - set(g.dumps)),
            "members_from": "pg_config" if g.from_config else "dumps that name the group",
            "problem": "p2p",
            "state": row["state"],
            "stuck_ranks": [peer],
            "waiting_ranks": [rank],
            "evidence": [
                Evidence(row["file"], None, text, "flight_recorder").to_json(),
                Evidence(g.files[peer], None, peer_text, "flight_recorder").to_json(),
            ],
            "verdict": (
                f"rank {peer} of {g.label} never posted the {other} matching rank {rank}'s "
                f"{row['op']} (p2p #{row['p2p_seq_id']}); rank {rank} waits there"
            ),
        }
    return None


def _as_dump(trace: KinetoTrace) -> FRDump:
    """A trace's numbered collectives as Flight Recorder entries (state unknown)."""
    ops = trace.comms.filter(
        (pl.col("kind") == "cpu_op")
        & pl.col("seq").is_not_null()
        & ~pl.col("collective").is_in([*NOT_COLLECTIVES, "send", "recv"])
    ).with_columns(pl.col("collective").replace(TRACE_OPS).alias("op"))
    blank = dict.fromkeys(ENTRIES_SCHEMA)
    rows = [
        {
            **blank,
            "record_id": i,
            "pg_name": row["pg_name"],
            "pg_desc": row["pg_desc"],
            "collective_seq_id": row["seq"],
            "is_p2p": False,
            "profiling_name": f"trace:{row['op']}",
            "backend": "trace",
            "op": row["op"],
            "input_sizes": [[row["in_nelems"]]],
            "output_sizes": [[row["out_nelems"]]],
            "input_dtypes": [row["dtype"]],
            "state": "unknown",
            "retired": False,
        }
        for i, row in enumerate(ops.iter_rows(named=True))
    ]
    return FRDump(
        path=trace.path,
        rank=trace.rank,
        version=None,
        comm_lib_version=trace.nccl_version,
        pg_config=[*trace.pg_config, *trace.event_pgs],
        pg_status=pl.DataFrame(schema=STATUS_SCHEMA),
        entries=pl.DataFrame(rows, schema=ENTRIES_SCHEMA),
    )


# c10d collective names -> the profiling names the Flight Recorder uses.
TRACE_OPS = {
    "allreduce": "all_reduce",
    "_allgather_base": "_all_gather_base",
    "allgather": "all_gather",
    "_reduce_scatter_base": "_reduce_scatter_base",
    "all_to_allv": "all_to_all",
    "alltoall_base": "all_to_all",
}


def trace_hangs(traces: list[KinetoTrace], kind_of: KindOf) -> list[dict[str, Any]]:
    """hangs() on the numbered collectives of profiler traces (`Seq`, torch >= 2.12).

    Entries carry `"source": "trace"`; traces without `Seq` give nothing.
    """
    dumps = [_as_dump(t) for t in traces if t.rank is not None]
    out = []
    for found in hangs([d for d in dumps if not d.entries.is_empty()], kind_of):
        found["source"] = "trace"
        found["verdict"] += (
            " (from profiler traces: a rank whose profiling window closed earlier looks the same)"
        )
        out.append(found)
    return out
