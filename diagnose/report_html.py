"""Render a `rankmap/1` result document as one self-contained HTML page.

The page is for someone staring at ATTN_CP and MOE_DP groups in their logs: it must show,
without any network access and without JavaScript, which ranks form each group, which
parameter produced it, whether it crosses a node and what is wrong. Everything of substance
(groups, hosts, findings) is computed upstream; this module only arranges the document for
display: severity order, grid rows and colours, anchors and compact rank lists.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from diagnose.resources import templates_dir

# Kelly's colours of maximum contrast (grey, black and white left out) with a readable text
# colour for each: adjacent groups get very different colours, and the group number printed
# in every cell disambiguates once the palette wraps.
PALETTE: tuple[tuple[str, str], ...] = (
    ("#f3c300", "#000"),
    ("#875692", "#fff"),
    ("#f38400", "#000"),
    ("#a1caf1", "#000"),
    ("#be0032", "#fff"),
    ("#c2b280", "#000"),
    ("#008856", "#fff"),
    ("#e68fac", "#000"),
    ("#0067a5", "#fff"),
    ("#f99379", "#000"),
    ("#604e97", "#fff"),
    ("#f6a600", "#000"),
    ("#b3446c", "#fff"),
    ("#dcd300", "#000"),
    ("#882d17", "#fff"),
    ("#8db600", "#000"),
)

SEVERITIES: tuple[str, ...] = ("error", "warning", "info")

# Cut sections in the order the design explains them; anything else (the world group) is
# listed afterwards so no group of the document is dropped from the page.
CUTS: tuple[tuple[str, str], ...] = (
    ("parameters", "Parameters (weights split)"),
    ("requests", "Requests (batch split)"),
    ("sequences", "Sequences (tokens of one request split)"),
    ("experts", "Experts (MoE experts split)"),
)

# Beyond this many groups a kind's rank lists are cut to the first LIST_HEAD, so a 1024-rank
# layout stays a page and not a phone book.
LIST_CAP = 64
LIST_HEAD = 16


def render_html(result: dict[str, Any]) -> str:
    """Render the result document as a complete HTML5 page (inline CSS, no external resource)."""
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=select_autoescape(("html", "j2"), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["value"] = _format_value
    env.filters["bytes"] = _format_bytes
    return env.get_template("report.html.j2").render(page=_page(result), palette=PALETTE)


def _page(result: dict[str, Any]) -> dict[str, Any]:
    """Arrange the document for the template; optional keys get explicit empty defaults."""
    inputs = result.get("inputs") or []
    anchors = {item["path"]: anchor_id("in", item["path"]) for item in inputs}
    groups = result.get("groups") or []
    labels = {g["kind"]: g["label"] for g in groups}
    verdict = result.get("verdict") or {}
    return {
        "tool": result.get("tool") or {"name": "rankmap", "version": ""},
        "mode": result.get("mode"),
        "command": result.get("command"),
        "logdir": result.get("logdir"),
        "sample": bool(result.get("sample")),
        "engine": result.get("engine"),
        "engine_version": result.get("engine_version"),
        "layout_version": result.get("layout_version"),
        "world_size": result.get("world_size"),
        "replicas": result.get("replicas") or 1,
        "nnodes": result.get("nnodes"),
        "gpus_per_node": result.get("gpus_per_node"),
        "verdict": {
            "status": verdict.get("status", "ok"),
            "headline": verdict.get("headline", ""),
            "errors": verdict.get("errors", 0),
            "warnings": verdict.get("warnings", 0),
            "infos": verdict.get("infos", 0),
        },
        "findings": _findings(result.get("findings") or [], anchors),
        "maps": _maps(result, groups, labels),
        "cuts": _cuts(groups, labels),
        "coords": sorted((result.get("coords") or {}).items(), key=lambda kv: _rank_key(kv[0])),
        "params": list((result.get("params") or {}).items()),
        "derived": result.get("derived") or [],
        "model": [(k, v) for k, v in (result.get("model") or {}).items() if v is not None],
        "inputs": [dict(item, anchor=anchors[item["path"]]) for item in inputs],
        "unknowns": result.get("unknowns") or [],
    }


def anchor_id(prefix: str, text: str) -> str:
    """A valid, unique HTML id for arbitrary text (file paths may hold any character).

    The readable slug helps someone reading the URL; the hash keeps two paths that slug
    alike (`a/b.log`, `a-b.log`) from sharing an anchor.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[-48:]
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{prefix}-{slug}-{digest}" if slug else f"{prefix}-{digest}"


