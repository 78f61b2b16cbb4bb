"""Read a log directory: every file discovered, parsed and accounted for.

This is the only stage that touches every byte of the inputs, so it runs on every core:
batches of files go to worker processes and to this one. Workers import this module and
the parsers alone, not the analysis (rules, graphs), because on two cores every tenth of a
second a worker spends starting is a tenth of the whole run.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import click
import polars as pl

from diagnose.discover import Candidate, discover, single_file
from diagnose.engines import registry
from diagnose.engines.base import EngineLog
from diagnose.model import InputFile
from parsers import nccl_log, torch_dist_log
from parsers.flight_recorder import FRDump, parse_flight_recorder
from parsers.hf_config import ModelConfigError, ModelFacts, load_config_json
from parsers.kineto import KinetoTrace, parse_kineto
from parsers.lines import read_lines
from parsers.nccl_log import NcclFacts, parse_nccl, parse_nccl_files
from parsers.sglang_log import parse_sglang_log, rare_lines, scan_sglang_log, sglang_logs
from parsers.torch_dist_log import TorchDistFacts, parse_torch_dist, parse_torch_dist_files

# Files are parsed in batches of up to this many bytes and files: one pass over each file's
# lines keeps the few that matter, then each parser runs once per batch on those, so that its
# fixed cost (some milliseconds of polars calls, whatever the file's size) is shared.
BATCH_BYTES = 256 * 2**20
BATCH_FILES = 64
# Directories whose parsing costs at least this much (bytes, plus FILE_COST_BYTES per file
# for the fixed part) are parsed by one single-threaded worker process per core, at about
# twice the rate of polars' own threads in this process; but starting the workers (fresh
# interpreters importing polars and the engines) takes most of a second.
PARALLEL_BYTES = 256 * 2**20
FILE_COST_BYTES = 2 * 2**20
# Reading this much takes seconds: enough to deserve a progress bar on a terminal.
PROGRESS_BYTES = 512 * 2**20
# Prefix columns that are not coordinates: the first line of each coordinate combination (and
# host) carries every fact the assembly takes from the prefixes.
PREFIX_DETAILS = ("line", "ts", "text")
SAYS_NOTHING = "no engine configuration, rank prefixes, NCCL or PyTorch lines"
# Engine parsers that also come in the two steps of BATCH_BYTES: a scan of each file, then the
# facts of a batch of scanned files.
BATCH_PARSERS: dict[Callable[..., object], tuple[Callable[..., Any], Callable[..., list[Any]]]] = {
    parse_sglang_log: (scan_sglang_log, sglang_logs)
}


@dataclass
class Inputs:
    """Everything read from a log directory, and how each file was handled."""

    logs: list[EngineLog] = field(default_factory=list)
    files: list[InputFile] = field(default_factory=list)
    models: list[ModelFacts] = field(default_factory=list)
    nccl: list[NcclFacts] = field(default_factory=list)
    torch: list[TorchDistFacts] = field(default_factory=list)
    traces: list[KinetoTrace] = field(default_factory=list)
    dumps: list[FRDump] = field(default_factory=list)


def read_inputs(path: Path) -> Inputs:
    """Parse every file under `path`; each one is accounted for in `files`.

    Big directories are parsed on every core, with a progress bar on a terminal when that
    takes a while; files, logs and facts keep the directory's order either way. The workers
    are spawned processes, so a script that calls this needs the usual
    `if __name__ == "__main__":` guard.
    """
    candidates = discover(path) if path.is_dir() else [single_file(path)]
    found = Inputs()
    for record, part in _read_all(candidates):
        found.files.append(record)
        found.logs += part.logs
        found.models += part.models
        found.nccl += part.nccl
        found.torch += part.torch
        found.traces += part.traces
        found.dumps += part.dumps
    return found


def _read_all(candidates: list[Candidate]) -> list[tuple[InputFile, Inputs]]:
    """Each file's record and facts, in order, parsed a batch at a time: here when there is
    little to parse, else by a pool of worker processes and this process together.

    The workers take the biggest batches first and this process the smallest, so that no
    one is left with a big batch at the end; this process starts at once while the workers
    are still starting, which is why there is one worker fewer than there are cores.
    """
    size = _size(candidates)
    cores = os.cpu_count() or 1
    if cores < 2 or size + len(candidates) * FILE_COST_BYTES < PARALLEL_BYTES:
        return [result for batch in _batches(candidates) for result in _read_batch(batch)]
    # A few batches per core at least, for every core to finish at about the same time.
    batches = list(_batches(candidates, min(BATCH_BYTES, size // (4 * cores) + 1)))
    order = sorted(range(len(batches)), key=lambda i: -_size(batches[i]))
    workers = max(1, min(cores - 1, len(batches) - 1))
    results: list[list[tuple[InputFile, Inputs]]] = [[] for _ in batches]
    spawn = multiprocessing.get_context("spawn")
    with (
        _environment(POLARS_MAX_THREADS=str(max(1, cores // (workers + 1)))),
        ProcessPoolExecutor(workers, mp_context=spawn) as pool,
        _progress(size) as advance,
    ):
        running: dict[Future[list[tuple[InputFile, Inputs]]], int] = {}
        while order or running:
            # Two batches queued per worker: one to run, one waiting for it.
            while len(order) > 1 and len(running) < 2 * workers:
                i = order.pop(0)
                running[pool.submit(_read_batch, batches[i])] = i
            if order:
                i = order.pop()
                results[i] = _read_batch(batches[i])
                advance(_size(batches[i]))
            else:
                wait(running, return_when=FIRST_COMPLETED)
            for future in [f for f in running if f.done()]:
                i = running.pop(future)
                results[i] = future.result()
                advance(_size(batches[i]))
    return [result for batch in results for result in batch]


def _batches(candidates: list[Candidate], most: int = BATCH_BYTES) -> Iterator[list[Candidate]]:
    """Runs of consecutive files of at most `most` bytes and BATCH_FILES files (or one
    bigger file)."""
    batch: list[Candidate] = []
    for cand in candidates:
        if batch and (_size(batch) + cand.size > most or len(batch) == BATCH_FILES):
            yield batch
            batch = []
        batch.append(cand)
    if batch:
        yield batch


def _size(batch: list[Candidate]) -> int:
    return sum(c.size for c in batch if c.skip_reason is None)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables for the processes started meanwhile (spawned workers read
    them when they import polars): one polars thread per core a worker owns, as every core
    already has its worker."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A function to report bytes read: a bar on stderr for long reads on a terminal."""
    if total < PROGRESS_BYTES or not sys.stderr.isatty():
        yield lambda done: None
        return
    with click.progressbar(length=total, label="Reading logs", file=sys.stderr) as bar:
        yield bar.update


