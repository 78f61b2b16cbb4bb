"""Read DeepSpeed launches and ds_config JSON files.

`deepspeed [launcher options] script.py [script args]` (deepspeed/launcher/runner.py)
decides the world: `--num_gpus` per node and `--num_nodes` (or `--include host:0,1`, or
CUDA_VISIBLE_DEVICES); the runner then logs `cmd = … deepspeed.launcher.launch
--world_info=<base64 JSON of host → GPU slots> …`, which is parsed too. The training
script's `--deepspeed_config FILE` names the JSON config whose batch sizes, ZeRO stage,
AutoTP, AutoEP and sequence-parallel sizes shape the groups; it is read relative to the
log's folder (or the current directory for a pre-flight command). MoE layers take ep_size
from the model code; the DeepSpeedExamples convention `--ep-world-size N --num-experts E`
is read from the script arguments. `torchrun … script.py … --deepspeed_config FILE` is a
DeepSpeed job as well (world = --nproc_per_node × --nnodes).

The launcher option table was checked against deepspeedai/DeepSpeed runner.py (0.19.6).
"""

from __future__ import annotations

import base64
import binascii
import json
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

# deepspeed runner options -> (param, type); `bool` options take no value.
LAUNCHER_FLAGS: dict[str, tuple[str, type]] = {
    "-H": ("hostfile", str),
    "--hostfile": ("hostfile", str),
    "-i": ("include", str),
    "--include": ("include", str),
    "-e": ("exclude", str),
    "--exclude": ("exclude", str),
    "--num_nodes": ("nnodes", int),
    "--min_elastic_nodes": ("min_elastic_nodes", int),
    "--max_elastic_nodes": ("max_elastic_nodes", int),
    "--num_gpus": ("num_gpus", int),
    "--num_accelerators": ("num_gpus", int),
    "--master_port": ("master_port", int),
    "--master_addr": ("master_addr", str),
    "--node_rank": ("node_rank", int),
    "--launcher": ("launcher", str),
    "--launcher_args": ("launcher_args", str),
    "--enable_each_rank_log": ("enable_each_rank_log", str),
    "--autotuning": ("autotuning", str),
    "--bind_core_list": ("bind_core_list", str),
    "--ssh_port": ("ssh_port", int),
    "--venv_script": ("venv_script", str),
    "--log_level": ("log_level", str),
    "--world_info": ("world_info", str),
    "--module": ("module", bool),
    "--no_python": ("no_python", bool),
    "--no_local_rank": ("no_local_rank", bool),
    "--no_ssh": ("no_ssh", bool),
    "--no_ssh_check": ("no_ssh_check", bool),
    "--force_multi": ("force_multi", bool),
    "--save_pid": ("save_pid", bool),
    "--elastic_training": ("elastic_training", bool),
    "--enable_elastic_training": ("elastic_training", bool),
    "--bind_cores_to_rank": ("bind_cores_to_rank", bool),
    "-q": ("quiet", bool),
    "--quiet": ("quiet", bool),
}
TORCHRUN_FLAGS: dict[str, tuple[str, type]] = {
    "--nproc_per_node": ("num_gpus", int),
    "--nproc-per-node": ("num_gpus", int),
    "--nnodes": ("nnodes", int),
    "--node_rank": ("node_rank", int),
    "--node-rank": ("node_rank", int),
    "--master_addr": ("master_addr", str),
    "--master-addr": ("master_addr", str),
    "--master_port": ("master_port", int),
    "--master-port": ("master_port", int),
    "--rdzv_endpoint": ("master_addr", str),
    "--rdzv-endpoint": ("master_addr", str),
    "--standalone": ("standalone", bool),
}
CONFIG_FLAGS = frozenset({"--deepspeed_config", "--deepspeed-config", "--deepscale_config"})
# Training-script arguments of the DeepSpeedExamples MoE scripts (cifar, MoE tutorials);
# `--model_name_or_path` (the Hugging Face scripts' convention) names the model.
SCRIPT_FLAGS: dict[str, str] = {"--ep-world-size": "ep_size", "--num-experts": "num_experts"}
# ds_config JSON path -> parameter.
JSON_KEYS: dict[tuple[str, ...], str] = {
    ("train_batch_size",): "train_batch_size",
    ("train_micro_batch_size_per_gpu",): "train_micro_batch_size_per_gpu",
    ("gradient_accumulation_steps",): "gradient_accumulation_steps",
    ("zero_optimization", "stage"): "zero_stage",
    ("zero_optimization", "zero_hpz_partition_size"): "zero_hpz_partition_size",
    ("zero_optimization", "mics_shard_size"): "mics_shard_size",
    ("tensor_parallel", "autotp_size"): "autotp_size",
    ("expert_parallel", "autoep_size"): "ep_size",
    ("sequence_parallel_size",): "sequence_parallel_size",
    ("data_parallel_size",): "data_parallel_size",
    ("use_data_before_expert_parallel_",): "use_data_before_expert_parallel_",
}
DS_CONFIG_KEYS = re.compile(
    r'"(?:train_batch_size|train_micro_batch_size_per_gpu|zero_optimization'
    r'|gradient_accumulation_steps)"\s*:'
)
TRIGGER = r"\bdeepspeed(?:\.launcher\.(?:launch|runner))?\b\s+\S|--deepspeed_config"
_ENTRY_MODULES = {
    "deepspeed.launcher.runner": "runner",
    "deepspeed.launcher.launch": "launch",
    "torch.distributed.run": "torchrun",
    "torch.distributed.launch": "torchrun",
}


