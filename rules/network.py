"""What NCCL's own lines say about the network: transports, versions, settings per host."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from diagnose.model import Evidence, Finding
from rules.base import Context, Rule


def _facts(ctx: Context, name: str) -> pl.DataFrame:
    return ctx.observation.nccl_frame(name) if ctx.observation else pl.DataFrame()


def _evidence(rows: pl.DataFrame, limit: int = 4) -> list[Evidence]:
    """Evidence lines from NCCL fact rows; rows without their line's text say what they hold."""
    out = []
    for r in rows.head(limit).iter_rows(named=True):
        if "text" in r:
            text = r["text"]
        elif "var" in r:
            text = f"{r['host']}: {r['var']} set by environment to {r['value']}"
        else:
            text = f"{r['host']}: via {r['transport']}"
        out.append(Evidence(r["file"], r["line"], str(text), "nccl"))
    return out


def _multi_node(ctx: Context) -> bool:
    return (ctx.shape is not None and ctx.shape.nnodes > 1) or len(_hosts(ctx)) > 1


def _hosts(ctx: Context) -> list[str]:
    procs = _facts(ctx, "procs")
    return procs["host"].unique().to_list() if not procs.is_empty() else []


def _socket_between_nodes(ctx: Context) -> Iterable[Finding]:
    links, net = _facts(ctx, "links"), _facts(ctx, "net")
    socket = (
        links.filter(pl.col("transport_class") == "NET/Socket") if not links.is_empty() else links
    )
    no_ib = net.filter(pl.col("what") == "no_ib_device") if not net.is_empty() else net
    if socket.is_empty() and no_ib.is_empty():
        return
    if not _multi_node(ctx):
        return
    kinds = _link_kinds(ctx, "NET/Socket")
    where = f" (carrying {', '.join(kinds)})" if kinds else ""
    hosts = sorted(set(socket["host"].drop_nulls()) | set(no_ib["host"].drop_nulls()))
    yield SOCKET.finding(
        f"NCCL moves inter-node traffic over TCP sockets{where} on {', '.join(hosts)}: "
        f"{'no InfiniBand device was found' if not no_ib.is_empty() else 'NET/Socket links'}; "
        "expect ~5 GB/s instead of ~25–50 GB/s per NIC.",
        _evidence(no_ib, 2) + _evidence(socket, 2),
    )


def _link_kinds(ctx: Context, transport: str) -> list[str]:
    obs = ctx.observation
    if obs is None or obs.nccl.links.is_empty():
        return []
    links = obs.nccl.links.filter(
        (pl.col("transport_class") == transport)
        & ((pl.col("src_host") != pl.col("dst_host")) | pl.col("src_host").is_null())
    )
    keys = links["key"].unique()
    kinds = dict(zip(obs.nccl.keys, obs.kinds_of_nccl(), strict=True))
    return sorted({kinds[k][0] for k in keys if kinds.get(k)})


SOCKET = Rule(
    "RM120",
    "Inter-node traffic over TCP sockets",
    "error",
    "NCCL lines `… via NET/Socket`, `Using network Socket` or `NET/IB : No device found` in a "
    "job that spans nodes.",
    "NET/Socket is plain TCP: measured bus bandwidth ~5 GB/s against ~25 GB/s over IB, a 1 GB "
    "all-reduce 370 ms instead of 50 ms. It is usually a container without the IB devices, a "
    "missing RDMA plugin (AWS EFA without aws-ofi-nccl) or NCCL_IB_DISABLE=1.",
    "Expose the RDMA devices to the container (--device /dev/infiniband, --privileged or the "
    "RDMA device plugin), install the NCCL net plugin the fabric needs, check NCCL_IB_HCA; "
    "rerun and look for `NET/IB : Using [0]mlx5_…` and `via NET/IB/…/GDRDMA`.",
    _socket_between_nodes,
)


