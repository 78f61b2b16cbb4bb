"""Write a realistic PyTorch profiler (Kineto) trace of any size for one rank of a job.

Real multi-GPU traces reach gigabytes per rank, and the comm events rankmap needs are a
fraction of a percent of them; a repository cannot ship such files, so this script writes
one. The layout mirrors `prof.export_chrome_trace()` as torch 2.11 writes it (one key per
line, events spread over several lines, `distributedInfo` before `traceEvents`) and the
event mix of a Megatron-style training step: per layer, ATen CPU ops with shapes, CUDA
runtime launches, compute kernels with long demangled template names and flow events,
then per layer a TP all-reduce, and per step PP send/recv, a DP reduce-scatter/all-gather
and an EP all-to-all-v, each as a `record_param_comms` CPU op, its `nccl:*` annotation and
its NCCL kernel with the copied process-group args (about 0.4 % of all events, the ratio of
the real traces in the shared corpus).

Run: python benchmarks/generate_trace.py OUT [--size-mb 1024] [--dist-info before|after]
[--rank 0] [--gzip]. OUT ending in `.gz` (or --gzip) writes gzip (level 1, as fast
writers do). `--dist-info after` writes the on-demand layout: `distributedInfo` after
`traceEvents`, ranks as strings.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from pathlib import Path
from typing import TextIO

# Megatron order tp-cp-ep-dp-pp over 32 ranks: tp 4, dp 4 (ep 4 inside dp), pp 2.
WORLD = 32
TP, DP, PP = 4, 4, 2

KERNELS = (
    "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8>"
    "(cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8::Params)",
    "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl<at::native::"
    "direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#2}::operator()() const::"
    "{lambda()#12}::operator()() const::{lambda(c10::BFloat16)#1}>(at::TensorIteratorBase&, "
    "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#2}::operator()() "
    "const::{lambda()#12}::operator()() const::{lambda(c10::BFloat16)#1} const&)::{lambda(int)#1}>"
    "(int, at::native::gpu_kernel_impl<...>)",
    "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, false, false, "
    "cutlass::bfloat16_t, Flash_kernel_traits<128, 128, 64, 4, cutlass::bfloat16_t> >, false, "
    "true, false, false, true, true, false>(flash::Flash_fwd_params)",
    "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, "
    "std::array<char*, 1ul> >(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)",
)
OPS = ("aten::mm", "aten::add_", "aten::mul", "aten::copy_", "aten::empty", "aten::view",
       "aten::linear", "aten::layer_norm", "aten::silu", "aten::transpose")  # fmt: skip


def groups() -> list[dict[str, object]]:
    """This job's process groups, each as a distributedInfo.pg_config entry (all ranks)."""
    out: list[dict[str, object]] = [_pg("0", "default_pg", list(range(WORLD)))]

    def add(desc: str, sets: list[list[int]]) -> None:
        for ranks in sets:
            out.append(_pg(str(len(out)), desc, ranks))

    tp_sets = [list(range(b, b + TP)) for b in range(0, WORLD, TP)]
    dp_sets = [[t + TP * d + TP * DP * p for d in range(DP)] for p in range(PP) for t in range(TP)]
    pp_sets = [[r + TP * DP * p for p in range(PP)] for r in range(TP * DP)]
    add("DATA_PARALLEL_GROUP", dp_sets)
    add("TENSOR_MODEL_PARALLEL_GROUP", tp_sets)
    add("PIPELINE_MODEL_PARALLEL_GROUP", pp_sets)
    add("EXPERT_MODEL_PARALLEL_GROUP", dp_sets)
    return out


def _pg(name: str, desc: str, ranks: list[int]) -> dict[str, object]:
    return {
        "pg_name": name,
        "pg_desc": desc,
        "backend_config": "cuda:nccl",
        "pg_size": len(ranks),
        "ranks": ranks,
    }


