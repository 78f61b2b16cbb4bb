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

Run: python benchmarks/generate_sglang_logs.py OUTDIR [--nnodes 128 --tp 256 --pp 4 ...];
the defaults write a 1024-rank DeepSeek-V3 job (tp 256 × pp 4, dp-attention 32, attn-cp 2,
DeepEP over ep 256) on 128 nodes of 8 GPUs.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "sample_logs" / "seed_dsv32_tp8_dp2_attncp2" / "server.log"
START = datetime(2026, 3, 12, 9, 41, 0)
# moe_a2a_backend values for which SGLang sets ep_size = tp_size, with the name its warning uses.
A2A_FORCES_EP = {"deepep": "DeepEP", "mooncake": "Mooncake", "nixl": "NIXL", "mori": "MORI"}


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

    def prefix(self, rank: int) -> str:
        """The scheduler prefix SGLang prints for `rank` (token order of SGLang main)."""
        tp_rank, pp_rank = rank % self.tp, rank // self.tp
        attn_tp = self.tp // self.dp // self.attn_cp
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


def node_log(job: Job, node: int) -> str:
    """The console output of one node, from the prompt to `ready to roll` (or a hang)."""
    host, gpn = _host(node), job.gpus_per_node
    ranks = range(node * gpn, (node + 1) * gpn)
    hang = bool(job.missing)
    tp_nodes = max(job.tp // gpn, 1)
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
    comm_id = f"0x{0x7D3F2A9C41E8B065 + ranks[0] // job.tp:016x}"  # one TP comm per PP stage
    for r in started:
        gpu, pid = r % gpn, 2918431 + r % gpn
        who = f"{host}:{pid}:{pid} [{gpu}] NCCL INFO"
        if gpu == 0:
            out.append(f"[{_ts(begin[r] + 2)}{job.prefix(r)}] sglang is using nccl==2.27.5")
            out.append(f"{who} NCCL version 2.27.5+cuda12.9")
        out.append(f"{who} Bootstrap: Using eth0:{_ip(node)}<0>")
        comm = f"0x55{(r * 7919) % 0xFFFFFFFF:010x}"
        tp_rank = r % job.tp
        out.append(
            f"{who} ncclCommInitRank comm {comm} rank {tp_rank} nranks {job.tp} cudaDev {gpu} "
            f"nvmlDev {gpu} busId {0x18000 + gpu * 0x12000:x} commId {comm_id} - Init START"
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
                f"{gpu} nvmlDev {gpu} busId {0x18000 + gpu * 0x12000:x} commId {comm_id} "
                "- Init COMPLETE"
            )
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


def write_logs(out: Path, job: Job) -> list[Path]:
    """Write one log per node into `out` (created if needed); return the paths."""
    job.check()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for node in range(job.nnodes):
        path = out / f"node{node:03d}.log"
        path.write_text(node_log(job, node), encoding="utf-8")
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
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    job = Job(**{**args, "late": dict(args["late"]), "missing": frozenset(args["missing"])})
    try:
        paths = write_logs(out, job)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} logs, {job.world} ranks, {size / 1e6:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
