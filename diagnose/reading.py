"""Read a log directory: every file discovered, parsed and accounted for.

This is the only stage that touches every byte of the inputs, so a big directory is read
on every core: groups of files go to worker processes and to this one. Reading a file comes
in two steps: a scan (the only step that holds the whole file) keeps the few lines any
parser looks at beyond the scheduler prefixes, then the batch parsers turn the kept lines
of many files into facts at once, since a polars call costs about as much on a few hundred
lines as on ten thousand. Workers import this module and the parsers alone, not the
analysis (rules, graphs): on two cores every tenth of a second a worker spends starting is
a fiftieth of the whole run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from itertools import accumulate
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

# The batch parsers run over the lines kept from up to this many files, or sooner once the
# kept lines reach KEPT_BYTES: their fixed cost (tens of milliseconds of polars calls,
# whatever the size) is shared, while memory stays bounded (the NCCL parser's frames grow to
# several times the lines it reads, and a log of NCCL lines alone keeps all of them).
BATCH_FILES = 64
KEPT_BYTES = 48 * 2**20
# Directories whose parsing costs at least this much (bytes, plus FILE_COST_BYTES per file
# for the fixed part) are read by single-threaded worker processes beside this one, at about
# twice the rate of polars' own threads in one process; but starting a worker (a fresh
# interpreter importing polars and the engines) takes a third of a second.
PARALLEL_BYTES = 256 * 2**20
FILE_COST_BYTES = 2 * 2**20
# What a worker sends when it has read all it claimed.
DONE = "done"
# Scanning goes in groups of files, this many per core, for all cores to finish together.
SCAN_GROUPS = 32
# Reading this much takes seconds: enough to deserve a progress bar on a terminal.
PROGRESS_BYTES = 512 * 2**20
# Prefix columns that are not coordinates: the first line of each coordinate combination (and
# host) carries every fact the assembly takes from the prefixes.
PREFIX_DETAILS = ("line", "ts", "text")
SAYS_NOTHING = "no engine configuration, rank prefixes, NCCL or PyTorch lines"
# The lines any parser looks at beyond the scheduler prefixes.
_WANTED = rare_lines(pl.col("text"), nccl_log.CANDIDATES, torch_dist_log.CANDIDATES)
# Engine parsers that also come in the two steps of reading: a scan of each file, then the
# facts of many scanned files at once.
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


def read_inputs(path: Path, idle: Callable[[], object] | None = None) -> Inputs:
    """Parse every file under `path`; each one is accounted for in `files`.

    `idle` is work for later that this process may do when it has read its share of the
    files while workers still read theirs (it is called at most once, maybe not at all).

    Big directories are parsed on every core, with a progress bar on a terminal when that
    takes a while; files, logs and facts keep the directory's order either way. The workers
    are spawned processes, so a script that calls this needs the usual
    `if __name__ == "__main__":` guard.
    """
    candidates = discover(path) if path.is_dir() else [single_file(path)]
    found = Inputs()
    for record, part in _read_all(candidates, idle):
        found.files.append(record)
        found.logs += part.logs
        found.models += part.models
        found.nccl += part.nccl
        found.torch += part.torch
        found.traces += part.traces
        found.dumps += part.dumps
    return found


def _read_all(
    candidates: list[Candidate], idle: Callable[[], object] | None
) -> list[tuple[InputFile, Inputs]]:
    """Each file's record and facts, in order: read by this process alone when there is
    little to read, else by worker processes and this process together."""
    size = _size(candidates)
    cores = os.cpu_count() or 1
    readable = sum(1 for cand in candidates if cand.skip_reason is None)
    # One big file is read here too: polars' own threads are all there is to share it.
    if cores < 2 or readable < 2 or size + len(candidates) * FILE_COST_BYTES < PARALLEL_BYTES:
        done: list[Scanned] = []
        singles = (([cand], i) for i, cand in enumerate(candidates))
        _read_groups(singles, lambda _, settled: done.extend(settled))
        done.sort(key=lambda item: item.index)
        return [(item.record, item.part) for item in done if item.record is not None]
    return _read_parallel(candidates, size, cores, idle)


def _read_parallel(
    candidates: list[Candidate], size: int, cores: int, idle: Callable[[], object] | None
) -> list[tuple[InputFile, Inputs]]:
    """_read_all on every core: worker processes and this process claim groups of files
    from the two ends of one list, the workers the biggest groups first and this process
    the smallest, so that all finish together; each runs the batch parsers over what it
    scanned itself (sending scanned lines between processes costs more than parsing them).
    This process starts at once while the workers are still starting, which is why there is
    one worker fewer than there are cores.
    """
    groups = list(_batches(candidates, size // (SCAN_GROUPS * cores) + 1))
    starts = list(accumulate((len(group) for group in groups[:-1]), initial=0))
    order = sorted(range(len(groups)), key=lambda i: -_size(groups[i]))
    plan = _Plan(groups, starts, order)
    spawn = multiprocessing.get_context("spawn")
    claims = _Claims(spawn, len(order))
    results = spawn.Queue()
    workers = max(1, min(cores - 1, len(groups) - 1))
    with _environment(POLARS_MAX_THREADS=str(max(1, cores // (workers + 1)))):
        processes = _start_workers(spawn, workers, (plan, claims, results))
    done: dict[int, tuple[InputFile, Inputs]] = {}
    finished = [0]
    try:
        with _progress(size) as advance, _one_core():

            def store(read: int, settled: list[Scanned]) -> None:
                done.update((item.index, (item.record, item.part)) for item in settled)  # type: ignore[misc]
                advance(read)

            def take(message: Any) -> None:
                finished[0] += _received(message, store)

            def here(read: int, settled: list[Scanned]) -> None:
                store(read, settled)
                while not results.empty():
                    take(results.get())

            _read_groups(_claimed(plan, claims, False), here)
            if idle is not None and finished[0] < workers:
                idle()
            while finished[0] < workers:
                take(_next_message(results, processes))
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
    return [done[i] for i in range(len(candidates))]


@dataclass
class _Plan:
    """The groups of files to read, the index of each group's first file, and the order
    in which they are claimed from the front (biggest first)."""

    groups: list[list[Candidate]]
    starts: list[int]
    order: list[int]


class _Claims:
    """Which groups are left: the workers take from the front of the plan's order, this
    process from the back, under one lock shared by all the processes."""

    def __init__(self, context: Any, count: int) -> None:
        self.lock = context.Lock()
        self.front = context.Value("i", 0, lock=False)
        self.back = context.Value("i", count, lock=False)

    def next(self, front: bool) -> int | None:
        """The position in the order of the next group to read, None when all are taken."""
        with self.lock:
            if self.front.value >= self.back.value:
                return None
            if front:
                self.front.value += 1
                return self.front.value - 1
            self.back.value -= 1
            return self.back.value


def _claimed(plan: _Plan, claims: _Claims, front: bool) -> Iterator[tuple[list[Candidate], int]]:
    """The groups this process claims (from the front or the back) until none is left, each
    with the index of its first file."""
    while (position := claims.next(front)) is not None:
        i = plan.order[position]
        yield plan.groups[i], plan.starts[i]


def _read_groups(
    groups: Iterable[tuple[list[Candidate], int]], report: Callable[[int, list[Scanned]], None]
) -> None:
    """Scan each group of files, and run the batch parsers over what the scans kept whenever
    that reaches BATCH_FILES files or KEPT_BYTES, and at the end; `report` gets the bytes
    read and the files settled."""
    kept: list[Scanned] = []
    for group, first in groups:
        scanned = _scan_each(group, first)
        kept += [item for item in scanned if item.record is None]
        settled = [item for item in scanned if item.record is not None]
        if len(kept) >= BATCH_FILES or sum(item.kept for item in kept) >= KEPT_BYTES:
            settled += _finish_safely(kept)
            kept = []
        report(_size(group), settled)
    report(0, _finish_safely(kept))


def _start_workers(context: Any, count: int, args: tuple[Any, ...]) -> list[Any]:
    processes = [context.Process(target=_worker, args=args, daemon=True) for _ in range(count)]
    for process in processes:
        process.start()
    return processes


def _worker(plan: _Plan, claims: _Claims, results: Any) -> None:
    """A worker process: it reads the groups it claims from the front, sends every report to
    this process, then DONE (or the traceback that stopped it)."""
    try:
        _read_groups(_claimed(plan, claims, True), lambda read, done: results.put((read, done)))
        results.put(DONE)
    except BaseException:
        results.put(traceback.format_exc())


def _received(message: Any, store: Callable[[int, list[Scanned]], None]) -> int:
    """Take one worker message: 1 when it says the worker is done, else 0 (its report
    stored); a worker's traceback is raised here."""
    if message == DONE:
        return 1
    if isinstance(message, str):
        raise RuntimeError(f"a worker reading the logs failed:\n{message}")
    store(*message)
    return 0


