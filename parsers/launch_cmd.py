"""Read SGLang launch commands the way SGLang's own argparse reads them.

A launch command is often the only record of what a user asked for, and in console
pastes it sits next to the output it produced. Only the flags that shape the process
groups (and a few that explain them) are typed; every other flag is kept by name so a
report can show it, but never interpreted.

The flag table was checked against sgl-project/sglang `python/sglang/srt/server_args.py`
and `arg_groups/fields/parallel.py` (2026) plus older releases that still used
`parser.add_argument`. SGLang's parser keeps argparse's default `allow_abbrev=True`, so a
unique prefix of a flag also works: that is why `--tp` and `--dp` are accepted (no other
flag starts with them), while `--pp` is rejected the way argparse rejects it, because
`--pp-max-micro-batch-size` and `--pp-async-batch-depth` start the same way. Only these
abbreviations are modelled; a general prefix match would need SGLang's full flag list.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from diagnose.model import Param, Source

# flag -> (ServerArgs field, value type); `bool` means store_true (takes no value).
FLAGS: dict[str, tuple[str, type]] = {
    "--tp-size": ("tp_size", int),
    "--tensor-parallel-size": ("tp_size", int),
    "--tp": ("tp_size", int),
    "--pp-size": ("pp_size", int),
    "--pipeline-parallel-size": ("pp_size", int),
    "--dp-size": ("dp_size", int),
    "--data-parallel-size": ("dp_size", int),
    "--dp": ("dp_size", int),
    "--enable-dp-attention": ("enable_dp_attention", bool),
    "--attn-dp-size": ("attn_dp_size", int),
    "--attention-data-parallel-size": ("attn_dp_size", int),
    "--ep-size": ("ep_size", int),
    "--expert-parallel-size": ("ep_size", int),
    "--ep": ("ep_size", int),
    "--attn-cp-size": ("attn_cp_size", int),
    "--attention-context-parallel-size": ("attn_cp_size", int),
    "--moe-dp-size": ("moe_dp_size", int),
    "--moe-data-parallel-size": ("moe_dp_size", int),
    "--moe-dense-tp-size": ("moe_dense_tp_size", int),
    "--dcp-size": ("dcp_size", int),
    "--decode-context-parallel-size": ("dcp_size", int),
    "--shared-experts-tp-size": ("shared_experts_tp_size", int),
    "--dwdp-size": ("dwdp_size", int),
    "--nnodes": ("nnodes", int),
    "--node-rank": ("node_rank", int),
    "--dist-init-addr": ("dist_init_addr", str),
    "--nccl-init-addr": ("dist_init_addr", str),
    "--nccl-port": ("nccl_port", int),
    "--base-gpu-id": ("base_gpu_id", int),
    "--gpu-id-step": ("gpu_id_step", int),
    "--moe-a2a-backend": ("moe_a2a_backend", str),
    "--enable-deepep-moe": ("enable_deepep_moe", bool),
    "--enable-ep-moe": ("enable_ep_moe", bool),
    "--enable-deepep-waterfill": ("enable_deepep_waterfill", bool),
    "--enable-waterfill": ("enable_waterfill", bool),
    "--enable-prefill-cp": ("enable_prefill_cp", bool),
    "--cp-strategy": ("cp_strategy", str),
    "--enable-prefill-context-parallel": ("enable_prefill_context_parallel", bool),
    "--prefill-cp-mode": ("prefill_cp_mode", str),
    "--enable-nsa-prefill-context-parallel": ("enable_nsa_prefill_context_parallel", bool),
    "--enable-dsa-prefill-context-parallel": ("enable_dsa_prefill_context_parallel", bool),
    "--nsa-prefill-cp-mode": ("nsa_prefill_cp_mode", str),
    "--dsa-prefill-cp-mode": ("dsa_prefill_cp_mode", str),
    "--enable-dp-lm-head": ("enable_dp_lm_head", bool),
    "--enable-eplb": ("enable_eplb", bool),
    "--ep-num-redundant-experts": ("ep_num_redundant_experts", int),
    "--model-path": ("model_path", str),
    "--model": ("model_path", str),
    "--host": ("host", str),
    "--port": ("port", int),
    "--disaggregation-mode": ("disaggregation_mode", str),
    "--pre-warm-nccl": ("pre_warm_nccl", bool),
    "--kv-cache-dtype": ("kv_cache_dtype", str),
    "--dtype": ("dtype", str),
    "--quantization": ("quantization", str),
    "--trust-remote-code": ("trust_remote_code", bool),
    "--enable-pdmux": ("enable_pdmux", bool),
    "--speculative-algorithm": ("speculative_algorithm", str),
    "--disable-overlap-schedule": ("disable_overlap_schedule", bool),
}

# Prefixes argparse refuses as ambiguous, with the flags they could mean.
AMBIGUOUS: dict[str, str] = {
    "--pp": "--pp-size, --pp-max-micro-batch-size, --pp-async-batch-depth",
}

# Commands that run the next command of the line (their own options are skipped).
WRAPPERS = frozenset(
    {
        "env", "nohup", "numactl", "taskset", "sudo", "exec", "time", "stdbuf", "nice",
        "ionice", "timeout", "setsid", "chrt", "srun", "mpirun", "uv", "conda", "micromamba",
        "docker", "podman", "apptainer", "singularity",
    }
)  # fmt: skip

ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
PYTHON = re.compile(r"^python(?:\d+(?:\.\d+)*)?$")
PYTHON_OPTS_WITH_VALUE = frozenset({"-X", "-W"})
NEGATIVE_NUMBER = re.compile(r"^-\d+$")
_SHELL_OPERATOR = re.compile(r"^(?:[;&|]+|\d*>>?.*|<.*)$")
LINE_BREAK = re.compile(r"\\?\r?\n")
# A line matching this (Python and Rust regex syntax alike) may hold a launch command.
TRIGGER = r"sglang\.launch_server|\bsglang\s+serve\b"
_TRIGGER = re.compile(TRIGGER)
PROMPT = re.compile(
    r"^\s*(?:\((?:[^()\s]+|\([^()\s]+\)\s*)\)\s*)*"  # (env) or ((env) ) markers
    r"(?:\[[^\]\s@]+@[^\]\s]+(?:\s[^\]]*)?\]\s?[$#]"  # [user@host dir]$
    r"|[\w.-]+@[\w.-]+:[^\s$#]*\s?[$#]"  # user@host:~/dir$
    r"|\$)\s+"  # a bare "$ "
)
# A chat UI's "bash" code-block label glued to the pasted command: `bashSGLANG_HOST_IP=...`.
_GLUED_LABEL = re.compile(r"^bash(?=[A-Z_][A-Z0-9_]*=|python|sglang\b)")


class LaunchError(ValueError):
    """A command that is not an SGLang launch, or that SGLang's argparse would reject."""