def _findings(findings: list[dict[str, Any]], anchors: dict[str, str]) -> list[dict[str, Any]]:
    """Findings in severity order, each evidence line linked to its input row when known."""
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    ordered = sorted(findings, key=lambda f: rank.get(f.get("severity", "info"), len(rank)))
    return [
        {
            "rule": f.get("rule", ""),
            "severity": f.get("severity", "info"),
            "title": f.get("title") or "",
            "message": f.get("message", ""),
            "fix": f.get("fix") or "",
            "evidence": [
                {
                    "file": e.get("file") or "",
                    "line": e.get("line"),
                    "text": e.get("text") or "",
                    "anchor": anchors.get(e.get("file") or ""),
                }
                for e in f.get("evidence") or []
            ],
        }
        for f in ordered
    ]


def _maps(
    result: dict[str, Any], groups: list[dict[str, Any]], labels: dict[str, str]
) -> list[dict[str, Any]]:
    """One node × GPU grid per group kind, every rank cell tagged with its group number.

    The grid's rows and columns come from the placement only; GPUs of a node that no rank
    uses are drawn as idle, ranks the placement does not place go to an "unplaced" row.
    """
    placement = result.get("placement") or []
    gpus = result.get("gpus_per_node") or 0
    gpus = max([gpus, *(p["gpu"] + 1 for p in placement if p.get("gpu") is not None)])
    rows = _grid_rows(placement, result.get("nnodes") or 0)
    placed = {p["rank"] for p in placement if p.get("gpu") is not None}
    maps = []
    for group in groups:
        if group.get("cut") == "world":
            continue
        member = {rank: i for i, ranks in enumerate(group["ranks"]) for rank in ranks}
        crossing = {i for i, hosts in enumerate(group.get("hosts") or []) if _spans(hosts)}
        unplaced = sorted(member.keys() - placed)
        maps.append(
            {
                **_group_header(group, labels),
                "gpus": gpus,
                "rows": [
                    {
                        "node": row["node"],
                        "host": row["host"],
                        "slots": [
                            [_cell(p, member, crossing) for p in row["slots"].get(gpu, [])]
                            for gpu in range(gpus)
                        ],
                    }
                    for row in rows
                ],
                "unplaced": [_cell({"rank": r}, member, crossing) for r in unplaced],
            }
        )
    return maps


def _grid_rows(placement: list[dict[str, Any]], nnodes: int) -> list[dict[str, Any]]:
    """Rows of the grid: every node (including ones no rank landed on), GPU slots filled.

    Placement rows without a node number are grouped by host, after the numbered nodes.
    """
    rows: dict[tuple[int, int, str], dict[str, Any]] = {
        (0, i, ""): {"node": i, "host": None, "slots": {}} for i in range(nnodes)
    }
    for p in placement:
        if p.get("gpu") is None:
            continue
        node = p.get("node")
        key = (0, node, "") if node is not None else (1, 0, p.get("host") or "")
        row = rows.setdefault(key, {"node": node, "host": None, "slots": {}})
        row["host"] = row["host"] or p.get("host")
        row["slots"].setdefault(p["gpu"], []).append(p)
    return [rows[k] for k in sorted(rows)]


