"""Render a `rankmap/1` result document as one self-contained HTML page.

The page is for someone staring at ATTN_CP and MOE_DP groups in their logs: within a minute
it must show which ranks form each group, which parameter produced it, whether it crosses a
node and what is wrong — without network access, and without JavaScript for everything but
the hover. Everything of substance (groups, hosts, findings, timeline) is computed upstream;
this module only arranges the document for display: severity order, the geometry of the
inline SVG rank map, colours, anchors, compact rank lists and caps that keep a 1024-rank
report a page rather than a phone book.

Two optional inputs are rendered when present and ignored otherwise, so the producers can
land later: `groups[].observed` (rank lists, or any JSON) with `groups[].status` (e.g.
`match` / `mismatch`), and a top-level `traffic` = {"source": str, "unit": "bytes",
"ranks": [int], "matrix": [[number]] (rank × rank, row = sender), "groups": [{"kind",
"index", "bytes", "time_us", "calls"}]}.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from diagnose.glossary import Term, find_term
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

# Cut sections in the order the design explains them, each with the one sentence a reader
# needs; anything else (the world group) is listed afterwards so no group is dropped.
CUTS: tuple[tuple[str, str, str], ...] = (
    (
        "parameters",
        "Parameters: the weights are split",
        "Each rank holds a slice of every weight matrix (TP) or a range of layers (PP); "
        "the slices are combined with collectives every layer.",
    ),
    (
        "requests",
        "Requests: the batch is split",
        "Each rank or block of ranks serves different requests with its own scheduler and "
        "KV cache.",
    ),
    (
        "sequences",
        "Sequences: the tokens of one request are split",
        "The ranks of a group work on different parts of the same prompt and exchange "
        "attention state.",
    ),
    ("experts", "Experts: the MoE experts are split", "Each rank holds some of the experts."),
)

# Beyond this many groups a kind's rank lists are cut to the first LIST_HEAD, so a 1024-rank
# layout stays a page and not a phone book; the map legend shows fewer still.
LIST_CAP = 64
LIST_HEAD = 16
LEGEND_HEAD = 16

# Rank-map geometry. Up to FULL_MAX_RANKS placed ranks every cell is big enough to print its
# rank and group; beyond that cells shrink to coloured squares (hover tells the rest) so 128
# nodes fit on one screen.
FULL_MAX_RANKS = 128
MAP_WIDTH = 1080
NODE_COLUMNS = 8
FULL = {"cw": 40, "ch": 36, "gap": 4, "pad": 8, "head": 22, "bgap": 12}
COMPACT = {"cw": 12, "ch": 12, "gap": 2, "pad": 4, "head": 14, "bgap": 6}

# Timeline: one row per rank up to this many ranks, one row per node beyond.
TIMELINE_RANK_ROWS = 64
TIMELINE_OUTLIERS = 64
TIMELINE_LABEL = 190
TIMELINE_PLOT = 820
TIMELINE_ROW = 18
TIMELINE_ROW_SMALL = 11

# Traffic heatmap: rank blocks beyond this many rows are summed so the SVG stays small.
HEATMAP_MAX = 64
HEATMAP_SIZE = 512
TRAFFIC_GROUP_ROWS = 200


def render_html(result: dict[str, Any]) -> str:
    """Render the result document as a complete HTML5 page (inline CSS/SVG/JS, nothing else)."""
    return template().render(page=_page(result), palette=PALETTE)


@cache
def template() -> Template:
    """The report's template, compiled once (a tenth of a second): callers with time to
    spare, such as a command waiting for its workers, may compile it ahead."""
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=select_autoescape(("html", "j2"), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["value"] = _format_value
    env.filters["bytes"] = _format_bytes
    env.filters["num"] = _format_number
    env.filters["ticks"] = _ticks
    return env.get_template("report.html.j2")


def _page(result: dict[str, Any]) -> dict[str, Any]:
    """Arrange the document for the template; optional keys get explicit empty defaults."""
    inputs = result.get("inputs") or []
    anchors = {item["path"]: anchor_id("in", item["path"]) for item in inputs}
    # Groups the logs show but the plan does not name (kind null) get their own list.
    groups = [g for g in result.get("groups") or [] if g.get("kind")]
    unexpected = [g for g in result.get("groups") or [] if not g.get("kind")]
    labels = {g["kind"]: g.get("label") or g["kind"].upper() for g in groups}
    verdict = result.get("verdict") or {}
    params = result.get("params") or {}
    derived = result.get("derived") or []
    coords = result.get("coords") or {}
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
        "layout_error": result.get("layout_error"),
        "verdict": {
            "status": verdict.get("status", "ok"),
            "headline": verdict.get("headline", ""),
            "errors": verdict.get("errors", 0),
            "warnings": verdict.get("warnings", 0),
            "infos": verdict.get("infos", 0),
        },
        "findings": _findings(result.get("findings") or [], anchors),
        "map": _rank_map(result, groups, labels, coords),
        "cuts": _cuts(groups, labels, params, derived, anchors),
        "coords": sorted(coords.items(), key=lambda kv: _rank_key(kv[0])),
        **_params(params, result.get("layout_params") or [], anchors, groups, derived),
        "derived": derived,
        "model": [(k, v) for k, v in (result.get("model") or {}).items() if v is not None],
        "timeline": _timeline(result.get("timeline"), anchors),
        "traffic": _traffic(result.get("traffic"), result.get("traffic_matrix"), labels),
        "hangs": _hangs(result.get("hangs") or [], labels, anchors),
        "unexpected": [
            {
                "label": g.get("label") or "group",
                "ranks": g.get("ranks") or [],
                "size": g.get("size"),
                "evidence": _findings([{"evidence": g.get("evidence") or []}], anchors)[0][
                    "evidence"
                ],
            }
            for g in unexpected[:50]
        ],
        "links": _links(result.get("links") or [], labels, anchors),
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
    """Findings in severity order, each evidence line with its context, linked to its input."""
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    ordered = sorted(findings, key=lambda f: rank.get(f.get("severity", "info"), len(rank)))
    return [
        {
            "rule": f.get("rule", ""),
            "severity": f.get("severity", "info"),
            "title": f.get("title") or "",
            "message": f.get("message", ""),
            "fix": f.get("fix") or "",
            "evidence": _merged([_evidence(e, anchors) for e in f.get("evidence") or []]),
        }
        for f in ordered
    ]


def _merged(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent evidence blocks of one file whose lines overlap or touch become one block
    with several hit lines, so NCCL lines two apart are not printed twice."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        prev = out[-1] if out else None
        first, last = _span(block), _span(prev) if prev else None
        if (
            prev is not None
            and prev["file"] == block["file"]
            and first is not None
            and last is not None
            and last[0] <= first[0] <= last[1] + 1
        ):
            rows = {r["line"]: r for r in prev["rows"]}
            for r in block["rows"]:
                rows[r["line"]] = {**r, "hit": r["hit"] or rows.get(r["line"], r)["hit"]}
            prev["rows"] = [rows[n] for n in sorted(rows)]
            prev["lines"].append(block["line"])
            continue
        out.append({**block, "lines": [block["line"]]})
    return out


def _span(block: dict[str, Any]) -> tuple[int, int] | None:
    """First and last line number a block shows, None when a line is unknown."""
    numbers = [r["line"] for r in block["rows"]]
    if any(n is None for n in numbers):
        return None
    return min(numbers), max(numbers)


def _evidence(e: dict[str, Any], anchors: dict[str, str]) -> dict[str, Any]:
    """One evidence item as rows of (line number, text, is-the-hit) in file order."""
    context = e.get("context") or {}
    hit = {"line": e.get("line"), "text": e.get("text") or "", "hit": True}
    rows = [
        *({"line": c["line"], "text": c["text"], "hit": False} for c in context.get("before", [])),
        hit,
        *({"line": c["line"], "text": c["text"], "hit": False} for c in context.get("after", [])),
    ]
    return {
        "file": e.get("file") or "",
        "line": e.get("line"),
        "anchor": anchors.get(e.get("file") or ""),
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------
# The rank map


def _rank_map(
    result: dict[str, Any],
    groups: list[dict[str, Any]],
    labels: dict[str, str],
    coords: dict[str, str],
) -> dict[str, Any]:
    """Node boxes with GPU cells, laid out once, coloured once per group kind.

    Rows and columns come from the placement only; GPUs of a node that no rank uses are drawn
    as idle, ranks the placement does not place go to an "unplaced" box.
    """
    placement = result.get("placement") or []
    replicas = result.get("replicas") or 1
    gpus = result.get("gpus_per_node") or 0
    gpus = max([gpus, *(p["gpu"] + 1 for p in placement if p.get("gpu") is not None)])
    placed = [p for p in placement if p.get("gpu") is not None]
    geo = FULL if len(placement) <= FULL_MAX_RANKS else COMPACT
    nodes = _node_rows(placed, result.get("nnodes") or 0)
    ranks_seen = {p["rank"] for p in placed}
    drawn = [g for g in groups if g.get("cut") != "world"]
    unplaced = sorted({r for g in drawn for ranks in g["ranks"] for r in ranks} - ranks_seen)
    boxes, width, height = _boxes(nodes, unplaced, gpus, geo)
    kinds = [_map_kind(g, labels, boxes, coords, replicas, geo) for g in _by_cut(drawn)]
    kinds.sort(key=lambda k: k["trivial"])  # kinds that split nothing last: grey, uneventful
    return {
        "kinds": kinds,
        "boxes": boxes,
        "width": width,
        "height": height,
        "compact": geo is COMPACT,
        "geo": geo,
        "default": _default_kind(kinds, len(placement)),
    }


def _node_rows(placement: list[dict[str, Any]], nnodes: int) -> list[dict[str, Any]]:
    """Every node (including ones no rank landed on) with its GPU slots filled.

    Placement rows without a node number are grouped by host, after the numbered nodes.
    """
    rows: dict[tuple[int, int, str], dict[str, Any]] = {
        (0, i, ""): {"node": i, "host": None, "slots": {}} for i in range(nnodes)
    }
    for p in placement:
        node = p.get("node")
        key = (0, node, "") if node is not None else (1, 0, p.get("host") or "")
        row = rows.setdefault(key, {"node": node, "host": None, "slots": {}})
        row["host"] = row["host"] or p.get("host")
        row["slots"].setdefault(p["gpu"], []).append(p)
    return [rows[k] for k in sorted(rows)]


def _boxes(
    nodes: list[dict[str, Any]], unplaced: list[int], gpus: int, geo: dict[str, int]
) -> tuple[list[dict[str, Any]], int, int]:
    """Positions of node boxes (wrapping into rows) and of every cell slot inside them."""
    cols = max(1, min(gpus, NODE_COLUMNS))
    cw, ch, gap, pad, head, bgap = (geo[k] for k in ("cw", "ch", "gap", "pad", "head", "bgap"))
    specs = [
        (
            f"node {n['node'] if n['node'] is not None else '?'}",
            "" if n["host"] == f"node{n['node']}" else n["host"] or "",  # not a placeholder
            [(gpu, n["slots"].get(gpu, [])) for gpu in range(gpus)],
        )
        for n in nodes
    ]
    if unplaced:
        specs.append(("unplaced", "no host/GPU known", [(None, [{"rank": r}]) for r in unplaced]))
    box_w = 2 * pad + cols * cw + (cols - 1) * gap
    per_row = max(1, (MAP_WIDTH + bgap) // (box_w + bgap))
    boxes, x, y, row_h = [], 0, 0, 0
    for i, (label, host, slots) in enumerate(specs):
        rows = max(1, math.ceil(len(slots) / cols))
        box_h = head + pad + rows * ch + (rows - 1) * gap + pad
        if i and i % per_row == 0:
            x, y, row_h = 0, y + row_h + bgap, 0
        cells = []
        for j, (gpu, ranks) in enumerate(slots):
            cx = x + pad + (j % cols) * (cw + gap)
            cy = y + head + pad + (j // cols) * (ch + gap)
            if not ranks:
                cells.append({"x": cx, "y": cy, "w": cw, "gpu": gpu, "p": None})
            for k, p in enumerate(ranks):  # over-subscribed GPUs share their cell
                w = cw / len(ranks)
                cells.append({"x": cx + k * w, "y": cy, "w": w, "gpu": gpu, "p": p})
        boxes.append(
            {"x": x, "y": y, "w": box_w, "h": box_h, "label": label, "host": host, "cells": cells}
        )
        row_h = max(row_h, box_h)
        x += box_w + bgap
    width = max((b["x"] + b["w"] for b in boxes), default=0)
    height = max((b["y"] + b["h"] for b in boxes), default=0)
    return boxes, width, height


def _by_cut(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group kinds in the order of the cuts (then anything else), engine order within one."""
    order = {cut: i for i, (cut, _, _) in enumerate(CUTS)}
    return sorted(groups, key=lambda g: order.get(g.get("cut"), len(order)))