@dataclass
class LaunchCommand:
    """One SGLang launch: its environment, typed parallelism flags and the rest by name."""

    argv: list[str]
    env: dict[str, str]
    params: dict[str, Param]
    unknown: list[str]
    text: str
    file: str | None = None
    line: int | None = None
    engine: str = "sglang"


def parse_command(
    command: str | list[str], file: str | None = None, line: int | None = None
) -> LaunchCommand:
    """Parse one launch command given as shell text or as an argv list.

    Shell text (backslash continuations allowed) is split like a POSIX shell would; the
    command ends at the first shell operator or redirection (`|`, `&&`, `;`, `&`,
    `> log`, `2>&1`) or comment, and `argv` leaves those out.
    """
    if isinstance(command, str):
        text = " ".join(part.strip() for part in LINE_BREAK.split(command) if part.strip())
        tokens = split_shell(text)
    else:
        tokens = list(command)
        text = shlex.join(tokens)
    argv = cut_at_shell_operator(tokens)
    env, args_at, positional_model = _entry_point(argv, text)
    source = Source("command line") if file is None else Source("file", file, line)
    params, unknown = _parse_flags(argv[args_at:], source, positional_model)
    return LaunchCommand(argv, env, params, unknown, text, file, line)


def find_commands(
    lines: list[str],
    file: str,
    trigger: re.Pattern[str] = _TRIGGER,
    parse: Callable[..., LaunchCommand] | None = None,
    glued: re.Pattern[str] = _GLUED_LABEL,
) -> list[LaunchCommand]:
    """Every SGLang launch command in a log or shell script, in order of appearance.

    A line naming `sglang.launch_server` or `sglang serve` anchors a command; backslash
    continuations around it are joined, and a shell prompt or a glued `bash` label in
    front is dropped. Anchored lines that do not parse are prose and are skipped. Other
    engines' parsers pass their own trigger, parser and glued-label pattern.
    """
    commands: list[LaunchCommand] = []
    consumed = -1
    for i, text in enumerate(lines):
        if i <= consumed or not trigger.search(text):
            continue
        start = i
        while start > consumed + 1 and continues(lines[start - 1]):
            start -= 1
        end = i
        while end + 1 < len(lines) and continues(lines[end]):
            end += 1
        parts = [strip_continuation(part) for part in lines[start : end + 1]]
        parts[0] = glued.sub("", PROMPT.sub("", parts[0], count=1), count=1)
        joined = " ".join(part.strip() for part in parts if part.strip())
        try:
            commands.append((parse or parse_command)(joined, file=file, line=start + 1))
        except LaunchError:
            continue
        consumed = end
    return commands


def continues(text: str) -> bool:
    return text.rstrip("\r\n").endswith("\\")


def strip_continuation(text: str) -> str:
    text = text.rstrip("\r\n")
    return text[:-1] if text.endswith("\\") else text


