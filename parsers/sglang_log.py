"""Facts from one SGLang log file or console paste.

SGLang never prints its process groups, but it leaves enough behind to rebuild them:
the `server_args=` line (sizes after SGLang's own rewrites), the launch commands users
paste next to the output, the scheduler prefix on every line (`[ts DP1 TP9 EP9]`, which
says which rank wrote it), a few warnings that record rewrites or cross-node groups, and
the lines that name hosts (parsers.hosts; NCCL's own lines are parsers.nccl_log's). This
module only collects those facts with their line numbers; deciding what they mean is the
engines' job.

Logs can be large (a serving node prints a `Decode batch.` line every few seconds for days),
so every per-line test is a polars string expression over a frame of all lines; Python only
loops over the handful of rows that matched. Only the scheduler prefixes are on most lines:
every other fact is looked for on the few lines holding one of its literal words (one
multi-literal scan), and a prefix in SGLang's own layout is recognised by one anchored scan
and cut with string slices, its tokens read once per distinct value. Parsing comes in two
steps, scan_sglang_log (what needs every line of a file) and sglang_logs (the facts, for a
batch of scanned files at once), so that a directory costs few polars calls per file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from diagnose.engines.base import EngineLog
from diagnose.model import Evidence, Param, Source
from parsers.hosts import host_rows, strip_port
from parsers.launch_cmd import TRIGGER, LaunchCommand, find_commands
from parsers.lines import FILE, any_word, collect_all, drop_headers, split, split_lines, tagged
from parsers.server_args import parse_server_args

SNIFF_BYTES = 64 * 1024
# prefixes column -> token SGLang writes; each is read on its own so any order parses.
_RANK_TOKENS = {
    "dp": "DP", "pp": "PP", "attn_cp": "ATTN_CP", "moe_dp": "MOE_DP", "tp": "TP", "ep": "EP"
}  # fmt: skip
_TIMESTAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?"
_TOKENS = r"(?: (?:DP|PP|ATTN_CP|MOE_DP|TP|EP)\d+)+"
_PREFIX = rf"\[(?P<ts>{_TIMESTAMP})(?P<tokens>{_TOKENS})\] ?(?P<message>.*)"
_VERSION = (
    r"(?i)\bsglang(?:-|==|\s+(?:version[:=]?\s*)?v?)"
    r"(\d+\.\d+\.\d+(?:\.?(?:post|rc|dev)\d+)?)"
)
# First match wins, so the specific kinds come before the catch-all exception test.
_EVENT_KINDS: tuple[tuple[str, str], ...] = (
    (
        "rewrite",
        r"is enabled\. The expert parallel size is adjusted to be the same as the tensor"
        r"|Enabled DSA context parallel:|Enable Context Parallel opt for MLA"
        r"|DP attention is enabled\. (?:The )?chunked prefill size is adjusted",
    ),
    ("init_begin", r"Init torch distributed begin\."),
    ("init_end", r"Init torch distributed ends\."),
    ("spans_nodes", r"(?i)custom ?allreduce is disabled because this process group spans"),
    ("dp_launch", r"Launch DP\d+ starting at GPU #\d+"),
    ("nccl_version", r"sglang is using nccl==|NCCL version \d+\.\d+\.\d+"),
    ("nccl_warn", r"NCCL WARN"),
    ("pg_create", r"^\s*_[A-Z_]+ = init_model_parallel_group\("),
    (
        "exception",
        r"Scheduler hit an exception|Traceback \(most recent call last\)"
        r"|^\s*(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception)|Exception)(?::\s|:?\s*$)",
    ),
)
# Every fact but the prefixes needs one of these words on its line (each pattern above and
# each of parsers.hosts contains one): one scan for all of them picks the few lines worth the
# regexes. A shell prompt's `@` is looked for apart, and only on lines that may be new
# prefixes (a prompt is no scheduler line): a one-character literal would slow the
# multi-literal scan down fivefold.
_RARE_WORDS = (
    "NCCL", "server_args=", "Init torch distributed", "Launch DP", "init_model_parallel_group(",
    "expert parallel size is adjusted", "Enabled DSA context parallel:",
    "Enable Context Parallel opt for MLA", "chunked prefill size is adjusted",
    "Traceback (most recent call last)", "Error", "Exception", "exception",
    "Bootstrap", "OOB", "connect to", "from peer", "[c10d]",
)  # fmt: skip
# The case-insensitive patterns (version, custom allreduce) under the same Unicode folding.
_RARE = any_word(_RARE_WORDS) + "|(?i:glang|allreduce)"
# Lines of a launch command's block looked at around its trigger line before the whole file.
_BLOCK_CONTEXT = 256
# A prefix in SGLang's own layout at the start of a line (whole seconds, ASCII digits): one
# anchored scan tells these lines from the others, whose prefix needs the general pattern.
_STAMPED = r"^\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
_LED = _STAMPED + r"(?: (?:DP|PP|ATTN_CP|MOE_DP|TP|EP)[0-9]+)+\]"
# The token strings of the prefixes a file's first lines show are looked for after them:
# a line led by one of those repeats a known prefix (most lines of a serving log).
_SAMPLE_LINES = 4096
_TS_AT = (1, 19)  # the timestamp of such a line; its tokens follow, up to the first `]`
_TOKEN_WORDS = any_word([f" {token}" for token in ("DP", "PP", "ATTN_CP", "MOE_DP", "TP", "EP")])
_TS_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
_SNIFF = re.compile(
    rf"\[{_TIMESTAMP}{_TOKENS}\]|server_args=(?:ServerArgs\(|\{{)|sglang\.launch_server"
    r"|\bsglang\s+serve\b|sglang::scheduler|sglang is using nccl=="
)


@dataclass
class SGLangScan:
    """What one pass over a file's lines keeps for sglang_logs: its launch commands (read),
    the lines a scheduler prefix may be first seen on (`lines`, all of them unless only
    `distinct` prefixes are wanted) and the few lines that may hold any other fact."""

    path: str
    lines: pl.DataFrame
    distinct: bool
    commands: list[LaunchCommand]
    rare: pl.DataFrame

    def size(self) -> int:
        """Bytes held until sglang_logs."""
        return int(self.lines.estimated_size() + self.rare.estimated_size())


def sniff_sglang(head: str) -> bool:
    """True when the start of a file looks like SGLang output or an SGLang launch."""
    return _SNIFF.search(head[:SNIFF_BYTES]) is not None


def parse_sglang_log(
    path: Path,
    display: str,
    frame: pl.DataFrame | None = None,
    *,
    distinct_prefixes: bool = False,
) -> EngineLog:
    """Parse `path`; `display` is the name every Source and Evidence will carry.

    `frame` is the file as parsers.lines.read_lines gives it, for callers that read each
    file once for several parsers. With `distinct_prefixes`, `prefixes` keeps only the first
    line of each coordinate combination (all that the assembly reads), which spares the
    timestamp and message of every other scheduler line: most of a serving log.

    Raises OSError when the file cannot be read. Undecodable bytes are replaced rather
    than fatal, because console pastes often carry a stray non-UTF-8 byte.
    """
    body = drop_headers(split_lines(path.read_bytes())) if frame is None else frame
    return sglang_logs([scan_sglang_log(body, display, distinct_prefixes=distinct_prefixes)])[0]


def scan_sglang_log(
    body: pl.DataFrame,
    display: str,
    *,
    distinct_prefixes: bool = False,
    candidates: pl.DataFrame | None = None,
) -> SGLangScan:
    """The first of parse_sglang_log's two steps: what needs all of a file's lines.

    `candidates` are the file's lines that rare_lines picked, when the caller scanned for
    them already (one scan of a file can serve several parsers).
    """
    text = pl.col("text")
    rare = body.filter(rare_lines(text)) if candidates is None else candidates
    triggers = rare.filter(text.str.contains(TRIGGER))["line"].to_list()
    lines = _unknown_lines(body) if distinct_prefixes else body
    commands = _commands(body, triggers, display)
    return SGLangScan(display, lines, distinct_prefixes, commands, rare)


def sglang_logs(scans: Sequence[SGLangScan]) -> list[EngineLog]:
    """The second step: the facts of the scanned files, in one polars run for all of them.

    A polars call costs about as much on a few hundred lines as on ten thousand, so a
    directory of logs is read a batch of files at a time; every step keeps the files apart
    (their index, FILE, leads every key).
    """
    if not scans:
        return []
    text = pl.col("text")
    distinct = all(scan.distinct for scan in scans)
    if not distinct and any(scan.distinct for scan in scans):
        raise ValueError("sglang_logs takes scans of one kind: all distinct_prefixes or none")
    lines = tagged([scan.lines for scan in scans])
    prompts = lines.filter(text.str.contains("@", literal=True))
    rare = (
        pl.concat([tagged([scan.rare for scan in scans]), prompts])
        .unique([FILE, "line"], maintain_order=True)
        .sort(FILE, "line")
        .collect()
        .lazy()
    )
    # Marked once: both kinds of prefix lines are picked by the mark.
    marked = lines.with_columns(text.str.contains(_LED).alias("led"))
    outputs = collect_all(
        _server_args_rows(rare),
        rare.select(FILE, text.str.extract(_VERSION, 1).alias("version")).drop_nulls("version"),
        _event_rows(rare),
        _prefix_rows(marked, distinct),
    )
    config_rows, versions, events, prefixes = (split(output, len(scans)) for output in outputs)
    configs = [_server_args(config_rows[i], scan.path) for i, scan in enumerate(scans)]
    configured = tagged(
        [_configured(scan.commands, *config) for scan, config in zip(scans, configs, strict=True)]
    )
    hosts = split(collect_all(host_rows(rare, configured))[0], len(scans))
    return [
        EngineLog(
            engine="sglang",
            path=scan.path,
            version=versions[i]["version"][-1] if versions[i].height else None,
            config=configs[i][0],
            config_line=configs[i][1],
            commands=scan.commands,
            prefixes=prefixes[i],
            events=_evidence(events[i], scan.path),
            hosts=hosts[i],
        )
        for i, scan in enumerate(scans)
    ]


def rare_lines(text: pl.Expr, *others: str) -> pl.Expr:
    """Whether a line may hold an SGLang fact other than a scheduler prefix or a shell prompt
    (or match one of the `others` patterns: other parsers' candidates, found in the same
    scan)."""
    return text.str.contains("|".join([_RARE, *others]))


def _commands(body: pl.DataFrame, triggers: list[int], display: str) -> list[LaunchCommand]:
    """Launch commands, handing find_commands only the line blocks that can hold one.

    A block is a run of backslash-continued lines; only the blocks of `triggers` (lines
    naming a launch) reach the per-line Python scan, not the whole log. Header lines
    (missing from `body`) count as empty lines.
    """
    if not triggers:
        return []
    last = body["line"][-1]
    start, end = min(triggers) - _BLOCK_CONTEXT, max(triggers) + _BLOCK_CONTEXT
    blocks = _blocks(triggers, _continued(body, start, end), last)
    if blocks[0] <= start or blocks[-1] >= end:  # a block may go on: look at every line
        blocks = _blocks(triggers, _continued(body, 1, last), last)
    near = _between(body, blocks[0], blocks[-1])
    texts = dict(near.filter(pl.col("line").is_in(blocks)).select("line", "text").iter_rows())
    found = find_commands([texts.get(number, "") for number in blocks], display)
    return [_renumbered(command, blocks[command.line - 1]) for command in found]


def _continued(body: pl.DataFrame, start: int, end: int) -> set[int]:
    """The lines from `start` to `end` that end with a backslash."""
    near = _between(body, start, end)
    return set(near.filter(pl.col("text").str.ends_with("\\"))["line"].to_list())


def _between(body: pl.DataFrame, start: int, end: int) -> pl.DataFrame:
    """The rows of lines `start` to `end`, found from the (ascending) line numbers instead of
    by testing every row of a big log: by offset when no line is missing (a log as read),
    else by bisecting."""
    if body.is_empty():
        return body
    lines = body["line"]
    low = lines[0]
    if lines[-1] - low + 1 == body.height:
        first, stop = start - low, end - low + 1
    else:
        first, stop = lines.search_sorted(start, "left"), lines.search_sorted(end, "right")
    first = min(max(first, 0), body.height)
    return body.slice(first, min(max(stop, first), body.height) - first)


def _blocks(triggers: list[int], continued: set[int], last: int) -> list[int]:
    """The lines of the blocks around `triggers`, in order."""
    wanted: set[int] = set()
    for line in triggers:
        start, end = line, line
        while start - 1 in continued:
            start -= 1
        while end in continued and end < last:
            end += 1
        wanted.update(range(start, end + 1))
    return sorted(wanted)


def _renumbered(command: LaunchCommand, line: int) -> LaunchCommand:
    """The same command with its line (and every Param's source) in the full file."""
    source = Source("file", command.file, line)
    params = {name: replace(param, source=source) for name, param in command.params.items()}
    return replace(command, params=params, line=line)


def _server_args_rows(body: pl.LazyFrame) -> pl.LazyFrame:
    """Lines holding a `server_args=` dump, with the dump."""
    text = pl.col("text")
    args = text.str.extract(r"(?:^|\W)server_args=(.*)$", 1).alias("args")
    dumps = body.filter(text.str.contains("server_args=", literal=True))
    return dumps.select(FILE, "line", "text", args).filter(pl.col("args").is_not_null())


def _server_args(rows: pl.DataFrame, display: str) -> tuple[dict[str, Param], Evidence | None]:
    """The last `server_args=` line that parses; a truncated paste falls back to earlier ones."""
    for line, text, args in reversed(rows.rows()):
        try:
            values = parse_server_args(args)
        except ValueError:
            continue
        source = Source("file", display, line)
        params = {name: Param(name, value, source) for name, value in values.items()}
        return params, Evidence(display, line, text.strip(), "server_args")
    return {}, None


def _unknown_lines(body: pl.DataFrame) -> pl.DataFrame:
    """The lines the first line of each prefix can be on: the first _SAMPLE_LINES, and after
    them those not led by a prefix already seen there (such a line repeats a known one)."""
    text = pl.col("text")
    start, width = _TS_AT
    close = text.str.find("]", literal=True)
    sample = body.head(_SAMPLE_LINES)
    seen = sample.filter(text.str.contains(_LED)).select(
        text.str.slice(start + width, close - start - width).unique()
    )
    if seen.is_empty() or body.height <= _SAMPLE_LINES:
        return body
    known = _STAMPED + "(?:" + any_word(seen["text"].sort()) + ")\\]"
    rest = body.slice(_SAMPLE_LINES).filter(~text.str.contains(known))
    return pl.concat([sample, rest])


def _prefix_rows(marked: pl.LazyFrame, distinct: bool) -> pl.LazyFrame:
    """One row per line with a scheduler prefix: its timestamp, coordinates and message.

    Lines `led` by a prefix in SGLang's own layout are cut at fixed offsets (timestamp, the
    tokens up to the first `]`, the message after it) and each distinct token string is
    read once; the others (fractional seconds, a prefix after other text, anything odd) go
    through the general pattern. With `distinct`, only the first line of each coordinate
    combination, and the timestamps and messages of the others are never cut out.
    """
    text, tokens = pl.col("text"), pl.col("tokens")
    start, width = _TS_AT
    close = text.str.find("]", literal=True)
    led = marked.filter("led").select(
        FILE, "line", "text", text.str.slice(start + width, close - start - width).alias("tokens")
    )
    if distinct:
        led = led.unique([FILE, "tokens"], keep="first", maintain_order=True)
        led = led.with_columns(*_ranks(tokens))
    else:
        led = led.join(led.select(tokens.unique()).with_columns(*_ranks(tokens)), on="tokens")
    fast = led.select(
        FILE,
        "line",
        text.str.slice(start, width)
        .str.strptime(pl.Datetime("ms"), _TS_FORMAT, strict=False)
        .alias("ts"),
        *_RANK_TOKENS,
        text.str.slice(close + 1).str.strip_chars(),
    )
    odd = (
        # when/then: the words are only looked for on the few lines not led by a prefix
        marked.filter(pl.when(~pl.col("led")).then(text.str.contains(_TOKEN_WORDS)))
        .select(FILE, "line", text.str.extract_groups(_PREFIX).alias("p"))
        .unnest("p")
        .filter(tokens.is_not_null())
        .select(
            FILE,
            "line",
            pl.col("ts").str.strptime(pl.Datetime("ms"), _TS_FORMAT, strict=False),
            *_ranks(tokens),
            pl.col("message").str.strip_chars().alias("text"),
        )
    )
    found = pl.concat([fast, odd]).sort(FILE, "line")
    if distinct:
        found = found.unique([FILE, *_RANK_TOKENS], keep="first", maintain_order=True)
    return found


def _ranks(tokens: pl.Expr) -> list[pl.Expr]:
    """The coordinate columns of a token string; each token is read on its own so any order
    parses."""
    return [
        tokens.str.extract(rf" {token}(\d+)", 1).cast(pl.Int64).alias(name)
        for name, token in _RANK_TOKENS.items()
    ]


def log_events(body: pl.DataFrame, display: str) -> list[Evidence]:
    return _evidence(split(collect_all(_event_rows(tagged([body])))[0], 1)[0], display)


def _event_rows(body: pl.LazyFrame) -> pl.LazyFrame:
    """Lines of the kinds in _EVENT_KINDS, each with the first kind it matches."""
    kind = pl.lit(None, dtype=pl.Utf8)
    for name, pattern in reversed(_EVENT_KINDS):
        kind = pl.when(pl.col("text").str.contains(pattern)).then(pl.lit(name)).otherwise(kind)
    found = body.select(FILE, "line", "text", kind.alias("kind"))
    return found.filter(pl.col("kind").is_not_null())


def _evidence(hits: pl.DataFrame, display: str) -> list[Evidence]:
    return [Evidence(display, line, text.strip(), name) for line, text, name in hits.rows()]


def _configured(
    commands: list[LaunchCommand],
    server_args: dict[str, Param],
    config_line: Evidence | None,
) -> pl.DataFrame:
    """`--host` and `--dist-init-addr` of each command and of the server_args line."""
    sources = [(command.line, command.params) for command in commands]
    if config_line is not None:
        sources.append((config_line.line, server_args))
    rows = [
        (line, strip_port(param.value) if field == "dist_init_addr" else param.value, kind)
        for line, params in sources
        for field, kind in (("host", "host_arg"), ("dist_init_addr", "dist_init_addr"))
        if (param := params.get(field)) is not None and isinstance(param.value, str)
    ]
    return pl.DataFrame(
        rows, schema={"line": pl.Int64, "address": pl.Utf8, "kind": pl.Utf8}, orient="row"
    )