def _read_batch(cands: list[Candidate]) -> list[tuple[InputFile, Inputs]]:
    """Each file's record and facts, the parsers run once over the whole batch. Should a
    file make that fail, the files are read one by one instead, so that the failure is that
    file's alone and the others are read as they would be on their own."""
    if len(cands) > 1:
        with suppress(Exception):
            return _read_together(cands)
    return [_read_alone(cand) for cand in cands]


def _read_together(cands: Sequence[Candidate]) -> list[tuple[InputFile, Inputs]]:
    """_read_alone of each file, with every parser run once over the batch.

    One file at a time is in memory: its engine's scan (or whole parser) reads it, and one
    scan picks the lines any parser looks at beyond the scheduler prefixes (a scan for
    several words costs hardly more than a scan for one). The NCCL, PyTorch and engine facts
    then come from those lines of all the files at once.
    """
    wanted = rare_lines(pl.col("text"), nccl_log.CANDIDATES, torch_dist_log.CANDIDATES)
    parts = [Inputs() for _ in cands]
    records: dict[int, InputFile] = {}
    picked: dict[int, pl.DataFrame] = {}
    logs: dict[int, EngineLog] = {}
    scans: dict[Callable[..., object], list[tuple[int, Any]]] = {}
    for i, (cand, part) in enumerate(zip(cands, parts, strict=True)):
        frame = _opened(cand, part)
        if isinstance(frame, InputFile):
            records[i] = frame
            continue
        picked[i] = frame.filter(wanted)
        if cand.engine is None:
            continue
        parse = registry.engine(cand.engine).parse_log
        if parse in BATCH_PARSERS:
            scan, _ = BATCH_PARSERS[parse]
            found = scan(frame, cand.display, distinct_prefixes=True, candidates=picked[i])
            scans.setdefault(parse, []).append((i, found))
        else:
            logs[i] = _engine_log(parse, cand, frame)
    for parse, scanned in scans.items():
        _, finish = BATCH_PARSERS[parse]
        finished = finish([found for _, found in scanned])
        logs.update(zip((i for i, _ in scanned), finished, strict=True))
    said = dict.fromkeys(picked, False)
    for i in sorted(logs):
        if _says_anything(logs[i]):
            parts[i].logs.append(_first_prefixes(logs[i]))
            said[i] = True
    pairs = [(picked[i], cands[i].display) for i in picked]
    distributed = zip(picked, parse_nccl_files(pairs), parse_torch_dist_files(pairs), strict=True)
    for i, nccl, torch in distributed:
        said[i] = _keep_distributed(parts[i], nccl, torch) or said[i]
        records[i] = _said(cands[i], said[i])
    return [(records[i], part) for i, part in enumerate(parts)]