def _cell(p: dict[str, Any], member: dict[int, int], crossing: set[int]) -> dict[str, Any]:
    """What one rank cell shows: its rank, replica, group number and palette class."""
    group = member.get(p["rank"])
    return {
        "rank": p["rank"],
        "replica": p.get("replica") or 0,
        "group": group,
        "colour": None if group is None else group % len(PALETTE),
        "crossing": group in crossing,
    }


def _spans(hosts: list[str | None]) -> bool:
    """Whether one group's host list names more than one host (drawn with a crossing mark)."""
    return len({h for h in hosts if h is not None}) > 1


def _group_header(group: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Fields every view of a group kind shows: label, alias note, crossing badge."""
    alias = group.get("alias_of")
    return {
        "kind": group["kind"],
        "label": group.get("label") or group["kind"].upper(),
        "id": anchor_id("g", group["kind"]),
        "size": group.get("size", len(group["ranks"][0]) if group["ranks"] else 0),
        "count": group.get("count", len(group["ranks"])),
        "alias_of": alias,
        "alias_label": labels.get(alias, alias.upper()) if alias else None,
        "alias_id": anchor_id("g", alias) if alias in labels else None,
        "built": group.get("built", True),
        "crosses_nodes": bool(group.get("crosses_nodes")),
    }


def _cuts(groups: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Group kinds sorted under the cut they make, each with a capped list of rank lists."""
    known = {cut for cut, _ in CUTS}
    sections = [(cut, title, [g for g in groups if g.get("cut") == cut]) for cut, title in CUTS]
    other = [g for g in groups if g.get("cut") not in known]
    if other:
        sections.append(("world", "Whole world and other groups", other))
    return [
        {
            "cut": cut,
            "title": title,
            "kinds": [
                {
                    **_group_header(g, labels),
                    "explanation": g.get("explanation") or "",
                    "formula": g.get("formula") or "",
                    "traffic": g.get("traffic") or "",
                    "lists": _rank_lists(g),
                    "more": len(g["ranks"]) - LIST_HEAD if len(g["ranks"]) > LIST_CAP else 0,
                }
                for g in kinds
            ],
        }
        for cut, title, kinds in sections
    ]


def _rank_lists(group: dict[str, Any]) -> list[dict[str, Any]]:
    """The rank lists to print (capped), each as compact text with the hosts it touches."""
    ranks = group["ranks"]
    shown = ranks[:LIST_HEAD] if len(ranks) > LIST_CAP else ranks
    hosts = group.get("hosts") or []
    out = []
    for i, members in enumerate(shown):
        touched = hosts[i] if i < len(hosts) else []
        out.append(
            {
                "index": i,
                "colour": i % len(PALETTE),
                "ranks": _compact(members),
                "hosts": ", ".join(dict.fromkeys(h for h in touched if h)),
                "crossing": _spans(touched),
            }
        )
    return out


def _compact(ranks: list[int]) -> str:
    """`[0, 1, 2, 3, 8]` as `0–3, 8`: a 1024-rank TP group stays one short line."""
    parts: list[str] = []
    start = prev = None
    for r in ranks:
        if prev is not None and r == prev + 1:
            prev = r
            continue
        if start is not None:
            parts.append(_run(start, prev))
        start = prev = r
    if start is not None:
        parts.append(_run(start, prev))
    return ", ".join(parts)


def _run(start: int, end: int) -> str:
    """One run of consecutive ranks; two ranks stay a pair, which reads better than `0–1`."""
    if start == end:
        return str(start)
    return f"{start}, {end}" if end == start + 1 else f"{start}–{end}"


def _rank_key(rank: str) -> tuple[int, str]:
    """Sort coordinate keys numerically even though JSON made them strings."""
    return (int(rank), "") if rank.lstrip("-").isdigit() else (1 << 62, rank)


def _format_value(value: Any) -> str:
    """Parameter values as the JSON document spells them (true, null, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


def _format_bytes(size: float | None) -> str:
    """File sizes a reader can compare at a glance."""
    if size is None:
        return "—"
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KB", "MB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GB"
