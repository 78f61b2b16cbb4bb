"""Print how fast rankmap reads big SGLang logs and lays out big worlds.

Run: python benchmarks/bench_parse.py [--lines N]. It writes a synthetic log in a
temporary directory (scheduler lines of 16 ranks, NCCL lines, a server_args dump) and
reports lines per second for the log parser and wall time for the whole analysis, plus
the layout and rule time for worlds up to 1024 ranks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from diagnose.analyze import Options, analyse, read_inputs
from diagnose.engines import sglang
from diagnose.model import Param
from parsers.sglang_log import parse_sglang_log

DUMP = (
    "[2026-03-01 10:00:00] server_args=ServerArgs(model_path='deepseek-ai/DeepSeek-V3', "
    "tp_size=16, dp_size=16, enable_dp_attention=True, ep_size=16, nnodes=2, node_rank=0, "
    "moe_a2a_backend='deepep', moe_dense_tp_size=1)\n"
)


def write_log(path: Path, lines: int) -> None:
    with path.open("w") as fh:
        fh.write(DUMP)
        for i in range(lines):
            tp = i % 16
            if i % 5 == 0:
                fh.write(
                    f"gpu-{tp // 8}:{1000 + tp}:{1000 + tp} [{tp % 8}] NCCL INFO comm 0x55{i:08x} "
                    f"rank {tp} nRanks 16 nNodes 2 localRanks 8 localRank {tp % 8} MNNVL 0\n"
                )
            else:
                fh.write(
                    f"[2026-03-01 10:00:{i % 60:02d} DP{tp} TP{tp} EP{tp}] Decode batch. "
                    f"#running-req: {i % 97}, #token: {i}, token usage: 0.01, gen throughput "
                    "(token/s): 1234.5, #queue-req: 0\n"
                )


def bench_log(lines: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "node0.log"
        write_log(log, lines)
        size = log.stat().st_size
        start = time.perf_counter()
        parse_sglang_log(log, log.name)
        parse = time.perf_counter() - start
        start = time.perf_counter()
        found = read_inputs(Path(tmp))
        analyse(found, Options(gpus_per_node=8), "report")
        whole = time.perf_counter() - start
    print(f"log of {lines:,} lines ({size / 1e6:.0f} MB)")
    print(f"  parse_sglang_log   {parse:7.2f} s   {lines / parse / 1e6:6.2f} M lines/s")
    print(f"  read + analyse     {whole:7.2f} s")


def bench_layout() -> None:
    for tp, pp in ((8, 1), (64, 2), (256, 4), (1024, 1)):
        values = {"tp_size": tp, "pp_size": pp, "dp_size": tp, "enable_dp_attention": True}
        values |= {"ep_size": tp, "nnodes": tp * pp // 8}
        start = time.perf_counter()
        cfg = sglang.resolve({k: Param(k, v) for k, v in values.items()})
        sglang.layout(cfg)
        took = time.perf_counter() - start
        print(f"  layout tp={tp:<5} pp={pp}   {took * 1e3:8.1f} ms  ({tp * pp} ranks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    args = parser.parse_args()
    bench_log(args.lines)
    print("layout only")
    bench_layout()


if __name__ == "__main__":
    main()