class Writer:
    """Writes events in Kineto's own text layout, counting ids and time as a profiler would."""

    def __init__(self, out: TextIO, rank: int, seed: int) -> None:
        self.out = out
        self.rank = rank
        self.rng = random.Random(seed)
        self.ts = 5073554739811.127
        self.ext = 1
        self.corr = 1
        self.first = True
        self.written = 0
        self.member = [g for g in groups() if rank in g["ranks"]]  # type: ignore[operator]

    def raw(self, text: str) -> None:
        self.out.write(text if self.first else ",\n" + text)
        self.first = False
        self.written += len(text) + 2

    def event(self, cat: str, name: str, pid: int, tid: int, dur: float, args: str) -> None:
        self.raw(
            f'  {{\n    "ph": "X", "cat": "{cat}", "name": "{name}", "pid": {pid}, "tid": {tid},\n'
            f'    "ts": {self.ts:.3f}, "dur": {dur:.3f},\n'
            f'    "args": {{\n      {args}\n    }}\n  }}'
        )

    def cpu_op(self) -> None:
        dims = self.rng.choice(("[[4096, 4096], [4096]]", "[[8, 2048, 4096]]", "[[1024], []]"))
        self.ext += 1
        self.event(
            "cpu_op",
            self.rng.choice(OPS),
            439,
            439,
            self.rng.uniform(2, 40),
            f'"External id": {self.ext},"Record function id": 0, "Concrete Inputs": ["", ""], '
            f'"Input type": ["c10::BFloat16", "c10::BFloat16"], "Input Strides": [[4096, 1], [1]], '
            f'"Input Dims": {dims}, "Ev Idx": {self.ext}',
        )
        self.ts += self.rng.uniform(1, 20)

    def launch(self) -> None:
        self.corr += 1
        self.event(
            "cuda_runtime",
            "cudaLaunchKernel",
            439,
            439,
            self.rng.uniform(3, 9),
            f'"External id": {self.ext}, "cbid": 211, "correlation": {self.corr}',
        )
        self.raw(
            f'  {{\n    "ph": "s", "id": {self.corr}, "pid": 439, "tid": 439, '
            f'"ts": {self.ts:.3f},\n    "cat": "ac2g", "name": "ac2g"\n  }}'
        )
        self.event(
            "kernel",
            self.rng.choice(KERNELS),
            0,
            7,
            self.rng.uniform(5, 400),
            f'"External id": {self.ext},      "queued": 0, "device": 0, "context": 1,      '
            f'"stream": 7, "correlation": {self.corr},      "registers per thread": 128,      '
            '"shared memory": 49152,      "blocks per SM": 1.939394,      "warps per SM": '
            '7.757576,      "grid": [256, 1, 1],      "block": [128, 1, 1],      '
            '"est. achieved occupancy %": 12',
        )
        self.raw(
            f'  {{\n    "ph": "f", "id": {self.corr}, "pid": 0, "tid": 7, "ts": {self.ts:.3f},\n'
            '    "cat": "ac2g", "name": "ac2g", "bp": "e"\n  }'
        )

    def comm(self, desc: str, coll: str, nelems: tuple[int, int], splits: str = "[]") -> None:
        pg = next(g for g in self.member if g["pg_desc"] == desc)
        ranks = pg["ranks"]
        assert isinstance(ranks, list)
        stride = ranks[1] - ranks[0] if len(ranks) > 1 else 0
        size = len(ranks)
        self.ext += 1
        common = (
            f'"Collective name": "{coll}", "In msg nelems": {nelems[0]}, '
            f'"Out msg nelems": {nelems[1]}, "Group size": {size}, "dtype": "BFloat16", '
            f'"In split size": "{splits}", "Out split size": "{splits}", '
            f'"Process Group Name": "{pg["pg_name"]}", "Process Group Description": "{desc}", '
            f'"Process Group Ranks": "{json.dumps(ranks)}"'
        )
        self.event(
            "cpu_op",
            "record_param_comms",
            439,
            439,
            self.rng.uniform(10, 200),
            f'"External id": {self.ext},"Record function id": 0, {common}, '
            f'"Rank": {ranks.index(self.rank)}, "Global rank start": {ranks[0]}, '
            f'"Global rank stride": {stride}, '
            '"Input Dims": [[[4096]], [], [], [], [], [], [], [], [], []], '
            f'"Ev Idx": {self.ext}',
        )
        op = {"allreduce": "all_reduce", "all_to_allv": "all_to_all"}.get(coll, coll)
        self.event("user_annotation", f"nccl:{op}", 439, 439, 50.0, f'"External id": {self.ext}')
        self.corr += 1
        kernel = {
            "allreduce": "ncclDevKernel_AllReduce_Sum_bf16_RING_LL",
            "_reduce_scatter_base": "ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL",
            "_allgather_base": "ncclDevKernel_AllGather_RING_LL",
        }.get(coll, "ncclDevKernel_SendRecv")
        self.event(
            "kernel",
            f"{kernel}(ncclDevKernelArgsStorage<4096ul>)",
            0,
            20,
            self.rng.uniform(20, 3000),
            f'"External id": {self.ext},      "queued": 0, "device": 0, "context": 1,      '
            f'"stream": 20, "correlation": {self.corr}, {common}',
        )
        self.ts += 30

    def layer(self) -> None:
        for _ in range(100):
            self.cpu_op()
            self.launch()
        self.comm("TENSOR_MODEL_PARALLEL_GROUP", "allreduce", (8388608, 8388608))

    def step(self) -> None:
        for _ in range(8):
            self.layer()
        self.comm("EXPERT_MODEL_PARALLEL_GROUP", "all_to_allv", (65536, 65536), "[1, 2, 3, 2]")
        self.comm("PIPELINE_MODEL_PARALLEL_GROUP", "send", (4194304, 4194304))
        self.comm("DATA_PARALLEL_GROUP", "_reduce_scatter_base", (16777216, 4194304))
        self.comm("DATA_PARALLEL_GROUP", "_allgather_base", (4194304, 16777216))