def _opened(cand: Candidate, found: Inputs) -> InputFile | pl.DataFrame:
    """The frame of a file to parse, or its record when there is nothing (more) to do: the
    first steps of _read_one."""
    if cand.skip_reason:
        return _record(cand, "skipped", cand.skip_reason)
    try:
        if cand.format == "hf-config":
            found.models.append(load_config_json(cand.path))
            return _record(cand, "parsed")
        if cand.format == "kineto-trace":
            found.traces.append(parse_kineto(cand.path, cand.display))
            return _record(cand, "parsed")
        if cand.format == "flight-recorder":
            found.dumps.append(parse_flight_recorder(cand.path, cand.display))
            return _record(cand, "parsed")
        if cand.engine is None and not (cand.nccl or cand.torch):
            return _record(cand, "skipped", SAYS_NOTHING)
        return read_lines(cand.path)
    except (OSError, ValueError, ModelConfigError) as exc:
        return _record(cand, "failed", str(exc))


def _record(cand: Candidate, status: str, reason: str | None = None) -> InputFile:
    return InputFile(cand.display, cand.format, status, reason, cand.size)  # type: ignore[arg-type]


def _said(cand: Candidate, said: bool) -> InputFile:
    """The record of a file the parsers read: parsed if any of them found something."""
    return _record(cand, "parsed") if said else _record(cand, "skipped", SAYS_NOTHING)


def _read_alone(cand: Candidate) -> tuple[InputFile, Inputs]:
    """One file's record and facts on their own."""
    part = Inputs()
    return _read_one(cand, part), part


def _read_one(cand: Candidate, found: Inputs) -> InputFile:
    """Parse one file into `found`; return its record (parsed, skipped or failed).

    The file is read once, and that frame goes to the engine's parser and to the NCCL and
    PyTorch ones.
    """
    frame = _opened(cand, found)
    if isinstance(frame, InputFile):
        return frame
    said = False
    try:
        if cand.engine is not None:
            parse = registry.engine(cand.engine).parse_log
            log = _engine_log(parse, cand, frame)
            if _says_anything(log):
                found.logs.append(_first_prefixes(log))
                said = True
        said = _read_distributed(cand, found, frame) or said
    except (OSError, ValueError, ModelConfigError) as exc:
        return _record(cand, "failed", str(exc))
    return _said(cand, said)


def _engine_log(parse: Callable[..., Any], cand: Candidate, frame: pl.DataFrame) -> EngineLog:
    """The engine's facts of one file, from the frame already read when its parser takes
    it, and with only the distinct prefixes when it can leave the others out."""
    wanted = {"frame": frame, "distinct_prefixes": True}
    accepted = _parameters(parse)
    return parse(cand.path, cand.display, **{k: v for k, v in wanted.items() if k in accepted})


@cache
def _parameters(function: Callable[..., object]) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def _first_prefixes(log: EngineLog) -> EngineLog:
    """The log with only the first line of each distinct prefix (coordinates and host).

    That is all the assembly reads (which ranks and hosts exist, and the first line that
    shows each), and a serving log puts a prefix on nearly every line: kept whole, the
    prefixes of a big directory would be most of its size in memory.
    """
    df = log.prefixes
    keys = [c for c in df.columns if c not in PREFIX_DETAILS]
    if df.height < 2 or not keys:
        return log
    return replace(log, prefixes=df.unique(keys, keep="first", maintain_order=True))  # type: ignore[type-var]


def _read_distributed(cand: Candidate, found: Inputs, frame: pl.DataFrame) -> bool:
    """NCCL and PyTorch distributed lines, wherever they sit (engine logs included)."""
    nccl = parse_nccl(frame, cand.display)
    return _keep_distributed(found, nccl, parse_torch_dist(frame, cand.display))


def _keep_distributed(found: Inputs, nccl: NcclFacts, torch: TorchDistFacts) -> bool:
    """Keep the NCCL and PyTorch facts of a file that has any; whether it had."""
    said = False
    if not (nccl.comms.is_empty() and nccl.warns.is_empty() and nccl.procs.is_empty()):
        found.nccl.append(nccl)
        said = True
    if not (torch.pgs.is_empty() and torch.works.is_empty() and not torch.errors):
        found.torch.append(torch)
        said = True
    return said


def _says_anything(log: EngineLog) -> bool:
    return bool(log.config or log.commands or not log.prefixes.is_empty())