def _next_message(results: Any, processes: list[Any]) -> Any:
    """The next worker message; an error when every worker died without a word."""
    while True:
        try:
            return results.get(timeout=0.5)
        except queue.Empty:
            if all(process.exitcode is not None for process in processes):
                codes = ", ".join(str(process.exitcode) for process in processes)
                raise RuntimeError(f"a worker reading the logs died (exit code {codes})") from None


def _batches(candidates: list[Candidate], most: int) -> Iterator[list[Candidate]]:
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
def _one_core() -> Iterator[None]:
    """Keep this process (all its polars threads) on one core meanwhile, where the system
    allows it: the workers own the others, and polars threads idling beside a busy worker
    still take some of its time."""
    pin = getattr(os, "sched_setaffinity", None)
    cores = os.sched_getaffinity(0) if pin else set()
    pinned = False
    if pin is not None and len(cores) > 1:
        with suppress(OSError):  # not allowed in some containers: read unpinned
            pin(0, {min(cores)})
            pinned = True
    try:
        yield
    finally:
        if pinned:
            pin(0, cores)  # type: ignore[misc]


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A function to report bytes read: a bar on stderr for long reads on a terminal."""
    if total < PROGRESS_BYTES or not sys.stderr.isatty():
        yield lambda done: None
        return
    with click.progressbar(length=total, label="Reading logs", file=sys.stderr) as bar:
        yield bar.update


@dataclass
class Scanned:
    """A file after the first step of reading: its record and facts once they are settled,
    else what the second step needs: the lines any batch parser looks at (`picked`), and
    the engine's scan (when its parser comes in two steps) or its log."""

    index: int
    cand: Candidate
    part: Inputs
    record: InputFile | None = None
    picked: pl.DataFrame | None = None
    scan: Any = None
    log: EngineLog | None = None

    @property
    def kept(self) -> int:
        """Bytes held until the second step."""
        picked = 0 if self.picked is None else int(self.picked.estimated_size())
        return picked + (0 if self.scan is None else self.scan.size())