def _map_kind(
    group: dict[str, Any],
    labels: dict[str, str],
    boxes: list[dict[str, Any]],
    coords: dict[str, str],
    replicas: int,
    geo: dict[str, int],
) -> dict[str, Any]:
    """One kind's colouring of the shared boxes, its legend and its node-crossing verdict."""
    header = _group_header(group, labels)
    member = {rank: i for i, ranks in enumerate(group["ranks"]) for rank in ranks}
    hosts = group.get("hosts") or []
    crossing = {i for i, h in enumerate(hosts) if _spans(h)}
    trivial = header["size"] <= 1
    cells = []
    for box in boxes:
        for c in box["cells"]:
            p = c["p"]
            if p is None:
                cells.append(_cell_svg(c, geo, "idle", f"idle GPU {c['gpu']}"))
                continue
            g = member.get(p["rank"])
            replica = p.get("replica") or 0
            if g is None:
                cls = "none"
            elif trivial:
                cls = "t"
            else:
                cls = f"c{g % len(PALETTE)}" + (" x" if g in crossing else "")
            coord = coords.get(str(p["rank"])) or f"rank {p['rank']}"
            title = f"{coord} · replica {replica}" if replicas > 1 else coord
            sub = _cell_sub(g, trivial, replica, replicas)
            cells.append(_cell_svg(c, geo, cls, title, p["rank"], g, replica, sub))
    legend = [] if trivial else _rank_lists(group)[:LEGEND_HEAD]
    term = _term(header)
    return {
        **header,
        "map_id": anchor_id("map", group["kind"]),
        "title": term.title if term else "",
        "explanation": group.get("explanation") or "",
        "formula": group.get("formula") or "",
        "trivial": trivial,
        "cells_svg": Markup("".join(cells)),
        "legend": legend,
        "legend_more": header["count"] - len(legend) if legend else 0,
    }


