"""Write a realistic SGLang log directory for a multi-node job of any size.

Real logs of 1024-GPU jobs are not something a repository can ship, yet the report has to
stay small and usable at that scale and the parsers have to stay fast. This script writes
what such a job leaves behind: one console log per node (`node000.log`, …) with the shell
prompt and launch command, the `server_args=ServerArgs(...)` dump (the field list and order of
the bundled sample, with this job's values), scheduler lines with SGLang's prefix
` DP{d} PP{p} ATTN_CP{c} MOE_DP{m} TP{t} EP{e}` and NCCL_DEBUG=INFO lines of the TP
communicator, in the formats of sample_logs/ and tests/data/corpus/.

Only DP attention is modelled (dp > 1 implies --enable-dp-attention), ranks fill nodes in
order (rank r on node r // gpus_per_node, GPU r % gpus_per_node), and `--late RANK:SECONDS` /
`--missing RANK` make a rank start late or never start, as in a real start-up hang (nobody
then logs `Init torch distributed ends.`).

Two options make the logs as big and as detailed as a real run's, for the ingestion benchmark
(benchmarks/bench_ingest.py): `--nccl-detail` writes what NCCL_DEBUG=INFO and
TORCH_CPP_LOG_LEVEL=INFO really print while each rank's TP (and PP) communicator forms (network
and plugin lines, every channel's connection, ring and tree lines, the ring orders on comm rank
0, init timings, ProcessGroupNCCL options), and `--size-mb MB` then lets the server run: the
ranks that lead a DP-attention group print SGLang's steady-state `Decode batch.` line (and a
`Prefill batch,` line now and then) until the directory holds about MB megabytes.

Run: python benchmarks/generate_sglang_logs.py OUTDIR [--nnodes 128 --tp 256 --pp 4 ...]
[--ranks N] [--nccl-detail] [--size-mb MB]; the defaults write a 1024-rank DeepSeek-V3 job
(tp 256 × pp 4, dp-attention 32, attn-cp 2, DeepEP over ep 256) on 128 nodes of 8 GPUs, and
`--ranks N` (64 to 4096) scales that shape: tp min(N, 256), pp N / tp, dp tp / 8, ep tp.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from itertools import zip_longest
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "sample_logs" / "seed_dsv32_tp8_dp2_attncp2" / "server.log"
START = datetime(2026, 3, 12, 9, 41, 0)
# moe_a2a_backend values for which SGLang sets ep_size = tp_size, with the name its warning uses.
A2A_FORCES_EP = {"deepep": "DeepEP", "mooncake": "Mooncake", "nixl": "NIXL", "mori": "MORI"}
# Channels NCCL 2.27 opens on an 8-GPU node with one IB NIC per GPU (TP) and across nodes (PP).
TP_CHANNELS, PP_CHANNELS = 16, 4


@dataclass(frozen=True)
class Job:
    """The launch flags of one job and the failures to stage in its logs."""

    nnodes: int = 128
    gpus_per_node: int = 8
    tp: int = 256
    pp: int = 4
    dp: int = 32
    attn_cp: int = 2
    moe_dp: int = 1
    ep: int = 256
    a2a: str = "deepep"
    model: str = "deepseek-ai/DeepSeek-V3"
    late: dict[int, float] = field(default_factory=dict)
    missing: frozenset[int] = frozenset()

    @property
    def world(self) -> int:
        return self.tp * self.pp

    @property
    def ep_size(self) -> int:
        return self.tp if self.a2a in A2A_FORCES_EP else self.ep

    def check(self) -> None:
        """Refuse flag combinations SGLang (or this script's simple placement) would reject."""
        if self.world != self.nnodes * self.gpus_per_node:
            raise ValueError(
                f"tp × pp = {self.world} must fill {self.nnodes} nodes × {self.gpus_per_node} GPUs"
            )
        if self.tp % (self.dp * self.attn_cp):
            raise ValueError("tp must be divisible by dp × attn_cp")
        if self.tp % (self.ep_size * self.moe_dp):
            raise ValueError("tp must be divisible by ep × moe_dp")
        if self.tp > 1 and self.tp < self.gpus_per_node and self.nnodes > 1:
            raise ValueError("a TP group smaller than a node is not laid out by this script")
        bad = [r for r in (*self.late, *self.missing) if not 0 <= r < self.world]
        if bad:
            raise ValueError(f"ranks {bad} are outside the world of {self.world}")

    @classmethod
    def for_ranks(cls, ranks: int, gpus_per_node: int = 8) -> Job:
        """The default job's shape scaled to `ranks` GPUs (64 to 4096): TP up to 256 GPUs,
        PP stages beyond that, attention TP 4 under DP attention, DeepEP over the TP group."""
        tp = min(ranks, 256)
        if ranks % tp or ranks % gpus_per_node:
            raise ValueError(f"{ranks} ranks do not split into TP groups of {tp} and full nodes")
        return cls(
            nnodes=ranks // gpus_per_node,
            gpus_per_node=gpus_per_node,
            tp=tp,
            pp=ranks // tp,
            dp=max(tp // 8, 1),
            ep=tp,
        )

    @property
    def attn_tp(self) -> int:
        return self.tp // self.dp // self.attn_cp

    def prefix(self, rank: int) -> str:
        """The scheduler prefix SGLang prints for `rank` (token order of SGLang main)."""
        tp_rank, pp_rank = rank % self.tp, rank // self.tp
        attn_tp = self.attn_tp
        moe_tp = self.tp // self.ep_size // self.moe_dp
        tokens = []
        if self.dp > 1:
            tokens.append(f"DP{tp_rank // (self.attn_cp * attn_tp)}")
        if self.pp > 1:
            tokens.append(f"PP{pp_rank}")
        if self.attn_cp > 1:
            tokens.append(f"ATTN_CP{tp_rank // attn_tp % self.attn_cp}")
        if self.moe_dp > 1:
            tokens.append(f"MOE_DP{tp_rank // (self.ep_size * moe_tp)}")
        if self.tp > 1:
            tokens.append(f"TP{tp_rank}")
        if self.ep_size > 1:
            tokens.append(f"EP{tp_rank // moe_tp % self.ep_size}")
        return "".join(f" {t}" for t in tokens)

    def command(self, node: int) -> str:
        flags = [
            f"--model-path {self.model}",
            f"--tp {self.tp}",
            f"--pp-size {self.pp}" if self.pp > 1 else "",
            f"--dp {self.dp} --enable-dp-attention" if self.dp > 1 else "",
            f"--attn-cp-size {self.attn_cp}" if self.attn_cp > 1 else "",
            f"--moe-dp-size {self.moe_dp}" if self.moe_dp > 1 else "",
            f"--ep {self.ep}" if self.ep > 1 else "",
            f"--moe-a2a-backend {self.a2a}" if self.a2a != "none" else "",
            f"--nnodes {self.nnodes} --node-rank {node} --dist-init-addr {_ip(0)}:5000",
            "--trust-remote-code --host 0.0.0.0 --port 30000",
        ]
        return "NCCL_DEBUG=INFO python3 -m sglang.launch_server " + " ".join(f for f in flags if f)

    def server_args(self, node: int) -> str:
        """The bundled sample's ServerArgs repr with this job's values (after rewrites)."""
        dump = _template_dump()
        values: dict[str, Any] = {
            "model_path": self.model,
            "tokenizer_path": self.model,
            "served_model_name": self.model,
            "tp_size": self.tp,
            "pp_size": self.pp,
            "dp_size": self.dp,
            "attn_cp_size": self.attn_cp,
            "moe_dp_size": self.moe_dp,
            "ep_size": self.ep_size,
            "moe_a2a_backend": self.a2a,
            "nnodes": self.nnodes,
            "node_rank": node,
            "dist_init_addr": f"{_ip(0)}:5000",
            "enable_dp_attention": self.dp > 1,
        }
        for name, value in values.items():
            dump, found = re.subn(
                rf"(?<=[(, ]){name}=(?:'[^']*'|[^,)]*)", f"{name}={value!r}", dump
            )
            if not found:
                raise ValueError(f"{TEMPLATE} has no {name}= field")
        return dump


@cache
def _template_dump() -> str:
    """The `ServerArgs(...)` text of the sample's dump (its line 2), read once."""
    line = TEMPLATE.read_text(encoding="utf-8").splitlines()[1]
    return line.split("server_args=", 1)[1]


def _ip(node: int) -> str:
    return f"10.20.{node // 250}.{node % 250 + 2}"


def _host(node: int) -> str:
    return f"gpu-node-{node:03d}"


def _ts(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def node_log(job: Job, node: int, nccl_detail: bool = False) -> str:
    """The console output of one node, from the prompt to `ready to roll` (or a hang).

    Without `nccl_detail` each rank prints a handful of NCCL lines (enough for hosts and the
    TP communicator); with it, everything NCCL_DEBUG=INFO and TORCH_CPP_LOG_LEVEL=INFO print.
    """
    host, gpn = _host(node), job.gpus_per_node
    ranks = range(node * gpn, (node + 1) * gpn)
    hang = bool(job.missing)
    out = [f"[ubuntu@{host} ~]$ {job.command(node)}"]
    out.append(f"[{_ts(0)}] server_args={job.server_args(node)}")
    if job.dp > 1:
        out.append(
            f"[{_ts(0)}] WARNING server_args.py:2118: DP attention is enabled. The chunked "
            f"prefill size is adjusted to {8192 // job.dp or 1} to avoid MoE kernel issues. "
        )
    if job.a2a in A2A_FORCES_EP:
        out.append(
            f"[{_ts(0)}] WARNING server_args.py:1812: {A2A_FORCES_EP[job.a2a]} MoE is enabled. "
            f"The expert parallel size is adjusted to be the same as the tensor parallel "
            f"size[{job.tp}]."
        )
    begin = {r: 9 + (r % gpn) % 3 * 0.4 + job.late.get(r, 0.0) for r in ranks}
    started = [r for r in ranks if r not in job.missing]
    for r in sorted(started, key=lambda r: begin[r]):
        out.append(f"[{_ts(begin[r])}{job.prefix(r)}] Init torch distributed begin.")
    if nccl_detail:
        for r in started:
            if r % gpn == 0:
                out.append(f"[{_ts(begin[r] + 2)}{job.prefix(r)}] sglang is using nccl==2.27.5")
        out += _interleaved([_torch_lines(job, r, begin[r]) for r in started])
        out += _interleaved([_nccl_lines(job, r, hang) for r in started])
    else:
        out += _brief_nccl_lines(job, node, started, begin)
    if hang:
        return "\n".join(out) + "\n"
    joined = 9 + 0.8 + max(job.late.values(), default=0.0) + 3  # after the last rank began
    for r in started:
        out.append(
            f"[{_ts(joined + (r % gpn) * 0.1)}{job.prefix(r)}] Init torch distributed ends. "
            f"elapsed={joined - begin[r]:.2f} s, mem usage=1.08 GB"
        )
    for r in started:
        out.append(f"[{_ts(joined + 1)}{job.prefix(r)}] Load weight begin. avail mem=138.27 GB")
    for r in started:
        out.append(
            f"[{_ts(joined + 60)}{job.prefix(r)}] Load weight end. elapsed=59.20 s, "
            "type=DeepseekV3ForCausalLM, dtype=torch.bfloat16, avail mem=50.93 GB, "
            "mem usage=87.36 GB."
        )
        out.append(f"[{_ts(joined + 62)}{job.prefix(r)}] KV Cache is allocated. #tokens: 393216")
        out.append(
            f"[{_ts(joined + 110)}{job.prefix(r)}] Capture cuda graph end. Time elapsed: 47.75 s. "
            "mem usage=2.18 GB. avail mem=22.55 GB."
        )
    if node == 0:
        out.append(f"[{_ts(joined + 112)}] INFO:     Application startup complete.")
        out.append(f"[{_ts(joined + 114)}] The server is fired up and ready to roll!")
    return "\n".join(out) + "\n"


def _brief_nccl_lines(
    job: Job, node: int, started: list[int], begin: dict[int, float]
) -> list[str]:
    """A handful of NCCL lines per rank: enough for the hosts and the TP communicator."""
    host, gpn, hang = _host(node), job.gpus_per_node, bool(job.missing)
    tp_nodes = max(job.tp // gpn, 1)
    out: list[str] = []
    for r in started:
        gpu, pid = r % gpn, 2918431 + r % gpn
        who = f"{host}:{pid}:{pid} [{gpu}] NCCL INFO"
        if gpu == 0:
            out.append(f"[{_ts(begin[r] + 2)}{job.prefix(r)}] sglang is using nccl==2.27.5")
            out.append(f"{who} NCCL version 2.27.5+cuda12.9")
        out.append(f"{who} Bootstrap: Using eth0:{_ip(node)}<0>")
        comm = _comm(r, 0)
        tp_rank = r % job.tp
        out.append(
            f"{who} ncclCommInitRank comm {comm} rank {tp_rank} nranks {job.tp} cudaDev {gpu} "
            f"nvmlDev {gpu} busId {_bus(gpu)} commId {_tp_comm_id(r, job)} - Init START"
        )
        out.append(
            f"{who} comm {comm} rank {tp_rank} nRanks {job.tp} nNodes {tp_nodes} "
            f"localRanks {gpn} localRank {gpu} MNNVL 0"
        )
        nxt = (tp_rank + 1) % job.tp
        if gpu == gpn - 1 and tp_nodes > 1:
            out.append(
                f"{who} Channel 00/0 : {tp_rank}[{gpu}] -> {nxt}[0] [send] via NET/IB/0/GDRDMA"
            )
        elif job.tp > 1:
            out.append(
                f"{who} Channel 00/0 : {tp_rank}[{gpu}] -> {nxt}[{(gpu + 1) % gpn}] via P2P/IPC"
            )
        if not hang:
            out.append(
                f"{who} ncclCommInitRank comm {comm} rank {tp_rank} nranks {job.tp} cudaDev "
                f"{gpu} nvmlDev {gpu} busId {_bus(gpu)} commId {_tp_comm_id(r, job)} "
                "- Init COMPLETE"
            )
    return out


def _bus(gpu: int) -> str:
    return f"{0x18000 + gpu * 0x12000:x}"


def _comm(rank: int, which: int) -> str:
    """The pointer of a rank's `which`-th communicator (0 TP, 1 PP), distinct in a process."""
    return f"0x55{(rank * 7919 + which * 0x9E3779B1) % 0xFFFFFFFF:010x}"


def _tp_comm_id(rank: int, job: Job) -> str:
    return f"0x{0x7D3F2A9C41E8B065 + rank // job.tp:016x}"  # one TP comm per PP stage


def _interleaved(per_rank: list[list[str]]) -> list[str]:
    """The lines of a node's processes as one console shows them: taking turns."""
    return [line for step in zip_longest(*per_rank) for line in step if line is not None]


def _glog(seconds: float, source: str) -> str:
    """The c10 log header of a PyTorch INFO line, `[I0312 09:41:10.123456789 file.cpp:N]`."""
    stamp = START + timedelta(seconds=seconds)
    return f"[I{stamp:%m%d %H:%M:%S}.{stamp.microsecond * 1000 + 421:09d} {source}]"


def _torch_lines(job: Job, rank: int, begin: float) -> list[str]:
    """What TORCH_CPP_LOG_LEVEL=INFO prints while the world and TP process groups form."""
    tp_rank = rank % job.tp
    world = f"[PG ID 0 PG GUID 0 Rank {rank}]"
    tp, tp_named = (
        f"[PG ID 2 PG GUID 3 Rank {tp_rank}]",
        f"[PG ID 2 PG GUID 3(tp:device) Rank {tp_rank}]",
    )
    options = "ProcessGroupNCCL initialization options: size: {}, global rank: {}, TIMEOUT(ms): "
    options += "600000, USE_HIGH_PRIORITY_STREAM: 0, SPLIT_FROM: 0, SPLIT_COLOR: -2, PG Name: {}"
    return [
        f"{_glog(begin, 'ProcessGroupNCCL.cpp:988')} {world} " + options.format(job.world, rank, 0),
        f"{_glog(begin, 'ProcessGroupNCCL.cpp:999')} {world} ProcessGroupNCCL environments: "
        "NCCL version: 2.27.5, TORCH_NCCL_ASYNC_ERROR_HANDLING: 3, TORCH_NCCL_ENABLE_TIMING: 0, "
        "TORCH_NCCL_BLOCKING_WAIT: 0, TORCH_DISTRIBUTED_DEBUG: OFF, "
        "TORCH_NCCL_ENABLE_MONITORING: 1, TORCH_NCCL_DUMP_ON_TIMEOUT: 1",
        f"{_glog(begin + 0.5, 'ProcessGroupNCCL.cpp:988')} {tp} " + options.format(job.tp, rank, 3),
        f"{_glog(begin + 1, 'ProcessGroupNCCL.cpp:1068')} {tp_named} Using non-blocking mode: 0",
        f"{_glog(begin + 1, 'ProcessGroupNCCL.cpp:3146')} {tp_named} ProcessGroupNCCL broadcast "
        "unique ID through store took 0.043047 ms",
        f"{_glog(begin + 1, 'NCCLUtils.cpp:91')} Rank {tp_rank}: creating NCCL communicator with "
        "mode: blocking",
        f"{_glog(begin + 2, 'ProcessGroupNCCL.cpp:3180')} {tp_named} NCCL_DEBUG: INFO",
    ]


def _nccl_lines(job: Job, rank: int, hang: bool) -> list[str]:
    """Everything NCCL_DEBUG=INFO prints in one process: its set-up, then the init of its TP
    communicator and, with PP, of its PP communicator (NCCL 2.27 wording)."""
    gpn, gpu = job.gpus_per_node, rank % job.gpus_per_node
    node, pid = rank // gpn, 2918431 + gpu
    who = f"{_host(node)}:{pid}:{pid} [{gpu}] NCCL INFO "
    ip = _ip(node)
    lines = [
        "cudaDriverVersion 12090",
        f"Bootstrap: Using eth0:{ip}<0>",
        "NCCL version 2.27.5+cuda12.9",
        "NCCL_SOCKET_IFNAME set by environment to eth0",
        "NCCL_IB_HCA set by environment to mlx5",
        "NET/Plugin: Could not find: libnccl-net.so. Using internal net plugin.",
        "NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB [2]mlx5_2:1/IB [3]mlx5_3:1/IB "
        f"[4]mlx5_4:1/IB [5]mlx5_5:1/IB [6]mlx5_6:1/IB [7]mlx5_7:1/IB [RO]; OOB eth0:{ip}<0>",
        "Using network IB",
    ]
    stage, tp_rank = divmod(rank, job.tp)
    tp_members = [stage * job.tp + t for t in range(job.tp)]
    lines += _comm_init(job, rank, tp_members, _comm(rank, 0), _tp_comm_id(rank, job), hang)
    if job.pp > 1:
        pp_members = [tp_rank + job.tp * p for p in range(job.pp)]
        comm_id = f"0x{0x3A61C0FFEE000000 + tp_rank:016x}"
        lines += _comm_init(job, rank, pp_members, _comm(rank, 1), comm_id, hang, PP_CHANNELS)
    return [who + line for line in lines]


def _comm_init(
    job: Job,
    rank: int,
    members: list[int],
    comm: str,
    comm_id: str,
    hang: bool,
    channels: int = TP_CHANNELS,
) -> list[str]:
    """One process's lines for one communicator, from `Init START` to its init timings.

    The ring runs through `members` in order; the tree chains each node's ranks under their
    first one, and those heads form a binary tree over the nodes.
    """
    gpn, gpu = job.gpus_per_node, rank % job.gpus_per_node
    index = {m: i for i, m in enumerate(members)}
    me, n = index[rank], len(members)
    heads = {}
    for m in members:
        heads.setdefault(m // gpn, m)
    nodes = list(heads)
    local = [m for m in members if m // gpn == rank // gpn]
    mine = local.index(rank)
    prev, nxt = members[(me - 1) % n], members[(me + 1) % n]
    start = f"ncclCommInitRank comm {comm} rank {me} nranks {n} cudaDev {gpu} nvmlDev {gpu} "
    start += f"busId {_bus(gpu)} commId {comm_id} - Init "
    lines = [
        start + "START",
        f"Setting affinity for GPU {gpu} to {'ffff' if gpu < gpn // 2 else 'ffff0000'},00000000",
        f"comm {comm} rank {me} nRanks {n} nNodes {len(nodes)} localRanks {len(local)} "
        f"localRank {mine} MNNVL 0",
    ]
    if mine:
        up, downs = index[local[mine - 1]], [local[mine + 1 : mine + 2], [], []]
    else:
        k = nodes.index(rank // gpn)
        up = index[heads[nodes[(k - 1) // 2]]] if k else -1
        downs = [local[1:2], [heads[c] for c in nodes[2 * k + 1 : 2 * k + 2]]]
        downs.append([heads[c] for c in nodes[2 * k + 2 : 2 * k + 3]])
    down = "/".join(str(index[d[0]]) if d else "-1" for d in downs)
    lines.append("Trees " + " ".join(f"[{c}] {down}->{me}->{up}" for c in range(channels)))
    if me == 0:
        order = " ".join(str(i) for i in range(n))
        order = order if len(order) <= 128 else order[:128] + "..."
        lines += [f"Channel {c:02d}/{channels:02d} : {order}" for c in range(channels)]
    lines += [f"Ring {c:02d} : {index[prev]} -> {me} -> {index[nxt]}" for c in range(channels)]
    lines.append("P2P Chunksize set to 524288")
    for c in range(channels):
        hop = f"Channel {c:02d}/0 : {me}[{gpu}] -> {index[nxt]}[{nxt % gpn}]"
        if nxt // gpn == rank // gpn:
            lines.append(f"{hop} via P2P/CUMEM/read")
        else:
            lines.append(f"{hop} [send] via NET/IB/{c % 8}/GDRDMA")
        if prev // gpn != rank // gpn:
            lines.append(
                f"Channel {c:02d}/0 : {index[prev]}[{prev % gpn}] -> {me}[{gpu}] [receive] "
                f"via NET/IB/{c % 8}/GDRDMA"
            )
    lines += [
        "Connected all rings, use ring PXN 0 GDR 1",
        "Connected all trees",
        "threadThresholds 8/8/64 | 2048/8/64 | 512 | 512",
        f"{channels} coll channels, {channels} collnet channels, 0 nvls channels, "
        f"{channels} p2p channels, 2 p2p channels per peer",
        "TUNER/Plugin: Could not find: libnccl-tuner.so. Using internal tuner plugin.",
    ]
    if not hang:
        lines += [
            start + "COMPLETE",
            f"Init timings - ncclCommInitRank: rank {me} nranks {n} total 1.52 (kernels 0.21, "
            "alloc 0.08, bootstrap 0.71, allgathers 0.05, topo 0.31, graphs 0.02, connections "
            "0.12, rest 0.02)",
        ]
    return lines


def _leaders(job: Job, node: int) -> list[int]:
    """The ranks of `node` that lead an attention-TP group: SGLang's serving statistics
    come from them only."""
    gpn = job.gpus_per_node
    return [r for r in range(node * gpn, (node + 1) * gpn) if r % job.tp % job.attn_tp == 0]


def serving_lines(job: Job, node: int, nbytes: int) -> bytes:
    """About `nbytes` of what a serving node prints after start-up (UTF-8): each leading rank
    logs a `Decode batch.` line every second and a `Prefill batch,` line every tenth second."""
    leaders = _leaders(job, node)
    if not leaders or nbytes <= 0:
        return b""
    text = _serving_template(len(leaders), nbytes, len(job.prefix(job.world - 1)))
    for k, rank in enumerate(leaders):
        text = text.replace(_marker(k), job.prefix(rank).encode())
    return text


def _marker(k: int) -> bytes:
    """The stand-in for the prefix of a node's k-th leading rank."""
    return f"\x01{k:03d}\x02".encode()


@cache
def _serving_template(leaders: int, nbytes: int, width: int) -> bytes:
    """The steady-state lines of a node with `leaders` leading ranks, each prefix (about
    `width` bytes) a marker: built once, so writing gigabytes costs a replace per rank."""
    rng = random.Random(leaders)
    decode = [
        f"Decode batch. #running-req: {rng.randint(1, 256)}, #token: {rng.randint(1000, 393216)}"
        f", token usage: {rng.random():.2f}, cuda graph: True, gen throughput (token/s): "
        f"{rng.uniform(100, 4000):.2f}, #queue-req: {rng.randint(0, 12)}, "
        for _ in range(1009)
    ]
    prefill = [
        f"Prefill batch, #new-seq: {rng.randint(1, 8)}, #new-token: {rng.randint(64, 8192)}, "
        f"#cached-token: {rng.randint(0, 4096)}, token usage: {rng.random():.2f}, #running-req: "
        f"{rng.randint(1, 256)}, #queue-req: {rng.randint(0, 12)}, input throughput (token/s): "
        f"{rng.uniform(1000, 40000):.2f}, cuda graph: False"
        for _ in range(101)
    ]
    markers = [_marker(k).decode() for k in range(leaders)]
    parts, size, tick = [], 0, 0
    while size < nbytes:
        stamp = _ts(200 + tick)
        for k, marker in enumerate(markers):
            line = f"[{stamp}{marker}] {decode[(tick * leaders + k) % len(decode)]}\n"
            if tick % 10 == k % 10:
                line += f"[{stamp}{marker}] {prefill[(tick + k) % len(prefill)]}\n"
            parts.append(line)
            size += len(line) + (width - len(marker)) * line.count("\n")
        tick += 1
    return "".join(parts).encode()


def write_logs(out: Path, job: Job, size_mb: float = 0.0, nccl_detail: bool = False) -> list[Path]:
    """Write one log per node into `out` (created if needed); return the paths.

    With `size_mb`, the nodes whose ranks log serving statistics go on serving until the
    directory holds about that many megabytes.
    """
    job.check()
    out.mkdir(parents=True, exist_ok=True)
    texts = [node_log(job, node, nccl_detail) for node in range(job.nnodes)]
    serving = [n for n in range(job.nnodes) if _leaders(job, n)]
    left = size_mb * 1e6 - sum(len(t) for t in texts)
    paths = []
    for node, text in enumerate(texts):
        path = out / f"node{node:03d}.log"
        with path.open("wb") as fh:
            fh.write(text.encode())
            if node in serving and left > 0:
                fh.write(serving_lines(job, node, int(left / len(serving))))
        paths.append(path)
    return paths


def _late(text: str) -> tuple[int, float]:
    rank, _, seconds = text.partition(":")
    return int(rank), float(seconds or 60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write node000.log … into")
    defaults = Job()
    for name in ("nnodes", "gpus_per_node", "tp", "pp", "dp", "attn_cp", "moe_dp", "ep"):
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=getattr(defaults, name))
    parser.add_argument("--moe-a2a-backend", dest="a2a", default=defaults.a2a)
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument(
        "--late", type=_late, action="append", default=[], metavar="RANK[:SECONDS]",
        help="start this rank's init late (default 60 s)",
    )  # fmt: skip
    parser.add_argument(
        "--missing", type=int, action="append", default=[], metavar="RANK",
        help="this rank never starts; the others hang in init",
    )  # fmt: skip
    parser.add_argument("--ranks", type=int, help="the default shape scaled to N GPUs")
    parser.add_argument(
        "--nccl-detail", action="store_true",
        help="every NCCL_DEBUG=INFO and ProcessGroupNCCL INFO line of communicator init",
    )  # fmt: skip
    parser.add_argument(
        "--size-mb", type=float, default=0.0,
        help="serve (Decode/Prefill batch lines) until the directory holds about this much",
    )  # fmt: skip
    args = vars(parser.parse_args(argv))
    out, ranks = args.pop("out"), args.pop("ranks")
    size_mb, nccl_detail = args.pop("size_mb"), args.pop("nccl_detail")
    try:
        if ranks is not None:
            shape = Job.for_ranks(ranks, args["gpus_per_node"])
            args |= {k: getattr(shape, k) for k in ("nnodes", "tp", "pp", "dp", "ep")}
        job = Job(**{**args, "late": dict(args["late"]), "missing": frozenset(args["missing"])})
        paths = write_logs(out, job, size_mb, nccl_detail)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} logs, {job.world} ranks, {size / 1e6:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