def _no_p2p(ctx: Context) -> Iterable[Finding]:
    env, links = _facts(ctx, "env"), _facts(ctx, "links")
    disabled = (
        env.filter((pl.col("var") == "NCCL_P2P_DISABLE") & (pl.col("value") == "1"))
        if not env.is_empty()
        else env
    )
    shm = links.filter(pl.col("transport_class") == "SHM") if not links.is_empty() else links
    if disabled.is_empty() and shm.is_empty():
        return
    how = "NCCL_P2P_DISABLE=1 is set" if not disabled.is_empty() else "links go through SHM"
    yield NO_P2P.finding(
        f"GPUs of one node do not talk peer to peer ({how}): intra-node traffic is staged "
        "through host memory.",
        _evidence(disabled, 2) + _evidence(shm, 2),
    )


NO_P2P = Rule(
    "RM121",
    "Intra-node peer-to-peer is off",
    "warning",
    "`NCCL_P2P_DISABLE set by environment to 1`, or `via SHM` links between GPUs of one host.",
    "SHM copies through host memory: a fraction of NVLink's ~900 GB/s; vLLM and SGLang also "
    "turn their custom all-reduce off. P2P failures are usually PCIe ACS or the IOMMU, which "
    "NCCL_P2P_DISABLE hides instead of fixing.",
    "Disable ACS / set iommu=pt (or fix the VM's PCIe topology) and drop NCCL_P2P_DISABLE; "
    "check `nvidia-smi topo -m` for NV# links.",
    _no_p2p,
)


def _differs(ctx: Context, frame: str, key: str, value: str) -> dict[str, list[Any]]:
    """For each `key` (e.g. an env var), the distinct `value`s across processes if > 1."""
    rows = _facts(ctx, frame)
    if rows.is_empty():
        return {}
    rows = rows.drop_nulls(value)
    out = {}
    for (k,), group in rows.group_by(key, maintain_order=True):
        values = group[value].unique(maintain_order=True).to_list()
        if len(values) > 1:
            out[str(k)] = values
    return out


def _versions(ctx: Context) -> Iterable[Finding]:
    procs = _facts(ctx, "procs")
    if procs.is_empty():
        return
    versions = procs.drop_nulls("nccl_version")
    distinct = versions["nccl_version"].unique(maintain_order=True).to_list()
    if len(distinct) > 1:
        shown = [versions.filter(pl.col("nccl_version") == v).head(1) for v in distinct]
        ev = [
            Evidence(r["file"], r["first_line"], f"{r['host']}: NCCL {r['nccl_version']}", "nccl")
            for part in shown
            for r in part.iter_rows(named=True)
        ]
        yield VERSIONS.finding(
            f"The ranks run different NCCL versions ({', '.join(distinct)}).", ev
        )


VERSIONS = Rule(
    "RM122",
    "Different NCCL versions across ranks",
    "error",
    "`NCCL version 2.x.y` lines that differ between processes.",
    "NCCL's wire protocol is not stable across versions: mixed versions hang or fail with "
    "errors such as 'receiving 524288 bytes instead of 65536'.",
    "Use one image (one torch / nvidia-nccl wheel) on every node.",
    _versions,
)


# Variables that name the process or its own interface, and so differ by design.
PER_PROCESS_ENV = frozenset({"NCCL_HOSTID", "NCCL_COMM_ID", "NCCL_SOCKET_IFNAME"})


def _env(ctx: Context) -> Iterable[Finding]:
    env = _facts(ctx, "env")
    differ = {
        var: values
        for var, values in _differs(ctx, "env", "var", "value").items()
        if var not in PER_PROCESS_ENV
    }
    if env.is_empty() or not differ:
        return
    parts = [f"{var} = {' / '.join(map(str, v))}" for var, v in differ.items()]
    rows = env.filter(pl.col("var").is_in(list(differ)))
    yield ENV.finding(
        "NCCL settings differ between processes: " + "; ".join(parts[:5]) + ".",
        _evidence(rows.unique(["var", "value"], keep="first", maintain_order=True), 4),
    )


