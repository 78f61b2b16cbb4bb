"""Read Megatron training launch commands: torchrun (or `python -m torch.distributed.run`)
running a Megatron script, the way torchrun and Megatron's argparse read them.

torchrun decides the world (global rank = node_rank × nproc_per_node + local_rank) and
Megatron's flags decide how the world is cut, so both halves are kept. A torchrun
command is claimed only when it runs a Megatron script (pretrain_*.py, a path naming
megatron) or carries Megatron parallelism flags; DeepSpeed launches (`deepspeed`, any
`--deepspeed*` flag) belong to the DeepSpeed parser. ms-swift's `megatron pt|sft|rlhf`
(underscore flags, NNODES / NPROC_PER_NODE from the environment) and NeMo's Hydra
overrides (`model.tensor_model_parallel_size=2`, `trainer.devices=8`) map one to one and
are read too. Flags that do not shape the groups are kept by name, never interpreted.

The flag table was checked against NVIDIA/Megatron-LM `megatron/training/arguments.py`
(core_v0.13.1 explicit add_argument calls; main generates the same names from
ModelParallelConfig / TransformerConfig fields). Megatron builds its parser with
`allow_abbrev=False`, so no prefix abbreviations are modelled.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath
from typing import Any

from diagnose.model import Param, Source
from parsers.launch_cmd import (
    ASSIGNMENT,
    LINE_BREAK,
    PROMPT,
    PYTHON,
    WRAPPERS,
    LaunchCommand,
    LaunchError,
    clip,
    cut_at_shell_operator,
    split_shell,
)

# Megatron flag -> (argument name, type); `bool` is store_true, `False` store_false,
# `list` nargs='+' of ints.
FLAGS: dict[str, tuple[str, Any]] = {
    "--tensor-model-parallel-size": ("tensor_model_parallel_size", int),
    "--pipeline-model-parallel-size": ("pipeline_model_parallel_size", int),
    "--context-parallel-size": ("context_parallel_size", int),
    "--expert-model-parallel-size": ("expert_model_parallel_size", int),
    "--expert-tensor-parallel-size": ("expert_tensor_parallel_size", int),
    "--num-distributed-optimizer-instances": ("num_distributed_optimizer_instances", int),
    "--hierarchical-context-parallel-sizes": ("hierarchical_context_parallel_sizes", list),
    "--hybrid-context-parallel": ("hybrid_context_parallel", bool),
    "--use-tp-pp-dp-mapping": ("use_tp_pp_dp_mapping", bool),
    "--num-layers-per-virtual-pipeline-stage": ("num_layers_per_virtual_pipeline_stage", int),
    "--num-virtual-stages-per-pipeline-rank": ("num_virtual_stages_per_pipeline_rank", int),
    "--virtual-pipeline-model-parallel-size": ("virtual_pipeline_model_parallel_size", int),
    "--pipeline-model-parallel-layout": ("pipeline_model_parallel_layout", str),
    "--decoder-first-pipeline-num-layers": ("decoder_first_pipeline_num_layers", int),
    "--decoder-last-pipeline-num-layers": ("decoder_last_pipeline_num_layers", int),
    "--account-for-embedding-in-pipeline-split": ("account_for_embedding_in_pipeline_split", bool),
    "--account-for-loss-in-pipeline-split": ("account_for_loss_in_pipeline_split", bool),
    "--no-overlap-p2p-communication": ("overlap_p2p_comm", False),
    "--sequence-parallel": ("sequence_parallel", bool),
    "--disable-gloo-process-groups": ("use_gloo_process_groups", False),
    "--use-distributed-optimizer": ("use_distributed_optimizer", bool),
    "--moe-token-dispatcher-type": ("moe_token_dispatcher_type", str),
    "--num-experts": ("num_experts", int),
    "--num-layers": ("num_layers", int),
    "--hidden-size": ("hidden_size", int),
    "--ffn-hidden-size": ("ffn_hidden_size", int),
    "--moe-ffn-hidden-size": ("moe_ffn_hidden_size", int),
    "--num-attention-heads": ("num_attention_heads", int),
    "--num-query-groups": ("num_query_groups", int),
    "--group-query-attention": ("group_query_attention", bool),
    "--seq-length": ("seq_length", int),
    "--micro-batch-size": ("micro_batch_size", int),
    "--global-batch-size": ("global_batch_size", int),
    "--cp-comm-type": ("cp_comm_type", str),
    "--model-parallel-size": ("model_parallel_size", int),
    "--tp-comm-overlap": ("tp_comm_overlap", bool),
    "--model": ("model_path", str),  # ms-swift names the Hugging Face model
}

# torchrun's own options: those taking a value, and flags.
TORCHRUN_VALUES = {
    "--nnodes": "nnodes",
    "--nproc-per-node": "nproc_per_node",
    "--nproc_per_node": "nproc_per_node",
    "--node-rank": "node_rank",
    "--node_rank": "node_rank",
    "--master-addr": "master_addr",
    "--master_addr": "master_addr",
    "--master-port": "master_port",
    "--master_port": "master_port",
    "--rdzv-endpoint": "rdzv_endpoint",
    "--rdzv_endpoint": "rdzv_endpoint",
}
TORCHRUN_FLAGS = frozenset(
    {"--standalone", "--no-python", "--no_python", "--run-path", "--run_path", "-m",
     "--module", "--use-env", "--use_env", "--numa-binding"}
)  # fmt: skip
# Environment variables the launchers read instead of flags (torchrun's PET_ fallbacks,
# ms-swift's NNODES / NPROC_PER_NODE).
ENV_SIZES = {
    "PET_NNODES": "nnodes",
    "PET_NPROC_PER_NODE": "nproc_per_node",
    "PET_NODE_RANK": "node_rank",
    "NNODES": "nnodes",
    "NPROC_PER_NODE": "nproc_per_node",
    "NODE_RANK": "node_rank",
    "WORLD_SIZE": "world_size",
}
# NeMo Hydra overrides that are Megatron arguments under another path.
HYDRA = {
    "trainer.num_nodes": "nnodes",
    "trainer.devices": "nproc_per_node",
    "model.num_layers": "num_layers",
    "model.hidden_size": "hidden_size",
    "model.num_attention_heads": "num_attention_heads",
    "model.num_query_groups": "num_query_groups",
    "model.encoder_seq_length": "seq_length",
    "model.num_moe_experts": "num_experts",
    "model.virtual_pipeline_model_parallel_size": "virtual_pipeline_model_parallel_size",
}
HYDRA_SAME = {
    "tensor_model_parallel_size", "pipeline_model_parallel_size", "context_parallel_size",
    "expert_model_parallel_size", "expert_tensor_parallel_size", "sequence_parallel",
}  # fmt: skip
INT_FIELDS = {name for name, kind in FLAGS.values() if kind is int} | {
    "nnodes", "nproc_per_node", "node_rank", "world_size",
}  # fmt: skip
BOOL_FIELDS = {name for name, kind in FLAGS.values() if kind is bool or kind is False}

_MEGATRON_SCRIPT = re.compile(r"(?i)(?:^|/)(?:pretrain_\w+\.py|[\w-]*megatron[\w./-]*\.py)$")
_HYDRA_ITEM = re.compile(r"^\+{0,2}(?P<key>(?:model|trainer)\.[\w.]+)=(?P<value>.*)$")
# `bash -x` echoes each command behind `+ ` (one + per nesting level).
_XTRACE = re.compile(r"^\s*\++\s+")
_SWIFT_SUBCOMMANDS = frozenset({"pt", "sft", "rlhf", "export"})
# A line matching this may hold a Megatron launch (Python and Rust regex syntax alike).
TRIGGER = (
    r"torchrun|torch\.distributed\.(?:run|launch)|pretrain_\w+\.py"
    r"|--tensor-model-parallel-size|\bmegatron (?:pt|sft|rlhf)\b"
)


def parse_command(
    command: str | list[str], file: str | None = None, line: int | None = None
) -> LaunchCommand:
    """Parse one launch command (shell text or argv) into torchrun and Megatron parameters.

    Raises LaunchError starting with "not a" when the command is not a Megatron launch, so
    the registry tries the next engine; any other LaunchError is a bad value.
    """
    if isinstance(command, str):
        text = " ".join(part.strip() for part in LINE_BREAK.split(command) if part.strip())
        tokens = split_shell(text)
    else:
        tokens = list(command)
        text = shlex.join(tokens)
    argv = cut_at_shell_operator(tokens)
    source = Source("command line") if file is None else Source("file", file, line)
    env, launcher, script_at, kind = _entry(argv, text)
    swift = kind == "swift"
    if any(a.startswith("--deepspeed") for a in argv):
        raise LaunchError(f"not a Megatron launch command (DeepSpeed flags): {clip(text)}")
    params: dict[str, Param] = {}
    for var, name in ENV_SIZES.items():
        if var in env and _launcher_reads(kind, var):
            params[name] = Param(name, _size(var, env[var]), source)
    for name, value in launcher.items():
        typed = _size(f"--{name}", value) if name in INT_FIELDS else value
        params[name] = Param(name, typed, source)
    script = argv[script_at] if script_at < len(argv) else ""
    args = argv[script_at + (0 if swift else 1) :]
    megatron, unknown = _parse_flags(args, source, underscores=swift)
    if not (swift or _MEGATRON_SCRIPT.search(script) or _has_parallel_flag(megatron)):
        raise LaunchError(f"not a Megatron launch command (script {script!r}): {clip(text)}")
    params.update(megatron)
    return LaunchCommand(argv, env, params, unknown, text, file, line, engine="megatron")


def _launcher_reads(kind: str, var: str) -> bool:
    """Whether the launcher of this kind takes a size from environment variable `var`."""
    if var.startswith("PET_"):
        return kind == "torchrun"
    if var == "WORLD_SIZE":
        return kind == "python"  # Megatron: args.world_size = int(os.getenv("WORLD_SIZE", "1"))
    return kind == "swift"


def _entry(argv: list[str], text: str) -> tuple[dict[str, str], dict[str, str], int, str]:
    """(environment, torchrun options, index of the script, launcher kind).

    The kind is "torchrun" (also `python -m torch.distributed.run|launch`), "python" (a
    script run directly: one process unless WORLD_SIZE says otherwise) or "swift"
    (ms-swift's `megatron` CLI, which runs torchrun itself).
    """
    env: dict[str, str] = {}
    for i, token in enumerate(argv):
        assignment = ASSIGNMENT.match(token)
        name = PurePosixPath(token).name
        if assignment:
            env[assignment.group(1)] = assignment.group(2)
        elif name == "torchrun":
            options, at = _torchrun_options(argv, i + 1)
            return env, options, at, "torchrun"
        elif PYTHON.match(name):
            return _after_python(argv, i + 1, env, text)
        elif name == "megatron" and i + 1 < len(argv) and argv[i + 1] in _SWIFT_SUBCOMMANDS:
            return env, {}, i + 2, "swift"
        elif not (name in WRAPPERS or "/" in token):
            break
    raise LaunchError(f"not a Megatron launch command: {clip(text)}")


def _after_python(
    argv: list[str], i: int, env: dict[str, str], text: str
) -> tuple[dict[str, str], dict[str, str], int, str]:
    """`python -m torch.distributed.run|launch …` or `python script.py …`."""
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
        i += 1
    if argv[i : i + 1] == ["-m"]:
        module = argv[i + 1] if i + 1 < len(argv) else ""
        if module in ("torch.distributed.run", "torch.distributed.launch"):
            options, at = _torchrun_options(argv, i + 2)
            return env, options, at, "torchrun"
        raise LaunchError(f"not a Megatron launch command (module {module!r}): {clip(text)}")
    if i >= len(argv):
        raise LaunchError(f"not a Megatron launch command: {clip(text)}")
    return env, {}, i, "python"


def _torchrun_options(argv: list[str], i: int) -> tuple[dict[str, str], int]:
    """torchrun's options up to the training script (its first positional argument)."""
    options: dict[str, str] = {}
    while i < len(argv) and argv[i].startswith("-"):
        flag, equals, inline = argv[i].partition("=")
        if flag in TORCHRUN_FLAGS:
            if flag == "--standalone":
                options.setdefault("nnodes", "1")
            i += 1
            continue
        if equals:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            raise LaunchError(f"torchrun: {flag} expects a value")
        if flag in TORCHRUN_VALUES:
            options[TORCHRUN_VALUES[flag]] = value
    return options, i


def _size(flag: str, raw: str) -> int | str:
    """An integer, or torchrun's non-numeric forms kept as text (`1:4`, `gpu`, `auto`).

    `--nnodes N:N` (fixed elastic range) is N; a real range leaves the world unknown.
    """
    if raw.startswith("$"):
        return raw  # an unexpanded shell variable: the value is unknown here
    m = re.fullmatch(r"(\d+):(\d+)", raw)
    if m and m.group(1) == m.group(2):
        return int(m.group(1))
    if raw.isdigit():
        return int(raw)
    if flag.lstrip("-").replace("-", "_") in ("nnodes", "nproc_per_node") and (
        m or raw in ("gpu", "auto", "cpu")
    ):
        return raw
    raise LaunchError(f"{flag} expects an integer, got {raw!r}")


def _parse_flags(
    args: list[str], source: Source, underscores: bool
) -> tuple[dict[str, Param], list[str]]:
    """Typed table flags and the names of the others; the last occurrence wins."""
    params: dict[str, Param] = {}
    unknown: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        hydra = _HYDRA_ITEM.match(token)
        if hydra:
            _hydra(hydra.group("key"), hydra.group("value"), source, params, unknown)
            i += 1
            continue
        flag, equals, inline = token.partition("=")
        if underscores:
            flag = flag.replace("_", "-")
        if flag not in FLAGS:
            if token.startswith("-"):
                unknown.append(flag)
            i += 1
            while i < len(args) and not args[i].startswith("-") and not equals:
                i += 1
            continue
        name, kind = FLAGS[flag]
        if kind is bool or kind is False:
            value: Any = kind is bool
            if (
                underscores
                and not equals
                and i + 1 < len(args)
                and args[i + 1] in ("true", "false", "True", "False")
            ):  # ms-swift spells booleans `--sequence_parallel true`
                value = (args[i + 1].lower() == "true") == (kind is bool)
                i += 1
            params[name] = Param(name, value, source)
            i += 1
            continue
        values: list[str] = [inline] if equals else []
        i += 1
        while not equals and i < len(args) and not args[i].startswith("-"):
            values.append(args[i])
            i += 1
            if kind is not list:
                break
        if not values:
            raise LaunchError(f"{flag} expects a value")
        params[name] = Param(name, _typed(flag, values, kind), source)
    return params, unknown


def _hydra(
    key: str, raw: str, source: Source, params: dict[str, Param], unknown: list[str]
) -> None:
    """One NeMo `model.x=…` / `trainer.x=…` override, if it is a Megatron argument."""
    field = HYDRA.get(key)
    short = key.removeprefix("model.")
    if field is None and short in HYDRA_SAME:
        field = short
    if field is None:
        unknown.append(key)
        return
    if field in BOOL_FIELDS:
        value: Any = raw.strip().lower() in ("true", "1", "yes")
    elif raw.strip().lower() in ("null", "none", "~"):
        value = None
    else:
        value = _typed(key, [raw], int)
    params[field] = Param(field, value, source)


def _typed(flag: str, values: list[str], kind: Any) -> Any:
    if values[0].startswith("$"):
        return values[0]  # an unexpanded shell variable: the value is unknown here
    try:
        if kind is list:
            return [int(v) for part in values for v in part.split(",") if v]
        if kind is int:
            return int(values[0])
    except ValueError:
        raise LaunchError(f"{flag} expects integers, got {' '.join(values)!r}") from None
    return values[0]


def _has_parallel_flag(params: dict[str, Param]) -> bool:
    return any(
        name in params
        for name in (
            "tensor_model_parallel_size",
            "pipeline_model_parallel_size",
            "context_parallel_size",
            "expert_model_parallel_size",
        )
    )


def find_commands(lines: list[str], file: str, numbers: list[int]) -> list[LaunchCommand]:
    """Every Megatron launch in `lines` (with their file line numbers), in order.

    A trigger line anchors a command; backslash continuations around it are joined and a
    shell prompt or `bash -x` trace mark in front is dropped. Anchored lines that do not
    parse are prose.
    """
    found: list[LaunchCommand] = []
    consumed = -1
    trigger = re.compile(TRIGGER)
    for i, text in enumerate(lines):
        if i <= consumed or not trigger.search(text):
            continue
        start = i
        while start > consumed + 1 and lines[start - 1].rstrip().endswith("\\"):
            start -= 1
        end = i
        while end + 1 < len(lines) and lines[end].rstrip().endswith("\\"):
            end += 1
        parts = [part.rstrip().removesuffix("\\") for part in lines[start : end + 1]]
        parts[0] = _XTRACE.sub("", PROMPT.sub("", parts[0], count=1), count=1)
        joined = " ".join(part.strip() for part in parts if part.strip())
        try:
            found.append(parse_command(joined, file=file, line=numbers[start]))
        except LaunchError:
            continue
        consumed = end
    return found