def parse_command(
    command: str | list[str],
    file: str | None = None,
    line: int | None = None,
    base_dir: Path | None = None,
) -> LaunchCommand:
    """Parse one DeepSpeed launch; its --deepspeed_config file is read if it exists."""
    if isinstance(command, str):
        text = " ".join(p.strip() for p in LINE_BREAK.split(command) if p.strip())
        tokens = split_shell(text)
    else:
        tokens = list(command)
        text = shlex.join(tokens)
    argv = cut_at_shell_operator(tokens)
    source = Source("command line") if file is None else Source("file", file, line)
    env, kind, at = _entry_point(argv, text)
    flags = TORCHRUN_FLAGS if kind == "torchrun" else LAUNCHER_FLAGS
    params, unknown, script_at = _launcher_flags(argv[at:], flags, source)
    script_args = argv[at + script_at :]
    ds_args = "--deepspeed" in script_args or any(
        a.split("=")[0] in CONFIG_FLAGS for a in script_args
    )
    if kind == "torchrun" and not ds_args:
        raise LaunchError(f"not a DeepSpeed launch command: {clip(text)}")
    if script_args:
        params["user_script"] = Param("user_script", script_args[0], source)
    params.update(_script_flags(script_args[1:], source))
    if "CUDA_VISIBLE_DEVICES" in env:
        value = env["CUDA_VISIBLE_DEVICES"]
        params["cuda_visible_devices"] = Param("cuda_visible_devices", value, source)
    _world_info(params, source)
    config = params.get("deepspeed_config")
    if config is not None:
        path = Path(str(config.value))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if path.is_file():
            params.update(read_ds_config(path, str(config.value)))
    return LaunchCommand(argv, env, params, unknown, text, file, line, engine="deepspeed")


def _entry_point(argv: list[str], text: str) -> tuple[dict[str, str], str, int]:
    """Environment, entry kind (runner, launch, torchrun) and where its options start."""
    env: dict[str, str] = {}
    wrapped = False
    for i, token in enumerate(argv):
        name = PurePosixPath(token).name
        assignment = ASSIGNMENT.match(token)
        if assignment and not wrapped:
            env[assignment.group(1)] = assignment.group(2)
        elif name == "deepspeed":
            return env, "runner", i + 1
        elif name == "torchrun":
            return env, "torchrun", i + 1
        elif PYTHON.match(name):
            j = i + 1
            while j < len(argv) and argv[j].startswith("-") and argv[j] != "-m":
                j += 1
            if argv[j : j + 1] == ["-m"] and j + 1 < len(argv) and argv[j + 1] in _ENTRY_MODULES:
                return env, _ENTRY_MODULES[argv[j + 1]], j + 2
            break
        elif not (wrapped or name in WRAPPERS or "/" in token):
            break
        else:
            wrapped = True
    raise LaunchError(f"not a DeepSpeed launch command: {clip(text)}")