ENV = Rule(
    "RM123",
    "Different NCCL settings across ranks",
    "warning",
    "`NCCL_* set by environment to …` lines whose value differs between processes (a line "
    "missing on some processes is not counted: pastes and Ray's log folding drop them).",
    "A setting on one rank but not on another (protocol, algorithm, IB HCA) makes NCCL "
    "choose differently on each side; NCCL's maintainers name it as a common cause of hangs "
    "and of errors like 'receiving 524288 bytes instead of 65536'.",
    "Export the same NCCL_* variables on every node (launcher env, not a per-node shell).",
    _env,
)


_WHAT = {"ib_devices": "IB device list", "plugin": "net plugin"}


def _net_config(ctx: Context) -> Iterable[Finding]:
    net = _facts(ctx, "net")
    if net.is_empty():
        return
    parts = []
    for what in ("ib_devices", "plugin"):
        rows = net.filter(pl.col("what") == what)
        per_host = rows.group_by("host").agg(pl.col("value").unique().sort().alias("v"))
        if per_host["v"].n_unique() > 1:
            parts.append((what, rows))
    for what, rows in parts:
        hosts = rows.unique("host", keep="first", maintain_order=True)
        yield NET_CONFIG.finding(
            f"The hosts see a different {_WHAT[what]}: "
            + "; ".join(f"{r['host']}: {r['value']}" for r in hosts.iter_rows(named=True)),
            _evidence(hosts, 4),
        )


NET_CONFIG = Rule(
    "RM124",
    "Different network setup across hosts",
    "error",
    "`NET/IB : Using [...]` device lists and `NET/Plugin` lines that differ between hosts.",
    "Hosts with different HCA sets or one host with the RDMA plugin and another without it "
    "hang between those node pairs only (NCCL_IGNORE_NET_MISMATCH hides it): with 8 HCAs on "
    "one host and 1 on the other, channels open on NET/IB/1 find no peer.",
    "Give every node the same HCAs (NCCL_IB_HCA) and the same libnccl-net plugin.",
    _net_config,
)


def _never_joined(ctx: Context) -> Iterable[Finding]:
    obs = ctx.observation
    if obs is None:
        return
    comms = _facts(ctx, "comms")
    if comms.is_empty():
        return
    started = comms.filter(
        pl.col("init_start_line").is_not_null() & pl.col("init_complete_line").is_null()
    )
    # A console paste or Ray's folding can lose a COMPLETE line; a process that logged NCCL
    # lines after its START went on, so only processes silent after it count.
    later = (
        pl.concat(
            [
                _facts(ctx, name).select("file", "host", "pid", "line")
                for name in ("comms", "links", "collectives", "warns")
                if not _facts(ctx, name).is_empty()
            ]
        )
        .group_by("file", "host", "pid")
        .agg(pl.col("line").max().alias("last"))
    )
    stuck = started.join(later, on=["file", "host", "pid"], how="left").filter(
        pl.col("last") <= pl.col("init_start_line")
    )
    if stuck.is_empty():
        return
    hosts = stuck["host"].unique(maintain_order=True).to_list()
    yield NEVER_JOINED.finding(
        f"{stuck.height} process(es) on {', '.join(hosts)} started a communicator "
        "(Init START) and never completed it: their peers never joined or the bootstrap "
        "connection failed.",
        _evidence(stuck, 4),
    )


NEVER_JOINED = Rule(
    "RM125",
    "Communicators that never finished forming",
    "error",
    "`Init START` lines without the matching `Init COMPLETE` for the same process and comm.",
    "ncclCommInitRank blocks until every rank of the communicator arrives; one missing or "
    "unreachable rank (wrong NCCL_SOCKET_IFNAME, firewall, a crashed peer) leaves all others "
    "waiting until the 600 s watchdog or forever.",
    "Find the rank that never started (its log ends earlier) and check the bootstrap "
    "interface (NCCL_SOCKET_IFNAME) and reachability between the hosts named.",
    _never_joined,
)