def _cell_svg(
    c: dict[str, Any],
    geo: dict[str, int],
    cls: str,
    title: str,
    rank: int | None = None,
    g: int | None = None,
    replica: int = 0,
    sub: str = "",
) -> str:
    """One GPU cell of a rank map. Written here rather than in the template: a map of
    thousands of ranks has tens of thousands of cells, and a template loop takes most of
    the report's rendering time on them."""
    data = ""
    if rank is not None:
        group = f' data-g="{g}"' if g is not None else ""
        data = f' data-r="{rank}"{group} data-rep="{replica}"'
    text = ""
    if geo is FULL:
        mid = _format_number(c["w"] / 2)
        if rank is None:
            text = f'<text x="{mid}" y="22" class="gs">idle</text>'
        else:
            text = f'<text x="{mid}" y="16" class="rn">{rank}</text>'
            if sub:
                text += f'<text x="{mid}" y="29" class="gs">{escape(sub)}</text>'
    return (
        f'<g class="cell {escape(cls)}"{data} transform="translate({_format_number(c["x"])} '
        f'{c["y"]})"><title>{escape(title)}</title><rect width="{_format_number(c["w"])}" '
        f'height="{geo["ch"]}" rx="3"/>{text}</g>\n'
    )


def _cell_sub(g: int | None, trivial: bool, replica: int, replicas: int) -> str:
    """The small second line of a full-size cell: group number, replica when there are many."""
    text = "no group" if g is None else "" if trivial else f"g{g}"
    if replicas > 1:
        text = f"R{replica} {text}".strip()
    return text


