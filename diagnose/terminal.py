"""The terminal summary: what a user reads before (or instead of) opening the HTML."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

COLOURS = {"error": "red", "warning": "yellow", "info": "cyan", "ok": "green"}


# What the logs showed of each expected group kind, appended to its line.
STATUS_MARKS = {
    "matched": "  [seen in the logs]",
    "differs": "  [logs DIFFER]",
    "unexpected": "  [not in the plan]",
}


def _ranks(ranks: list[list[int]], limit: int = 6) -> str:
    shown = " ".join("[" + ",".join(map(str, r)) + "]" for r in ranks[:limit])
    more = f" … {len(ranks) - limit} more" if len(ranks) > limit else ""
    return shown + more


def summary(doc: dict[str, Any], explain: bool, key_params: Sequence[str]) -> list[str]:
    """Lines of the summary; `explain` adds each group's explanation (pre-flight)."""
    v = doc["verdict"]
    head = f"rankmap · {doc['engine']} {doc['engine_version'] or '(version unknown)'}"
    if doc["world_size"] is not None:
        head += f" · world {doc['world_size']}"
        if doc["replicas"] and doc["replicas"] > 1:
            head += f" × {doc['replicas']} replicas"
        head += f" · {doc['nnodes']} node(s)"
    lines = [click.style(head, bold=True)]
    if doc.get("sample"):
        lines.append(f"(no LOGDIR given: using the bundled sample {doc['logdir']})")
    status = click.style(v["status"].upper(), fg=COLOURS[v["status"]], bold=True)
    lines.append(f"{status}  {v['headline']}")
    lines.append("")
    lines.append("Parameters:")
    shown = [n for n in key_params if n in doc["params"]]
    width = max((len(n) for n in shown), default=0) + 1
    for name in shown:
        p = doc["params"][name]
        lines.append(f"  {name:<{width}} {p['value']!s:<12} {p['source']}")
    if doc["groups"]:
        lines.append("")
        lines.append("Groups (in the engine's creation order):")
        for g in doc["groups"]:
            if g["kind"] == "world":
                continue
            alias = f" = {g['alias_of']}" if g["alias_of"] else ""
            cross = click.style(" crosses nodes", fg="yellow") if g["crosses_nodes"] else ""
            seen = STATUS_MARKS.get(g.get("status", "unobserved"), "")
            lines.append(
                f"  {g['label']:<9} {g['count']:>3} × {g['size']:<3}{alias:<14} "
                f"{_ranks(g['ranks'])}{cross}{seen}"
            )
            if explain:
                lines.append(click.style(f"            {g['explanation']}", dim=True))
    elif doc.get("layout_error"):
        lines.append(f"No groups: {doc['layout_error']}")
    for hang in doc.get("hangs", []):
        lines.append("")
        lines.append(click.style(f"Hang: {hang['verdict']}", fg="red", bold=True))
    if doc["findings"]:
        lines.append("")
        lines.append("Findings:")
    for f in doc["findings"]:
        sev = click.style(f"{f['severity']:<7}", fg=COLOURS[f["severity"]])
        lines.append(f"  {sev} {f['rule']} {f['message']}")
        for e in f["evidence"][:3]:
            where = f"{e['file']}:{e['line']}" if e["line"] else e["file"]
            lines.append(click.style(f"            {where}: {e['text'][:140]}", dim=True))
        lines.append(f"            fix: {f['fix']}")
    skipped = [i for i in doc["inputs"] if i["status"] != "parsed"]
    if doc["inputs"]:
        lines.append("")
        parsed = len(doc["inputs"]) - len(skipped)
        lines.append(f"Inputs: {parsed} parsed, {len(skipped)} skipped or failed")
        for i in skipped[:10]:
            lines.append(f"  {i['status']:<8} {i['path']}: {i['reason']}")
    return lines