def _hangs(ctx: Context) -> Iterable[Finding]:
    obs = ctx.observation
    if obs is None:
        return
    for hang in obs.hangs:
        ev = [Evidence(e["file"], e["line"], e["text"], "hang") for e in hang["evidence"]]
        yield HANG.finding(f"Hang: {hang['verdict']}.", ev)


HANG = Rule(
    "RM130",
    "A collective that never completed",
    "error",
    "Watchdog timeouts (`WorkNCCL(SeqNum=…, OpType=…)`), desync reports and NCCL logs whose "
    "last collective is followed only by network warnings.",
    "A hang is one group's collective that some member never reached; naming the group, the "
    "sequence number and the ranks that did not arrive turns a 600 s timeout on every rank "
    "into one rank to look at.",
    "Look at the ranks named as stuck (their last log lines, a py-spy dump), and at the "
    "network between the hosts of that group.",
    _hangs,
)


def _lagging(ctx: Context) -> Iterable[Finding]:
    obs = ctx.observation
    if obs is None:
        return
    parts = [t.progress.with_columns(file=pl.lit(t.path)) for t in obs.torch_facts]
    parts = [p for p in parts if not p.is_empty()]
    if not parts:
        return
    progress = pl.concat(parts, how="diagonal_relaxed").drop_nulls(
        ["global_rank", "last_completed"]
    )
    for (pg,), rows in progress.group_by("pg_name", maintain_order=True):
        per_rank = rows.group_by("global_rank").agg(pl.col("last_completed").max())
        if per_rank.height < 2 or per_rank["last_completed"].n_unique() < 2:
            continue
        low = per_rank["last_completed"].min()
        lagging = sorted(per_rank.filter(pl.col("last_completed") == low)["global_rank"].to_list())
        yield LAGGING.finding(
            f"In process group {pg}, rank(s) {lagging} completed work up to #{low} while others "
            f"reached #{per_rank['last_completed'].max()}: they are the ones behind.",
            _evidence(rows.sort("last_completed"), 3),
        )


LAGGING = Rule(
    "RM131",
    "A rank lags its group",
    "error",
    "`last completed work` per rank of one process group, from the watchdog's progress lines.",
    "All members of a group complete the same collectives in the same order; a rank whose "
    "last completed sequence is lower than its peers' (3 against 5) is the one the others "
    "wait for.",
    "Inspect the lagging rank first (stack dump, its own log's last lines).",
    _lagging,
)


def _transport_unknown(ctx: Context) -> Iterable[Finding]:
    obs = ctx.observation
    if obs is None or not obs.nccl_facts or not _multi_node(ctx):
        return
    if not (_facts(ctx, "links").is_empty() and _facts(ctx, "net").is_empty()):
        return
    yield UNKNOWN_TRANSPORT.finding(
        "The NCCL lines say nothing about transports (no NET or GRAPH lines): which network "
        "the inter-node traffic used is unknown — rerun with NCCL_DEBUG=INFO "
        "NCCL_DEBUG_SUBSYS=INIT,NET,GRAPH.",
        [],
    )


UNKNOWN_TRANSPORT = Rule(
    "RM132",
    "Transport unknown",
    "info",
    "A multi-node job whose NCCL lines carry no NET or GRAPH subsystem output.",
    "NCCL's default subsystems (INIT, BOOTSTRAP, ENV since 2.23) hide the lines that show "
    "the transport; silence is not 'IB is fine'.",
    "Rerun with NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,NET,GRAPH.",
    _transport_unknown,
)

RULES: tuple[Rule, ...] = (
    SOCKET,
    NO_P2P,
    VERSIONS,
    ENV,
    NET_CONFIG,
    NEVER_JOINED,
    HANG,
    LAGGING,
    UNKNOWN_TRANSPORT,
)
