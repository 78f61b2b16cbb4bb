"""Read TensorRT-LLM launch commands the way its own command lines read them.

Three entry points shape the rank layout: `trtllm-serve [serve|grpc] MODEL` (a click
command: `--tp_size/--tensor_parallel_size/--tp`, `--pp_size`, `--cp_size`, `--ep_size`,
`--cluster_size`, `--gpus_per_node`, and `--config/--extra_llm_api_options YAML` whose
values override the flags), `trtllm-build` / `convert_checkpoint.py` with `--world_size`,
`--tp_size`, `--pp_size` (and the MoE sizes), and `mpirun -n N … <one of those>`, whose
process count is the MPI world that must equal tp × pp × cp. The option table was checked
against NVIDIA/TensorRT-LLM `tensorrt_llm/commands/serve.py` and `common_llm_options.py`
(2026). Click takes no abbreviations, so only exact spellings are accepted.

The YAML override file is read with a small reader for the flat `key: value` form these
files use (plus `cp_config:` with an indented `cp_type:`); PyYAML is not a dependency.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

from diagnose.model import Param, Source
from parsers.launch_cmd import (
    ASSIGNMENT,
    LINE_BREAK,
    PYTHON,
    WRAPPERS,
    LaunchCommand,
    LaunchError,
    clip,
    cut_at_shell_operator,
    split_shell,
    typed_value,
)

# trtllm-serve options that shape the layout: option -> (Mapping field, type).
SERVE_FLAGS: dict[str, tuple[str, type]] = {
    "--tensor_parallel_size": ("tp_size", int),
    "--tp_size": ("tp_size", int),
    "--tp": ("tp_size", int),
    "--pipeline_parallel_size": ("pp_size", int),
    "--pp_size": ("pp_size", int),
    "--pp": ("pp_size", int),
    "--context_parallel_size": ("cp_size", int),
    "--cp_size": ("cp_size", int),
    "--moe_expert_parallel_size": ("moe_ep_size", int),
    "--ep_size": ("moe_ep_size", int),
    "--ep": ("moe_ep_size", int),
    "--moe_cluster_parallel_size": ("moe_cluster_size", int),
    "--cluster_size": ("moe_cluster_size", int),
    "--gpus_per_node": ("gpus_per_node", int),
    "--backend": ("backend", str),
    "--config": ("extra_llm_api_options", str),
    "--extra_llm_api_options": ("extra_llm_api_options", str),
    "--host": ("host", str),
    "--port": ("port", int),
}
# trtllm-serve's boolean options (everything else it has takes one value).
SERVE_BOOLEANS = frozenset(
    {
        "--trust_remote_code",
        "--enable_chunked_prefill",
        "--fail_fast_on_attention_window_too_large",
        "--disable_kv_cache_reuse",
        "--skip_tokenizer_init",
    }
)
# trtllm-build / convert_checkpoint.py / the old examples' build.py sizes (argparse, both
# spellings seen in scripts).
BUILD_FLAGS: dict[str, tuple[str, type]] = {
    "--world_size": ("mpi_size", int),
    "--world-size": ("mpi_size", int),
    "--tp_size": ("tp_size", int),
    "--tp-size": ("tp_size", int),
    "--pp_size": ("pp_size", int),
    "--pp-size": ("pp_size", int),
    "--cp_size": ("cp_size", int),
    "--moe_tp_size": ("moe_tp_size", int),
    "--moe_ep_size": ("moe_ep_size", int),
    "--gpus_per_node": ("gpus_per_node", int),
}
# LLM API / YAML field -> Mapping field.
LLM_ARGS: dict[str, str] = {
    "tensor_parallel_size": "tp_size",
    "pipeline_parallel_size": "pp_size",
    "context_parallel_size": "cp_size",
    "moe_expert_parallel_size": "moe_ep_size",
    "moe_tensor_parallel_size": "moe_tp_size",
    "moe_cluster_parallel_size": "moe_cluster_size",
    "enable_attention_dp": "enable_attention_dp",
    "enable_lm_head_tp_in_adp": "enable_lm_head_tp_in_adp",
    "gpus_per_node": "gpus_per_node",
    "pp_partition": "pp_partition",
    "cp_type": "cp_type",
}
SERVE_COMMANDS = frozenset({"serve", "grpc"})
BUILD_SCRIPTS = re.compile(r"(?:^|/)convert_checkpoint\.py$")
TRIGGER = r"\btrtllm-serve\b|\btrtllm-build\b|tensorrt_llm\.commands\.serve|convert_checkpoint\.py"
_MPIRUN = frozenset({"mpirun", "mpiexec", "orterun"})
_MPI_NP = frozenset({"-n", "-np", "--np", "--n", "-c"})
_MPI_PER_NODE = frozenset({"-N", "--npernode", "-npernode", "-ppn", "--ppn"})
_PPR = re.compile(r"ppr:(\d+):node")
_FLOW_CP_TYPE = re.compile(r"cp_type\s*:\s*['\"]?(\w+)")
_YAML_LINE = re.compile(r"^(\s*)([A-Za-z_][\w]*)\s*:\s*(.*?)\s*$")


def parse_command(
    command: str | list[str],
    file: str | None = None,
    line: int | None = None,
    base_dir: Path | None = None,
) -> LaunchCommand:
    """Parse one TensorRT-LLM launch (shell text or argv).

    A relative --extra_llm_api_options path is read from `base_dir` (the log's folder),
    else the current directory; a missing file is recorded, not fatal.
    """
    if isinstance(command, str):
        text = " ".join(p.strip() for p in LINE_BREAK.split(command) if p.strip())
        tokens = split_shell(text)
    else:
        tokens = list(command)
        text = shlex.join(tokens)
    argv = cut_at_shell_operator(tokens)
    source = Source("command line") if file is None else Source("file", file, line)
    env, mpi, kind, at = _entry_point(argv, text)
    if kind == "serve":
        params, unknown = _serve_flags(argv[at:], source)
    else:
        params, unknown = _build_flags(argv[at:], source)
    params.update({k: Param(k, v, source) for k, v in mpi.items()})
    extra = params.get("extra_llm_api_options")
    if extra is not None:
        params.update(read_llm_api_yaml(_resolve(str(extra.value), base_dir)))
    return LaunchCommand(argv, env, params, unknown, text, file, line, engine="trtllm")


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def _entry_point(argv: list[str], text: str) -> tuple[dict[str, str], dict[str, int], str, int]:
    """Environment, mpirun sizes, entry kind ("serve" or "build") and where its args start."""
    env: dict[str, str] = {}
    mpi: dict[str, int] = {}
    i = 0
    wrapped = False
    while i < len(argv):
        token = argv[i]
        name = PurePosixPath(token).name
        assignment = ASSIGNMENT.match(token)
        if assignment and not wrapped:
            env[assignment.group(1)] = assignment.group(2)
        elif name in _MPIRUN:
            i = _mpirun_options(argv, i + 1, mpi)
            continue
        elif name == "trtllm-serve":
            at = i + 1
            if at < len(argv) and argv[at] in SERVE_COMMANDS:
                at += 1
            return env, mpi, "serve", at
        elif name == "trtllm-build" or BUILD_SCRIPTS.search(token):
            return env, mpi, "build", i + 1
        elif PYTHON.match(name):
            found = _after_python(argv, i + 1)
            if found is not None:
                return env, mpi, found[0], found[1]
            break
        elif name == "trtllm-llmapi-launch" or name in WRAPPERS or "/" in token:
            wrapped = True
        elif not wrapped:
            break
        i += 1
    raise LaunchError(f"not a TensorRT-LLM launch command: {clip(text)}")


def _after_python(argv: list[str], i: int) -> tuple[str, int] | None:
    """(kind, index) after `python [-u] -m tensorrt_llm.commands.serve` or a build script."""
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
        i += 1
    if argv[i : i + 2] == ["-m", "tensorrt_llm.commands.serve"]:
        at = i + 2
        if at < len(argv) and argv[at] in SERVE_COMMANDS:
            at += 1
        return "serve", at
    if i < len(argv) and BUILD_SCRIPTS.search(argv[i]):
        return "build", i + 1
    return None


def _mpirun_options(argv: list[str], i: int, mpi: dict[str, int]) -> int:
    """Skip mpirun's own options, keeping -n and the per-node count; return the program index.

    The program is the first word that is not an option or an option's value; mpirun
    options that take a value are recognised by the value not starting with a dash, except
    for the few flags listed that never take one.
    """
    flags_without_value = {"--allow-run-as-root", "--oversubscribe", "--tag-output", "-v"}
    while i < len(argv) and argv[i].startswith("-"):
        option, equals, inline = argv[i].partition("=")
        has_value = option not in flags_without_value and (
            equals or (i + 1 < len(argv) and not argv[i + 1].startswith("-"))
        )
        value = inline if equals else (argv[i + 1] if has_value else "")
        if option in _MPI_NP and value.isdigit():
            mpi["mpi_size"] = int(value)
        elif option in _MPI_PER_NODE and value.isdigit():
            mpi["mpi_ranks_per_node"] = int(value)
        elif option == "--map-by" and (ppr := _PPR.search(value)):
            mpi["mpi_ranks_per_node"] = int(ppr.group(1))
        elif option == "--mca":
            i += 1  # --mca NAME VALUE
        i += 1 if equals or not has_value else 2
    return i


def _serve_flags(args: list[str], source: Source) -> tuple[dict[str, Param], list[str]]:
    """Typed layout options and MODEL; other options are kept by name (click semantics)."""
    params: dict[str, Param] = {}
    unknown: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        flag, equals, inline = token.partition("=")
        if not token.startswith("-"):
            if "model_path" in params:
                raise LaunchError(f"unexpected extra argument {token!r}")
            params["model_path"] = Param("model_path", token, source)
            i += 1
            continue
        if flag in SERVE_BOOLEANS:
            unknown.append(flag)
            i += 1
            continue
        if equals:
            raw, i = inline, i + 1
        elif i + 1 < len(args):
            raw, i = args[i + 1], i + 2
        else:
            raise LaunchError(f"option {flag} requires an argument")
        if flag in SERVE_FLAGS:
            name, kind = SERVE_FLAGS[flag]
            params[name] = Param(name, typed_value(flag, raw, kind), source)
        else:
            unknown.append(flag)
    return params, unknown


def _build_flags(args: list[str], source: Source) -> tuple[dict[str, Param], list[str]]:
    """argparse-style: `--flag value` or `--flag=value`; unknown options keep their values."""
    params: dict[str, Param] = {}
    unknown: list[str] = []
    i = 0
    while i < len(args):
        flag, equals, inline = args[i].partition("=")
        if flag not in BUILD_FLAGS:
            if args[i].startswith("-"):
                unknown.append(flag)
            i += 1
            continue
        if equals:
            raw, i = inline, i + 1
        elif i + 1 < len(args):
            raw, i = args[i + 1], i + 2
        else:
            raise LaunchError(f"{flag} expects a value")
        name, kind = BUILD_FLAGS[flag]
        params[name] = Param(name, typed_value(flag, raw, kind), source)
    return params, unknown


def read_llm_api_yaml(path: Path) -> dict[str, Param]:
    """The layout fields of an --extra_llm_api_options YAML, each with its file:line.

    Unreadable files give nothing: the flags then stand, and the report lists the file
    among the command's options.
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, Param] = {}
    parent = ""
    for number, raw in enumerate(lines, start=1):
        m = _YAML_LINE.match(raw.split(" #", 1)[0])
        if not m:
            continue
        indent, key, value = m.groups()
        if not indent:
            parent = key
        key = key if not indent else (key if parent == "cp_config" else f"{parent}.{key}")
        if key == "cp_config" and (flow := _FLOW_CP_TYPE.search(value)):
            key, value = "cp_type", flow.group(1)
        if key in LLM_ARGS and value:
            name = LLM_ARGS[key]
            out[name] = Param(name, yaml_scalar(value), Source("file", str(path), number))
    return out


def yaml_scalar(text: str) -> Any:
    """A YAML flow scalar or flat list: ints, booleans, null, quoted or plain strings."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [yaml_scalar(x) for x in text[1:-1].split(",") if x.strip()]
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("null", "~", "none"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text.strip("'\"")