def _scan_each(cands: Sequence[Candidate], first: int) -> list[Scanned]:
    """The first step for each file (`first` is the index of the first one). A file whose
    scan fails is read on its own instead, so that the failure is that file's alone."""
    out = []
    for index, cand in enumerate(cands, first):
        try:
            out.append(_scan(cand, index))
        except Exception:  # read alone: recorded (or raised) there
            record, part = _read_alone(cand)
            out.append(Scanned(index, cand, part, record))
    return out


def _scan(cand: Candidate, index: int) -> Scanned:
    """The only step that holds a whole file: read it, keep the lines any parser looks at
    beyond the scheduler prefixes (one scan for all their words costs hardly more than a scan
    for one), and let its engine scan it (or parse it whole)."""
    part = Inputs()
    frame = _opened(cand, part)
    if isinstance(frame, InputFile):
        return Scanned(index, cand, part, frame)
    item = Scanned(index, cand, part, picked=frame.filter(_WANTED))
    if cand.engine is not None:
        parse = registry.engine(cand.engine).parse_log
        if parse in BATCH_PARSERS:
            scan, _ = BATCH_PARSERS[parse]
            item.scan = scan(frame, cand.display, distinct_prefixes=True, candidates=item.picked)
        else:
            item.log = parse(cand.path, cand.display, frame)
    return item


def _finish_safely(scanned: list[Scanned]) -> list[Scanned]:
    """_finish, or when the batch makes it fail, each file read on its own instead, so that
    the failure is that file's alone and the others are read as they would be on their own."""
    try:
        return _finish(scanned)
    except Exception:  # read alone: recorded (or raised) there
        out = []
        for item in scanned:
            if item.record is None:
                record, part = _read_alone(item.cand)
                item = Scanned(item.index, item.cand, part, record)
            out.append(item)
        return out


def _finish(scanned: list[Scanned]) -> list[Scanned]:
    """The second step: the engines' and the NCCL and PyTorch facts of the scanned files, each
    batch parser run once over all of them; every file comes back settled."""
    open_ = [item for item in scanned if item.record is None]
    by_parser: dict[Callable[..., object], list[Scanned]] = {}
    for item in open_:
        if item.scan is not None:
            by_parser.setdefault(registry.engine(item.cand.engine).parse_log, []).append(item)  # type: ignore[arg-type]
    for parse, items in by_parser.items():
        _, finish = BATCH_PARSERS[parse]
        for item, log in zip(items, finish([item.scan for item in items]), strict=True):
            item.log = log
    pairs = [(item.picked, item.cand.display) for item in open_]
    facts = zip(open_, parse_nccl_files(pairs), parse_torch_dist_files(pairs), strict=True)  # type: ignore[arg-type]
    for item, nccl, torch in facts:
        said = item.log is not None and _says_anything(item.log)
        if said:
            item.part.logs.append(_first_prefixes(item.log))  # type: ignore[arg-type]
        said = _keep_distributed(item.part, nccl, torch) or said
        item.record = _said(item.cand, said)
        item.picked, item.scan, item.log = None, None, None
    return scanned


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
            log = parse(cand.path, cand.display, frame)
            if _says_anything(log):
                found.logs.append(_first_prefixes(log))
                said = True
        said = _read_distributed(cand, found, frame) or said
    except (OSError, ValueError, ModelConfigError) as exc:
        return _record(cand, "failed", str(exc))
    return _said(cand, said)


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
