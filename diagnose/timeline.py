"""Per-rank startup timeline from the timestamps of SGLang's scheduler lines.

A job that hangs at start-up usually hangs in the first collective: every rank logs
`Init torch distributed begin.`, and `... ends.` only comes once *all* ranks of the world
have joined. So the rank that began late, or never began, is the one everybody waits for;
lining the ranks up on one time axis shows it at a glance. This module turns the parsers'
`init_begin` / `init_end` events (whose text keeps the `[time DP1 TP9 EP9]` prefix) into one
row per placed rank with a status, and a few sentences about the outliers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from statistics import median
from typing import Any

from diagnose.model import Evidence, Placement

# A rank that begins this much later than the median rank is called late. Schedulers of one
# launch start within a second or two of each other; ten seconds is a node started by hand
# after the others, or a process stuck before torch.distributed (model download, import).
LATE_AFTER_S = 10.0
MAX_NOTES = 8

_PREFIX = re.compile(
    r"\[(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)"
    r"(?P<tokens>(?: (?:DP|PP|ATTN_CP|MOE_DP|TP|EP)\d+)+)\]"
)
_TOKEN = re.compile(r" (DP|PP|ATTN_CP|MOE_DP|TP|EP)(\d+)")

STATUSES = ("ok", "late", "no init end", "missing", "no log")


def startup(
    events: list[Evidence], placement: list[Placement], tp_size: int, replicas: int = 1
) -> dict[str, Any] | None:
    """The startup timeline of every placed rank, or None when no init line has a prefix.

    `tp_size` turns a prefix's PP/TP numbers into the global rank; with replicas > 1 the DP
    number is the replica (SGLang's DP without DP attention), otherwise it is ignored.
    """
    begins = _stamps(events, "init_begin", tp_size, replicas)
    ends = _stamps(events, "init_end", tp_size, replicas)
    known = {(p.replica, p.rank) for p in placement}
    begins = {k: v for k, v in begins.items() if k in known}
    if not begins:
        return None
    start = min(ts for ts, _ in begins.values())
    typical = median((ts - start).total_seconds() for ts, _ in begins.values())
    logged_nodes = {p.node for p in placement if (p.replica, p.rank) in begins}
    rows = []
    for p in placement:
        key = (p.replica, p.rank)
        begin = begins.get(key)
        end = ends.get(key)
        if begin is not None and end is not None and end[0] < begin[0]:
            end = None  # an earlier run's end; this run never finished init
        seen = begin or end
        row = {
            "rank": p.rank,
            "replica": p.replica,
            "node": p.node,
            "host": p.host,
            "gpu": p.gpu,
            "begin": _seconds(begin, start),
            "end": _seconds(end, start),
            "file": seen[1].file if seen else None,
            "line": seen[1].line if seen else None,
        }
        row["status"] = _status(row, typical, p.node in logged_nodes)
        rows.append(row)
    return {
        "start": start.isoformat(sep=" "),
        "late_after_s": LATE_AFTER_S,
        "median_begin": round(typical, 3),
        "span": max(t for r in rows for t in (r["begin"], r["end"]) if t is not None),
        "counts": {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES},
        "ranks": rows,
        "notes": _notes(rows, typical),
    }


def _stamps(
    events: Iterable[Evidence], kind: str, tp_size: int, replicas: int
) -> dict[tuple[int, int], tuple[datetime, Evidence]]:
    """(replica, rank) -> time of the last `kind` event of that rank, with its evidence."""
    out: dict[tuple[int, int], tuple[datetime, Evidence]] = {}
    for ev in events:
        if ev.kind != kind:
            continue
        found = _PREFIX.search(ev.text)
        if found is None:
            continue
        tokens = {name: int(n) for name, n in _TOKEN.findall(found["tokens"])}
        rank = tokens.get("PP", 0) * tp_size + tokens.get("TP", 0)
        replica = tokens.get("DP", 0) if replicas > 1 else 0
        ts = datetime.fromisoformat(found["ts"])
        if (replica, rank) not in out or ts >= out[(replica, rank)][0]:
            out[(replica, rank)] = (ts, ev)
    return out


def _seconds(stamp: tuple[datetime, Evidence] | None, start: datetime) -> float | None:
    """Seconds since the first rank began: absolute clock times mean little across nodes."""
    return None if stamp is None else round((stamp[0] - start).total_seconds(), 3)


def _status(row: dict[str, Any], typical: float, node_logged: bool) -> str:
    """No begin on a node that logs is `missing`; on a node without a log it is unknown."""
    if row["begin"] is None:
        return "missing" if node_logged else "no log"
    if row["begin"] - typical > LATE_AFTER_S:
        return "late"
    return "ok" if row["end"] is not None else "no init end"


def _notes(rows: list[dict[str, Any]], typical: float) -> list[str]:
    """Plain sentences about the outliers, the most telling first, at most MAX_NOTES."""
    notes = []
    for r in sorted((r for r in rows if r["status"] == "late"), key=lambda r: -r["begin"]):
        notes.append(
            f"{_who(r)} began `Init torch distributed` {r['begin'] - typical:.0f} s after the "
            "median rank; the whole world's init waits for it."
        )
    for r in (r for r in rows if r["status"] == "missing"):
        notes.append(
            f"{_who(r)} logged no `Init torch distributed begin.` although other ranks of its "
            "node did: it died or hung before joining, and the others wait for it."
        )
    stuck = [r for r in rows if r["status"] == "no init end"]
    if stuck:
        notes.append(
            f"{len(stuck)} rank(s) began init but never logged `Init torch distributed ends.` "
            "(still waiting for the slowest rank when the log ends, or the log was cut)."
        )
    absent = sorted({r["node"] for r in rows if r["status"] == "no log"}, key=_order)
    if absent:
        shown = ", ".join(f"node {n}" for n in absent[:6]) + (" …" if len(absent) > 6 else "")
        notes.append(f"No log in the inputs from {shown}: its ranks' startup is unknown.")
    if len(notes) > MAX_NOTES:
        notes = [*notes[: MAX_NOTES - 1], f"… and {len(notes) - MAX_NOTES + 1} more."]
    return notes


def _who(row: dict[str, Any]) -> str:
    """`Rank 11 (node 1 GPU 3)`: the rank as someone walking to the machine needs it."""
    where = f"node {row['node']}" if row["node"] is not None else "an unknown node"
    gpu = f" GPU {row['gpu']}" if row["gpu"] is not None else ""
    replica = f" of replica {row['replica']}" if row["replica"] else ""
    return f"Rank {row['rank']}{replica} ({where}{gpu})"


def _order(node: int | None) -> int:
    """Sort key putting ranks of unknown node first."""
    return -1 if node is None else node