def _strip_comment(text: str) -> str:
    """Drop a shell comment: a `#` that starts a word outside quotes."""
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = ""
        elif char == "\\":
            i += 1
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i]
        i += 1
    return text


def split_shell(text: str) -> list[str]:
    """shlex words, with `;`, `&` and `|` split off even when glued to a word (`2;`)."""
    lexer = shlex.shlex(_strip_comment(text), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""  # _strip_comment already did it, without cutting `a#b`
    try:
        return list(lexer)
    except ValueError as exc:
        raise LaunchError(f"cannot split command ({exc}): {clip(text)}") from exc


def cut_at_shell_operator(tokens: list[str]) -> list[str]:
    for i, token in enumerate(tokens):
        if _SHELL_OPERATOR.match(token):
            return tokens[:i]
    return tokens


def _entry_point(argv: list[str], text: str) -> tuple[dict[str, str], int, bool]:
    """Environment, index of the first SGLang argument, and whether it is `sglang serve`.

    Before the interpreter only assignments, wrapper commands (by name or by path) and
    the wrappers' own arguments may appear; anything else means the line is not a
    command but prose that mentions one.
    """
    env: dict[str, str] = {}
    wrapped = False
    for i, token in enumerate(argv):
        assignment = ASSIGNMENT.match(token)
        name = PurePosixPath(token).name
        if assignment:
            env[assignment.group(1)] = assignment.group(2)
        elif PYTHON.match(name):
            return env, _after_python_module(argv, i + 1, text), False
        elif name == "sglang" and i + 1 < len(argv) and argv[i + 1] == "serve":
            return env, i + 2, True
        elif not (wrapped or name in WRAPPERS or "/" in token):
            break
        else:
            wrapped = True
    raise LaunchError(f"not an SGLang launch command: {clip(text)}")


def _after_python_module(argv: list[str], i: int, text: str) -> int:
    """Index after `-m sglang.launch_server`, skipping interpreter options before it."""
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
        i += 2 if argv[i] in PYTHON_OPTS_WITH_VALUE else 1
    if argv[i : i + 2] != ["-m", "sglang.launch_server"]:
        raise LaunchError(f"not an SGLang launch command: {clip(text)}")
    return i + 2


def _parse_flags(
    args: list[str], source: Source, positional_model: bool
) -> tuple[dict[str, Param], list[str]]:
    """Typed table flags and the names of the others, following argparse's rules.

    The last occurrence of a field wins, as in argparse. An unknown flag may take any
    number of values (SGLang has `nargs="+"` flags such as `--cuda-graph-bs`), so every
    word up to the next flag is skipped with it; a stray word after a known flag is an
    error, as argparse would report it.
    """
    params: dict[str, Param] = {}
    unknown: list[str] = []
    i = 0
    if positional_model and args and not args[0].startswith("-"):
        params["model_path"] = Param("model_path", args[0], source)
        i = 1
    while i < len(args):
        flag = args[i].partition("=")[0]
        if flag in AMBIGUOUS:
            raise LaunchError(f"ambiguous option: {flag} could match {AMBIGUOUS[flag]}")
        i = table_flag(args, i, flag, FLAGS, params, unknown, source)
    return params, unknown


def table_flag(
    args: list[str],
    i: int,
    flag: str,
    table: dict[str, tuple[str, type]],
    params: dict[str, Param],
    unknown: list[str],
    source: Source,
) -> int:
    """Take the option at `args[i]` (named `flag` in `table`'s spelling) as argparse would,
    into `params` (a table flag, typed) or `unknown` (any other, with the words up to the
    next option); the index after it."""
    token = args[i]
    shown, equals, inline = token.partition("=")
    if flag not in table:
        if not token.startswith("-"):
            raise LaunchError(f"unrecognized argument {token!r}")
        unknown.append(flag)
        i += 1
        while i < len(args) and not args[i].startswith("-") and not equals:
            i += 1
        return i
    field, kind = table[flag]
    if kind is bool:
        if equals:
            raise LaunchError(f"{shown} takes no value (got {inline!r})")
        params[field] = Param(field, True, source)
        return i + 1
    raw, i = flag_value(args, i)
    params[field] = Param(field, typed_value(shown, raw, kind), source)
    return i


def flag_value(args: list[str], i: int) -> tuple[str, int]:
    """The value of the option at `args[i]` (after its `=`, else the next word unless that
    is another option; a negative number is a value) and the index after it."""
    flag, equals, inline = args[i].partition("=")
    if equals:
        return inline, i + 1
    if i + 1 < len(args) and (
        not args[i + 1].startswith("-") or NEGATIVE_NUMBER.match(args[i + 1])
    ):
        return args[i + 1], i + 2
    raise LaunchError(f"{flag} expects a value")


def typed_value(flag: str, raw: str, kind: type) -> Any:
    """`raw` as the option's type: an int, or the text itself."""
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise LaunchError(f"{flag} expects an integer, got {raw!r}") from None
    return raw


def clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
