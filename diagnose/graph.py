"""Ranks, hosts and groups as one graph, so rules ask relations instead of indexing.

Nodes are ("rank", replica, rank), ("host", name) and ("group", kind, index); edges are
placement (rank–host) and membership (group–rank). Questions such as "which hosts does
this group touch" become neighbourhood walks.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from diagnose.model import Layout

if TYPE_CHECKING:
    import networkx as nx


def networkx() -> ModuleType:
    """networkx, imported when a layout is first analysed rather than with the command line:
    importing it takes a fifth of a second, more than building the graph of a thousand
    ranks, so callers with time to spare may import it ahead."""
    import networkx

    return networkx


def build(layout: Layout) -> nx.Graph:
    g = networkx().Graph()
    for p in layout.placement:
        rank = ("rank", p.replica, p.rank)
        g.add_node(rank, gpu=p.gpu, node=p.node)
        if p.host is not None:
            g.add_edge(rank, ("host", p.host), kind="placed")
    for group in layout.groups:
        for index, members in enumerate(group.ranks):
            for replica in range(layout.replicas):
                node = ("group", group.kind, replica, index)
                g.add_node(node, kind=group.kind)
                for r in members:
                    g.add_edge(node, ("rank", replica, r), kind="member")
    return g


def group_hosts(graph: nx.Graph, kind: str, replica: int = 0) -> list[list[str]]:
    """Hosts each group of `kind` touches, in rank order of first appearance."""
    out = []
    index = 0
    while graph.has_node(("group", kind, replica, index)):
        hosts: list[str] = []
        members = sorted(
            (n for n in graph.neighbors(("group", kind, replica, index)) if n[0] == "rank"),
            key=lambda n: n[2],
        )
        for rank in members:
            for h in graph.neighbors(rank):
                if h[0] == "host" and h[1] not in hosts:
                    hosts.append(h[1])
        out.append(hosts)
        index += 1
    return out


def annotate_hosts(layout: Layout, graph: nx.Graph) -> None:
    for group in layout.groups:
        group.hosts = group_hosts(graph, group.kind)