def _default_kind(kinds: list[dict[str, Any]], ranks: int) -> str:
    """The kind the interactive map opens on: all of them when the page stays short, else the
    first kind that crosses nodes (the likely problem), else the first one that splits."""
    if ranks * len(kinds) <= 512:
        return ""
    for test in (lambda k: k["crossing"] and not k["trivial"], lambda k: not k["trivial"]):
        found = next((k for k in kinds if test(k)), None)
        if found is not None:
            return found["kind"]
    return kinds[0]["kind"] if kinds else ""


def _spans(hosts: list[str | None]) -> bool:
    """Whether one group's host list names more than one host (drawn with a crossing mark)."""
    return len({h for h in hosts if h is not None}) > 1


def _term(header: dict[str, Any]) -> Term | None:
    """The general definition of a kind, by its label (ATTN_TP) or its name (attention_tp)."""
    return find_term(header["label"]) or find_term(header["kind"])


def _group_header(group: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Fields every view of a group kind shows: label, alias note, crossing badge."""
    alias = group.get("alias_of")
    hosts = group.get("hosts") or []
    return {
        "kind": group["kind"],
        "label": labels[group["kind"]],
        "cut": group.get("cut") or "",
        "id": anchor_id("g", group["kind"]),
        "size": group.get("size", len(group["ranks"][0]) if group["ranks"] else 0),
        "count": group.get("count", len(group["ranks"])),
        "alias_of": alias,
        "alias_label": labels.get(alias, alias.upper()) if alias else None,
        "alias_id": anchor_id("g", alias) if alias in labels else None,
        "built": group.get("built", True),
        "crosses_nodes": bool(group.get("crosses_nodes")),
        "crossing": sum(1 for h in hosts if _spans(h)),
        "nodes": len({h for members in hosts for h in members if h is not None}),
    }


# ---------------------------------------------------------------------------------------------
# Groups by cut


def _cuts(
    groups: list[dict[str, Any]],
    labels: dict[str, str],
    params: dict[str, Any],
    derived: list[dict[str, Any]],
    anchors: dict[str, str],
) -> list[dict[str, Any]]:
    """Group kinds sorted under the cut they make, each with its meaning, numbers and lists."""
    known = {cut for cut, _, _ in CUTS}
    sections = [
        (cut, title, why, [g for g in groups if g.get("cut") == cut]) for cut, title, why in CUTS
    ]
    other = [g for g in groups if g.get("cut") not in known]
    if other:
        sections.append(("world", "Whole world and other groups", "", other))
    return [
        {
            "cut": cut,
            "title": title,
            "why": why,
            "kinds": [_cut_kind(g, labels, params, derived, anchors) for g in kinds],
        }
        for cut, title, why, kinds in sections
    ]


def _cut_kind(
    group: dict[str, Any],
    labels: dict[str, str],
    params: dict[str, Any],
    derived: list[dict[str, Any]],
    anchors: dict[str, str],
) -> dict[str, Any]:
    """A kind as its cut section explains it: the general meaning for a newcomer, this job's
    reason and numbers with their sources, observed vs expected when known, the rank lists."""
    header = _group_header(group, labels)
    term = _term(header)
    return {
        **header,
        "map_id": anchor_id("map", group["kind"]),
        "meaning": f"{term.title}: {term.meaning}" if term else "",
        "explanation": group.get("explanation") or "",
        "formula": group.get("formula") or "",
        "numbers": _numbers(group, params, derived, anchors),
        "traffic": group.get("traffic") or "",
        "status": group.get("status"),
        "observed": _observed(group.get("observed")),
        "lists": _rank_lists(group)[: LIST_HEAD if len(group["ranks"]) > LIST_CAP else None],
        "more": len(group["ranks"]) - LIST_HEAD if len(group["ranks"]) > LIST_CAP else 0,
    }


_NAME = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\bnnodes\b")


def _numbers(
    group: dict[str, Any],
    params: dict[str, Any],
    derived: list[dict[str, Any]],
    anchors: dict[str, str],
) -> list[dict[str, Any]]:
    """Every parameter the formula names, with its value and where that value came from."""
    formulas = {d["name"]: d for d in derived}
    text = group.get("formula") or ""
    defined = text.split("=", 1)[0].strip() if "=" in text else ""
    out = []
    for name in dict.fromkeys(_NAME.findall(text)):
        if name in params:
            p = params[name]
            source = str(p.get("source") or "")
            out.append({"name": name, "value": p.get("value"), **_source_link(source, anchors)})
        elif name in formulas and name != defined:  # not the size this formula computes
            d = formulas[name]
            out.append({"name": name, "value": d["value"], "source": d["formula"], "href": None})
    return out


def _source_link(source: str, anchors: dict[str, str]) -> dict[str, Any]:
    """A `file:line` source linked to that file's row in the inputs table."""
    path = source.rsplit(":", 1)[0] if re.search(r":\d+$", source) else source
    return {"source": source, "href": anchors.get(path)}


def _hangs(
    hangs: list[dict[str, Any]], labels: dict[str, str], anchors: dict[str, str]
) -> list[dict[str, Any]]:
    """Hang verdicts, with the group named by its label and evidence shown like findings'."""
    return [
        {
            "group": labels.get(h.get("group_kind") or "", h.get("group_kind") or "group"),
            "op": h.get("op"),
            "seq": h.get("seq"),
            "verdict": h.get("verdict", ""),
            "stuck": h.get("stuck_ranks") or [],
            "waiting": h.get("waiting_ranks") or [],
            "evidence": _findings([{"evidence": h.get("evidence") or []}], anchors)[0]["evidence"],
        }
        for h in hangs
    ]


def _links(
    links: list[dict[str, Any]], labels: dict[str, str], anchors: dict[str, str]
) -> list[dict[str, Any]]:
    """Links folded to one row per group, host pair and transport (big jobs have thousands)."""
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for link in links:
        hosts = [h or "?" for h in (link.get("hosts") or ["?", "?"])]
        group = labels.get(link.get("group_kind") or "", link.get("group_kind") or "—")
        key = (group, hosts[0], hosts[-1], link.get("transport") or "?")
        ev = (link.get("evidence") or [{}])[0]
        row = rows.setdefault(
            key,
            {
                "group": group,
                "src": hosts[0],
                "dst": hosts[-1],
                "transport": key[3],
                "count": 0,
                "file": ev.get("file"),
                "line": ev.get("line"),
                "anchor": anchors.get(ev.get("file") or ""),
            },
        )
        row["count"] += 1
    return sorted(rows.values(), key=lambda r: (r["group"], r["src"], r["dst"]))[:200]


def _observed(observed: Any) -> dict[str, Any] | None:
    """Observed groups as compact rank lists when they are lists of ranks, else as JSON text."""
    if observed is None:
        return None
    if isinstance(observed, list) and all(
        isinstance(r, list) and all(isinstance(x, int) for x in r) for r in observed
    ):
        shown = observed[:LIST_HEAD] if len(observed) > LIST_CAP else observed
        return {
            "lists": [_compact(r) for r in shown],
            "more": len(observed) - len(shown),
            "text": None,
        }
    return {"lists": [], "more": 0, "text": _format_value(observed)}


def _rank_lists(group: dict[str, Any]) -> list[dict[str, Any]]:
    """The rank lists, each as compact text with the hosts it touches."""
    hosts = group.get("hosts") or []
    out = []
    for i, members in enumerate(group["ranks"]):
        touched = list(dict.fromkeys(h for h in (hosts[i] if i < len(hosts) else []) if h))
        out.append(
            {
                "index": i,
                "colour": i % len(PALETTE),
                "ranks": _compact(members),
                "hosts": _hosts_text(touched),
                "crossing": len(touched) > 1,
            }
        )
    return out


def _hosts_text(hosts: list[str]) -> str:
    """Host names of one group; a group over 32 nodes names its first and last only."""
    if len(hosts) <= 3:
        return ", ".join(hosts)
    return f"{len(hosts)} nodes: {hosts[0]} … {hosts[-1]}"


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


# ---------------------------------------------------------------------------------------------
# Parameters, timeline, traffic


def _params(
    params: dict[str, Any],
    layout_params: list[str],
    anchors: dict[str, str],
    groups: list[dict[str, Any]],
    derived: list[dict[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """The parameters that shape the layout first (the engine's own list, then any other that
    a formula names), the few hundred others of a dump folded away."""
    formulas = [g.get("formula") or "" for g in groups] + [d["formula"] for d in derived]
    named = [n for text in formulas for n in _NAME.findall(text) if n in params]
    first = list(dict.fromkeys([*(n for n in layout_params if n in params), *named]))

    def rows(names: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "name": n,
                "value": params[n].get("value"),
                **_source_link(str(params[n].get("source") or ""), anchors),
            }
            for n in names
        ]

    return {
        "layout_params": rows(first),
        "other_params": rows(sorted(set(params) - set(first))),
    }


def _timeline(timeline: dict[str, Any] | None, anchors: dict[str, str]) -> dict[str, Any] | None:
    """Bars on one time axis: per rank for small worlds, per node (plus outliers) for big ones.

    A solid segment spans the arrivals (a rank's begin, or a node's first to last begin), a
    light one the wait until init ends: a late arrival stands out as a solid mark far right.
    """
    if not timeline or not timeline.get("ranks"):
        return None
    ranks = timeline["ranks"]
    span = max(float(timeline.get("span") or 0), 1.0)
    scale = TIMELINE_PLOT / span
    per_rank = len(ranks) <= TIMELINE_RANK_ROWS
    rows = [_rank_row(r) for r in ranks] if per_rank else _node_bars(ranks)
    row_h = TIMELINE_ROW if len(rows) <= 32 else TIMELINE_ROW_SMALL
    for i, row in enumerate(rows):
        row["y"] = i * row_h
        row["x0"] = row["xb"] = row["x1"] = None
        if row["begin"] is not None:
            row["x0"] = TIMELINE_LABEL + row["begin"] * scale
            row["xb"] = TIMELINE_LABEL + max(row["last_begin"] * scale, row["begin"] * scale + 3)
            end = span if row["end"] is None else row["end"]
            row["x1"] = max(TIMELINE_LABEL + end * scale, row["xb"])
    outliers = [r for r in ranks if r["status"] != "ok" and r["status"] != "no log"]
    step = _tick_step(span)
    return {
        "start": timeline.get("start"),
        "late_after": timeline.get("late_after_s"),
        "counts": [(k, v) for k, v in (timeline.get("counts") or {}).items() if v],
        "notes": timeline.get("notes") or [],
        "per_rank": per_rank,
        "rows": rows,
        "row_h": row_h,
        "width": TIMELINE_LABEL + TIMELINE_PLOT + 130,  # room for a status after the bar
        "height": len(rows) * row_h + 24,
        "label_x": TIMELINE_LABEL,
        "ticks": [
            {"x": TIMELINE_LABEL + t * scale, "text": f"{t:g} s"}
            for t in (i * step for i in range(int(span / step) + 1))
        ],
        "outliers": [
            dict(r, anchor=anchors.get(r.get("file") or "")) for r in outliers[:TIMELINE_OUTLIERS]
        ],
        "outliers_more": max(0, len(outliers) - TIMELINE_OUTLIERS),
    }


def _rank_row(r: dict[str, Any]) -> dict[str, Any]:
    """One timeline row of a small world: the rank and where it runs."""
    where = f"node {r['node']}" if r.get("node") is not None else "node ?"
    gpu = f" GPU {r['gpu']}" if r.get("gpu") is not None else ""
    replica = f" R{r['replica']}" if r.get("replica") else ""
    return {
        "label": f"rank {r['rank']}{replica} · {where}{gpu}",
        "begin": r["begin"],
        "last_begin": r["begin"],
        "end": r["end"],
        "status": r["status"],
        "rank": r["rank"],
        "odd": 0,
    }


def _node_bars(ranks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One bar per node: its ranks' first and last begin, its last end; the worst status
    colours it."""
    worst = {"ok": 0, "no log": 1, "no init end": 2, "late": 3, "missing": 4}
    nodes: dict[Any, list[dict[str, Any]]] = {}
    for r in ranks:
        nodes.setdefault((r.get("replica") or 0, r.get("node")), []).append(r)
    rows = []
    for (replica, node), members in sorted(
        nodes.items(), key=lambda kv: (kv[0][0], _num(kv[0][1]))
    ):
        begins = [m["begin"] for m in members if m["begin"] is not None]
        ends = [m["end"] for m in members if m["end"] is not None]
        status = max((m["status"] for m in members), key=lambda s: worst.get(s, 0))
        odd = sum(1 for m in members if m["status"] not in ("ok", "no log"))
        host = members[0].get("host") or ""
        label = f"node {node if node is not None else '?'}" + (f" R{replica}" if replica else "")
        rows.append(
            {
                "label": f"{label} · {host}" if host and host != f"node{node}" else label,
                "begin": min(begins) if begins else None,
                "last_begin": max(begins) if begins else None,
                "end": max(ends) if ends and len(ends) == len(begins) else None,
                "status": status,
                "rank": None,
                "odd": odd,
            }
        )
    return rows


def _num(node: Any) -> int:
    """Sort key putting nodes of unknown number last."""
    return node if isinstance(node, int) else 1 << 30


def _tick_step(span: float) -> float:
    """A round tick spacing giving four to ten ticks over `span` seconds."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 10:
            return step
    return span / 10


def _traffic(
    rows: list[dict[str, Any]] | None, matrix: dict[str, Any] | None, labels: dict[str, str]
) -> dict[str, Any] | None:
    """A rank × rank heatmap (summed into blocks when large) and a per-group table."""
    if not rows and not matrix:
        return None
    values = (matrix or {}).get("bytes") or []
    n = len(values)
    ranks = (matrix or {}).get("ranks") or list(range(n))
    heat = None
    if n:
        block = math.ceil(n / HEATMAP_MAX)
        m = math.ceil(n / block)
        sums = [[0.0] * m for _ in range(m)]
        for i, row in enumerate(values):
            for j, v in enumerate(row[:n]):
                sums[i // block][j // block] += float(v or 0)
        top = max((v for row in sums for v in row), default=0.0) or 1.0
        cell = HEATMAP_SIZE / m
        heat = {
            "size": HEATMAP_SIZE,
            "cell": cell,
            "block": block,
            "first": ranks[0] if ranks else 0,
            "last": ranks[-1] if ranks else n - 1,
            "max": top,
            "cells": [
                {
                    "x": j * cell,
                    "y": i * cell,
                    "o": round(0.08 + 0.92 * v / top, 3),
                    "title": _block_title(ranks, block, i, j, v, n),
                }
                for i, row in enumerate(sums)
                for j, v in enumerate(row)
                if v > 0
            ],
        }
    rows = rows or []
    return {
        "source": (matrix or {}).get("method") or "",
        "unit": "bytes",
        "heat": heat,
        "groups": [
            dict(
                g,
                kind=g.get("group_kind"),
                label=labels.get(g.get("group_kind") or "", str(g.get("group_kind") or "?"))
                + (f" · {g['op']}" if g.get("op") else ""),
            )
            for g in rows[:TRAFFIC_GROUP_ROWS]
        ],
        "groups_more": max(0, len(rows) - TRAFFIC_GROUP_ROWS),
    }


def _block_title(ranks: list[Any], block: int, i: int, j: int, v: float, n: int) -> str:
    """The tooltip of one heatmap cell, naming the rank ranges a summed block covers."""

    def span(k: int) -> str:
        lo, hi = k * block, min(n, (k + 1) * block) - 1
        return str(ranks[lo]) if lo == hi else f"{ranks[lo]}–{ranks[hi]}"

    return f"rank {span(i)} → rank {span(j)}: {_format_bytes(v)}"


# ---------------------------------------------------------------------------------------------
# Formatting


def _rank_key(rank: str) -> tuple[int, str]:
    """Sort coordinate keys numerically even though JSON made them strings."""
    return (int(rank), "") if rank.lstrip("-").isdigit() else (1 << 62, rank)


def _format_value(value: Any) -> str:
    """Parameter values as the JSON document spells them (true, null, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


def _ticks(text: str | None) -> Markup:
    """Escape `text`, then show its `backticked` parts as code, as the rule messages mean."""
    escaped = str(escape(text or ""))
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped))


def _format_number(value: float | None) -> str:
    """SVG coordinates without float noise (`12.5`, not `12.500000001`)."""
    return "0" if value is None else f"{value:.1f}".rstrip("0").rstrip(".")


def _format_bytes(size: float | None) -> str:
    """File and traffic sizes a reader can compare at a glance."""
    if size is None:
        return "—"
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TB"