def dist_info(rank: int, as_strings: bool) -> str:
    pgs = [g for g in groups() if rank in g["ranks"]]  # type: ignore[operator]
    if as_strings:
        pgs = [{**g, "ranks": json.dumps(g["ranks"])} for g in pgs]
    info = {
        "backend": "nccl",
        "rank": rank,
        "world_size": WORLD,
        "pg_count": len(groups()),
        "pg_config": pgs,
        "nccl_version": "unknown" if as_strings else "2.28.9",
    }
    return json.dumps(info)


def write(out: TextIO, size: int, rank: int, after: bool, seed: int) -> None:
    out.write('\n  {\n    "schemaVersion": 1,\n    "deviceProperties": [\n    ],\n')
    out.write('      "trace_id": "1F95C4DDB0A14C81A84D680B92AC4799",\n      "record_shapes": 1,\n')
    if not after:
        out.write(f'      "distributedInfo": {dist_info(rank, False)},\n')
    out.write('  "displayTimeUnit": "ms",\n  "baseTimeNanoseconds": 1790857026000000000,\n')
    out.write('  "traceEvents": [\n')
    writer = Writer(out, rank, seed)
    while writer.written < size:
        writer.step()
    writer.raw(
        '  {\n    "name": "Record Window End", "ph": "i", "s": "g",\n    "pid": "", "tid": "", '
        f'"ts": {writer.ts:.3f}\n  }}'
    )
    out.write("\n  ],\n")
    if after:
        out.write(f'  "distributedInfo": {dist_info(rank, True)},\n')
    out.write(f'  "traceName": "trace/rank{rank}.json"\n}}\n')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--dist-info", choices=("before", "after"), default="before")
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.rank < WORLD:
        sys.exit(f"--rank must be in 0..{WORLD - 1}")
    size = int(args.size_mb * 1e6)
    after = args.dist_info == "after"
    if args.gzip or args.out.suffix == ".gz":
        with gzip.open(args.out, "wt", compresslevel=1) as out:
            write(out, size, args.rank, after, args.seed)
    else:
        with args.out.open("w", buffering=1 << 20) as out:
            write(out, size, args.rank, after, args.seed)


if __name__ == "__main__":
    main()
