"""Read vLLM launch commands the way vLLM's own argument parser reads them.

Only the flags that shape the process groups (and a few that explain them) are typed;
every other flag is kept by name. The table was checked against `vllm/engine/arg_utils.py`
of the 0.33.0 wheel: every short alias (`-tp`, `-pp`, `-dp`, `-dpl`, `-dpn`, `-dpr`,
`-dpa`, `-dpp`, `-dpb`, `-dph`, `-dpe`, `-ep`, `-dcp`, `-pcp`, `-n`, `-r`) is vLLM's own.
vLLM's FlexibleArgumentParser turns underscores into dashes in `--long_names`, pairs each
`--enable-x` with `--disable-x` and `--no-enable-x` (0.33; `--no-x` for other booleans),
and reads dotted JSON keys such as `--eplb-config.num_redundant_experts 32`.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import PurePosixPath

from diagnose.model import Param, Source
from parsers import launch_cmd
from parsers.launch_cmd import (
    ASSIGNMENT,
    LINE_BREAK,
    PYTHON,
    PYTHON_OPTS_WITH_VALUE,
    WRAPPERS,
    LaunchCommand,
    LaunchError,
    clip,
    cut_at_shell_operator,
    flag_value,
    split_shell,
    table_flag,
    typed_value,
)

# flag -> (field, type); `bool` flags take no value.
FLAGS: dict[str, tuple[str, type]] = {
    "--tensor-parallel-size": ("tensor_parallel_size", int),
    "-tp": ("tensor_parallel_size", int),
    "--pipeline-parallel-size": ("pipeline_parallel_size", int),
    "-pp": ("pipeline_parallel_size", int),
    "--data-parallel-size": ("data_parallel_size", int),
    "-dp": ("data_parallel_size", int),
    "--data-parallel-size-local": ("data_parallel_size_local", int),
    "-dpl": ("data_parallel_size_local", int),
    "--data-parallel-rank": ("data_parallel_rank", int),
    "-dpn": ("data_parallel_rank", int),
    "--data-parallel-start-rank": ("data_parallel_start_rank", int),
    "-dpr": ("data_parallel_start_rank", int),
    "--data-parallel-address": ("data_parallel_address", str),
    "-dpa": ("data_parallel_address", str),
    "--data-parallel-rpc-port": ("data_parallel_rpc_port", int),
    "-dpp": ("data_parallel_rpc_port", int),
    "--data-parallel-backend": ("data_parallel_backend", str),
    "-dpb": ("data_parallel_backend", str),
    "--data-parallel-hybrid-lb": ("data_parallel_hybrid_lb", bool),
    "-dph": ("data_parallel_hybrid_lb", bool),
    "--data-parallel-external-lb": ("data_parallel_external_lb", bool),
    "-dpe": ("data_parallel_external_lb", bool),
    "--enable-expert-parallel": ("enable_expert_parallel", bool),
    "-ep": ("enable_expert_parallel", bool),
    "--decode-context-parallel-size": ("decode_context_parallel_size", int),
    "-dcp": ("decode_context_parallel_size", int),
    "--prefill-context-parallel-size": ("prefill_context_parallel_size", int),
    "-pcp": ("prefill_context_parallel_size", int),
    "--nnodes": ("nnodes", int),
    "-n": ("nnodes", int),
    "--node-rank": ("node_rank", int),
    "-r": ("node_rank", int),
    "--master-addr": ("master_addr", str),
    "--master-port": ("master_port", int),
    "--distributed-executor-backend": ("distributed_executor_backend", str),
    "--enable-eplb": ("enable_eplb", bool),
    "--enable-elastic-ep": ("enable_elastic_ep", bool),
    "--num-redundant-experts": ("num_redundant_experts", int),
    "--all2all-backend": ("all2all_backend", str),
    "--disable-custom-all-reduce": ("disable_custom_all_reduce", bool),
    "--headless": ("headless", bool),
    "--model": ("model_path", str),
    "--host": ("host", str),
    "--port": ("port", int),
    "--trust-remote-code": ("trust_remote_code", bool),
    "--enforce-eager": ("enforce_eager", bool),
    "--max-model-len": ("max_model_len", int),
    "--kv-cache-dtype": ("kv_cache_dtype", str),
    "--dtype": ("dtype", str),
    "--quantization": ("quantization", str),
}
# --disable-x / --no-enable-x / --no-x spell False for a boolean flag.
NEGATIONS: dict[str, str] = {
    f"--no-{flag[2:]}": field for flag, (field, kind) in FLAGS.items() if kind is bool
} | {
    "--disable-expert-parallel": "enable_expert_parallel",
    "--disable-eplb": "enable_eplb",
    "--disable-elastic-ep": "enable_elastic_ep",
    "--enable-custom-all-reduce": "disable_custom_all_reduce",
}
# Environment variables that change the layout (older releases chose the backend by env).
ENV_FIELDS = {
    "VLLM_PP_LAYER_PARTITION": ("pp_layer_partition", str),
    "VLLM_ALL2ALL_BACKEND": ("all2all_backend", str),
}
MODULES = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server")
# A line matching this (Python and Rust regex syntax alike) may hold a launch command.
TRIGGER = r"\bvllm\s+serve\b|vllm\.entrypoints\.(?:openai\.)?api_server|vllm\.entrypoints\.cli"
_TRIGGER = re.compile(TRIGGER)
_GLUED_LABEL = re.compile(r"^bash(?=[A-Z_][A-Z0-9_]*=|python|vllm\b)")


def parse_command(
    command: str | list[str], file: str | None = None, line: int | None = None
) -> LaunchCommand:
    """Parse one vLLM launch command given as shell text or as an argv list."""
    if isinstance(command, str):
        text = " ".join(part.strip() for part in LINE_BREAK.split(command) if part.strip())
        tokens = split_shell(text)
    else:
        tokens = list(command)
        text = shlex.join(tokens)
    argv = cut_at_shell_operator(tokens)
    env, args_at, positional = _entry_point(argv, text)
    source = Source("command line") if file is None else Source("file", file, line)
    params, unknown = _parse_flags(argv[args_at:], source, positional)
    for name, (field, kind) in ENV_FIELDS.items():
        if name in env and field not in params:
            params[field] = Param(field, kind(env[name]), source)
    return LaunchCommand(argv, env, params, unknown, text, file, line, engine="vllm")


def find_commands(lines: list[str], file: str) -> list[LaunchCommand]:
    """Every vLLM launch command in a log or script; anchored lines that do not parse are
    prose and are skipped. Backslash continuations are joined, prompts dropped."""
    return launch_cmd.find_commands(lines, file, _TRIGGER, parse_command, _GLUED_LABEL)


def _entry_point(argv: list[str], text: str) -> tuple[dict[str, str], int, bool]:
    """Environment, index of the first vLLM argument, and whether a positional model may
    follow (`vllm serve MODEL`)."""
    env: dict[str, str] = {}
    wrapped = False
    for i, token in enumerate(argv):
        assignment = ASSIGNMENT.match(token)
        name = PurePosixPath(token).name
        if assignment:
            env[assignment.group(1)] = assignment.group(2)
        elif PYTHON.match(name):
            return env, *_after_python_module(argv, i + 1, text)
        elif name == "vllm" and i + 1 < len(argv) and argv[i + 1] == "serve":
            return env, i + 2, True
        elif not (wrapped or name in WRAPPERS or "/" in token):
            break
        else:
            wrapped = True
    raise LaunchError(f"not a vLLM launch command: {clip(text)}")


def _after_python_module(argv: list[str], i: int, text: str) -> tuple[int, bool]:
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
        i += 2 if argv[i] in PYTHON_OPTS_WITH_VALUE else 1
    module = argv[i + 1] if argv[i : i + 1] == ["-m"] and i + 1 < len(argv) else ""
    if module in MODULES:
        return i + 2, False
    if module == "vllm.entrypoints.cli.main" and argv[i + 2 : i + 3] == ["serve"]:
        return i + 3, True
    raise LaunchError(f"not a vLLM launch command: {clip(text)}")


def _normalise(flag: str) -> str:
    """`--tensor_parallel_size` -> `--tensor-parallel-size`, up to the first dot."""
    if not flag.startswith("--"):
        return flag
    head, dot, tail = flag[2:].partition(".")
    return "--" + head.replace("_", "-") + dot + tail


def _parse_flags(
    args: list[str], source: Source, positional: bool
) -> tuple[dict[str, Param], list[str]]:
    """Typed table flags and the names of the others, following argparse's rules; the
    last occurrence of a field wins."""
    params: dict[str, Param] = {}
    unknown: list[str] = []
    i = 0
    if positional and args and not args[0].startswith("-"):
        params["model_path"] = Param("model_path", args[0], source)
        i = 1
    while i < len(args):
        token = args[i]
        raw_flag, equals, inline = token.partition("=")
        flag = _normalise(raw_flag)
        if flag in NEGATIONS:
            if equals:
                raise LaunchError(f"{raw_flag} takes no value (got {inline!r})")
            params[NEGATIONS[flag]] = Param(NEGATIONS[flag], False, source)
            i += 1
            continue
        if flag.startswith("--eplb-config"):
            value, i = flag_value(args, i)
            _eplb_config(params, flag, value, source)
            continue
        i = table_flag(args, i, flag, FLAGS, params, unknown, source)
    return params, unknown


def _eplb_config(params: dict[str, Param], flag: str, raw: str, source: Source) -> None:
    """`--eplb-config '{"num_redundant_experts": 32}'` or the dotted
    `--eplb-config.num_redundant_experts 32`."""
    if flag == "--eplb-config.num_redundant_experts":
        value: object = raw
    elif flag == "--eplb-config":
        try:
            value = json.loads(raw).get("num_redundant_experts")
        except (ValueError, AttributeError):
            raise LaunchError(f"--eplb-config expects a JSON object, got {raw!r}") from None
        if value is None:
            return
    else:
        return
    params["num_redundant_experts"] = Param(
        "num_redundant_experts", typed_value(flag, str(value), int), source
    )
