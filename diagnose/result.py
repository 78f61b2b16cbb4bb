"""The `rankmap/1` document: the one structure the HTML, the JSON and the terminal read.

Other tools parse this JSON, so keys are only ever added, never renamed. Unknown values
are null, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diagnose import __version__, context_lines, timeline
from diagnose.analyze import Analysis
from diagnose.model import SEVERITY_ORDER
from rules.catalog import find_rule

SCHEMA = "rankmap/1"


def verdict(analysis: Analysis) -> dict[str, Any]:
    counts = {s: sum(1 for f in analysis.findings if f.severity == s) for s in SEVERITY_ORDER}
    status = "error" if counts["error"] else "warning" if counts["warning"] else "ok"
    if analysis.findings and status != "ok":
        first = analysis.findings[0]
        headline = f"{first.rule}: {first.message.split('. ')[0].rstrip('.')}."
    elif analysis.layout is not None:
        headline = (
            f"{len([g for g in analysis.layout.groups if g.kind != 'world'])} group kinds over "
            f"{analysis.layout.world_size} ranks; nothing to fix."
        )
    else:
        headline = f"No layout: {analysis.layout_error}"
    return {
        "status": status,
        "errors": counts["error"],
        "warnings": counts["warning"],
        "infos": counts["info"],
        "headline": headline,
    }


def _groups(analysis: Analysis) -> list[dict[str, Any]]:
    if analysis.layout is None:
        return []
    recon = analysis.observation.recon if analysis.observation else None
    out = []
    for g in analysis.layout.groups:
        row = {
            "kind": g.kind,
            "label": g.label,
            "cut": g.cut,
            "ranks": g.ranks,
            "size": g.size,
            "count": len(g.ranks),
            "alias_of": g.alias_of,
            "built": g.built,
            "mesh": g.mesh,
            "axes": list(g.axes),
            "explanation": g.explanation,
            "formula": g.formula,
            "traffic": g.traffic,
            "hosts": g.hosts,
            "crosses_nodes": any(len(h) > 1 for h in g.hosts),
        }
        status = recon.kinds.get(g.kind) if recon else None
        row |= {
            "observed": (status.observed or None)
            if status and status.status != "unobserved"
            else None,
            "status": status.status if status else "unobserved",
            "observed_by": status.by if status else None,
            "late": status.late if status else False,
            "evidence": [e.to_json() for e in status.evidence] if status else [],
            "notes": status.notes if status else [],
        }
        out.append(row)
    for obs in recon.unexpected if recon else []:
        out.append(
            {
                "kind": None,
                "label": obs.desc or f"{obs.source} group",
                "cut": None,
                "ranks": [obs.ranks] if obs.ranks else [],
                "size": obs.size,
                "count": 1,
                "alias_of": None,
                "built": True,
                "explanation": f"A {obs.source} group of {obs.size} ranks that fits no group "
                "the configuration makes.",
                "hosts": [obs.hosts],
                "crosses_nodes": obs.crosses_nodes,
                "observed": [obs.ranks] if obs.ranks else None,
                "status": "unexpected",
                "late": obs.late,
                "evidence": [e.to_json() for e in obs.evidence],
            }
        )
    return out


def _links(analysis: Analysis) -> list[dict[str, Any]]:
    """One row per communicator, host pair and transport: where each group's bytes travel."""
    obs = analysis.observation
    if obs is None or obs.nccl.links.is_empty():
        return []
    kinds = dict(zip(obs.nccl.keys, obs.kinds_of_nccl(), strict=True))
    rows = obs.nccl.links.drop_nulls(["key", "transport_class"]).unique(
        ["key", "src_host", "dst_host", "transport_class"],
        keep="first",
        maintain_order=True,
    )
    out = []
    for r in rows.iter_rows(named=True):
        ranks = [r["src_global"], r["dst_global"]]
        out.append(
            {
                "group_kind": (kinds.get(r["key"]) or [None])[0],
                "ranks": ranks if None not in ranks else None,
                "hosts": [r["src_host"], r["dst_host"]],
                "transport": r["transport_class"],
                "detail": r["transport"],
                "evidence": [{"file": r["file"], "line": r["line"], "text": r["transport"]}],
            }
        )
    return out


def _traffic(analysis: Analysis) -> dict[str, Any]:
    """`traffic` (one row per group kind and op) and `traffic_matrix` (rank × rank bytes)."""
    found = analysis.observation.traffic if analysis.observation else None
    if not found:
        return {"traffic": [], "traffic_matrix": None}
    matrix = dict(found["matrix"], method=found.get("method"), notes=found.get("notes", []))
    return {"traffic": found["per_group"], "traffic_matrix": matrix}