def _launcher_flags(
    args: list[str], table: dict[str, tuple[str, type]], source: Source
) -> tuple[dict[str, Param], list[str], int]:
    """Launcher options up to the user script (the first non-option word); argparse rules."""
    params: dict[str, Param] = {}
    unknown: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag, equals, inline = args[i].partition("=")
        name, kind = table.get(flag, ("", str))
        if kind is bool:
            params[name] = Param(name, True, source)
            i += 1
            continue
        if equals:
            raw, i = inline, i + 1
        elif i + 1 < len(args):
            raw, i = args[i + 1], i + 2
        else:
            raise LaunchError(f"{flag} expects a value")
        if name:
            params[name] = Param(name, typed_value(flag, raw, kind), source)
        else:
            unknown.append(flag)
    if i >= len(args):
        raise LaunchError("the DeepSpeed launcher needs a user script")
    return params, unknown, i


def _script_flags(args: list[str], source: Source) -> dict[str, Param]:
    """--deepspeed_config and the MoE sizes of the training script's arguments."""
    out: dict[str, Param] = {}
    i = 0
    while i < len(args):
        flag, equals, inline = args[i].partition("=")
        values = [inline] if equals else []
        j = i + 1
        if not equals:
            while j < len(args) and not args[j].startswith("-"):
                values.append(args[j])
                j += 1
        if flag in CONFIG_FLAGS and values:
            out["deepspeed_config"] = Param("deepspeed_config", values[0], source)
        elif flag == "--model_name_or_path" and values:
            out["model_path"] = Param("model_path", values[0], source)
        elif flag in SCRIPT_FLAGS and values and all(v.isdigit() for v in values):
            numbers = [int(v) for v in values]
            name = SCRIPT_FLAGS[flag]
            out[name] = Param(name, numbers[0] if len(numbers) == 1 else numbers, source)
        i = j
    return out


def _world_info(params: dict[str, Param], source: Source) -> None:
    """Host → GPU slots from --world_info (base64 JSON) or an explicit --include list."""
    raw = params.pop("world_info", None)
    info: dict[str, list[int]] | None = None
    if raw is not None:
        try:
            info = json.loads(base64.urlsafe_b64decode(str(raw.value) + "=="))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise LaunchError(f"--world_info is not base64 JSON: {exc}") from None
    elif "include" in params:
        info = parse_include(str(params["include"].value))
    if isinstance(info, dict) and info:
        params["world_info"] = Param("world_info", info, source)


def parse_include(text: str) -> dict[str, list[int]] | None:
    """`worker-0:0,1@worker-1:2,3` → slots; None when a host's slots are left implicit."""
    out: dict[str, list[int]] = {}
    for spec in text.split("@"):
        host, _, slots = spec.partition(":")
        if not slots:
            return None
        out[host] = [int(s) for s in slots.split(",") if s.strip().isdigit()]
    return out


def read_ds_config(path: Path, display: str) -> dict[str, Param]:
    """The layout fields of a ds_config JSON, each with the line of its key.

    "auto" (the Hugging Face integration's placeholder) means unknown and is skipped.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{display}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{display}:1: a DeepSpeed config must be a JSON object")
    return config_params(doc, text.split("\n"), display)


def config_params(doc: dict[str, Any], lines: list[str], display: str) -> dict[str, Param]:
    """Params for the JSON_KEYS found in `doc`; `lines` locate each key for its source."""
    out: dict[str, Param] = {}
    expert = doc.get("expert_parallel")
    for keys, name in JSON_KEYS.items():
        value: Any = doc
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None or value == "auto":
            continue
        if keys[0] == "expert_parallel" and not (
            isinstance(expert, dict) and expert.get("enabled")
        ):
            continue
        out[name] = Param(name, value, Source("file", display, _key_line(lines, keys)))
    return out


def _key_line(lines: list[str], keys: tuple[str, ...]) -> int | None:
    """The line of the last key in `keys`, searched after the line of each parent key."""
    start = 0
    found = None
    for key in keys:
        needle = f'"{key}"'
        found = next((i for i in range(start, len(lines)) if needle in lines[i]), None)
        if found is None:
            return None
        start = found
    return None if found is None else found + 1