def _process_facts(analysis: Analysis) -> Callable[[int, str | None], dict[str, Any]]:
    """The pid and NCCL version of the process of a rank placed on a host, as its NCCL lines
    show them. A directory may hold the logs of several jobs, where one rank number has a
    process on each job's hosts: a rank placed on a host the NCCL lines name shows its
    process there or none; on any other host (a placeholder, or a name only the engine's
    lines gave), the rank's first process."""
    obs = analysis.observation
    versions = {}
    for f in obs.nccl_facts if obs else []:
        for h, p, v in f.procs.select("host", "pid", "nccl_version").iter_rows():
            versions[(h, p)] = v
    named = {host for host, _ in versions}
    found: dict[tuple[int, str | None], dict[str, Any]] = {}
    for (host, pid), rank in obs.nccl.rank_of.items() if obs else []:
        facts = {"pid": pid, "nccl_version": versions.get((host, pid))}
        found.setdefault((rank, host), facts)
        found.setdefault((rank, None), facts)

    def placed(rank: int, host: str | None) -> dict[str, Any]:
        facts = found.get((rank, host if host in named else None))
        return facts or {"pid": None, "nccl_version": None}

    return placed


def _coords(analysis: Analysis) -> dict[str, str]:
    """Per-rank coordinate strings of the first replica, with the rank's host and GPU."""
    if analysis.layout is None:
        return {}
    out = {}
    for p in analysis.layout.placement:
        if p.replica:
            continue
        tokens = analysis.engine.coordinates(analysis.cfg, p.rank, 0)
        out[str(p.rank)] = f"rank {p.rank}: " + " · ".join([*tokens, f"{p.host} GPU{p.gpu}"])
    return out


def _model(analysis: Analysis) -> dict[str, Any] | None:
    m = analysis.model
    if m is None:
        return None
    keys = (
        "name",
        "source",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "n_routed_experts",
        "moe_intermediate_size",
        "kv_lora_rank",
    )
    return {k: getattr(m, k) for k in keys}


def _finding(f: Any) -> dict[str, Any]:
    doc = f.to_json()
    rule = find_rule(f.rule)
    doc["title"] = rule.title if rule else f.rule
    return doc


def _nnodes(analysis: Analysis) -> int | None:
    if analysis.layout is None:
        return analysis.cfg["nnodes"]
    return len({p.node for p in analysis.layout.placement})


def _timeline(analysis: Analysis) -> dict[str, Any] | None:
    """Per-rank startup times; the TP group's size turns a `PP1 TP3` prefix into a rank."""
    layout = analysis.layout
    if layout is None:
        return None
    tp = layout.group("tp")
    tp_size = tp.size if tp is not None else 1
    return timeline.startup(analysis.assembled.events, layout.placement, tp_size, layout.replicas)


def document(analysis: Analysis) -> dict[str, Any]:
    cfg, layout = analysis.cfg, analysis.layout
    processes = _process_facts(analysis)
    return {
        "schema": SCHEMA,
        "tool": {"name": "rankmap", "version": __version__},
        "mode": analysis.mode,
        "command": analysis.command,
        "logdir": analysis.logdir,
        "sample": analysis.sample,
        "engine": analysis.engine.name,
        "engine_version": cfg.version,
        "layout_version": cfg.layout_version,
        "world_size": layout.world_size if layout else None,
        "replicas": layout.replicas if layout else None,
        "nnodes": _nnodes(analysis),
        "gpus_per_node": analysis.gpus_per_node,
        "verdict": verdict(analysis),
        "model": _model(analysis),
        "params": {name: p.to_json() for name, p in sorted(cfg.params.items())},
        "layout_params": [p for p in analysis.engine.key_params if p in cfg.params],
        "derived": [
            {"name": d.name, "value": d.value, "formula": d.formula}
            for d in (cfg.derived() if layout else [])
        ],
        "rewrites": cfg.rewrites,
        "layout_error": analysis.layout_error,
        "groups": _groups(analysis),
        "placement": [
            {"rank": p.rank, "host": p.host, "gpu": p.gpu, "node": p.node, "replica": p.replica}
            | processes(p.rank, p.host)
            for p in (layout.placement if layout else [])
        ],
        "links": _links(analysis),
        "hangs": analysis.observation.hangs if analysis.observation else [],
        **_traffic(analysis),
        "coords": _coords(analysis),
        "findings": context_lines.attach([_finding(f) for f in analysis.findings], analysis.logdir),
        "inputs": [i.to_json() for i in analysis.inputs],
        "unknowns": analysis.unknowns,
        "timeline": _timeline(analysis),
    }
