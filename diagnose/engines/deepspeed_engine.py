"""DeepSpeed's entry in the engine registry."""

from __future__ import annotations

from diagnose.engines import deepspeed, deepspeed_text
from diagnose.engines.base import Engine
from parsers import deepspeed_cmd, deepspeed_log

ENGINE = Engine(
    name="deepspeed",
    title="DeepSpeed",
    resolve=deepspeed.resolve,
    layout=deepspeed.layout,
    placement=deepspeed.placement,
    annotate=deepspeed_text.annotate,
    coordinates=deepspeed.coordinate_tokens,
    key_params=(
        "dist_world_size",
        "nnodes",
        "num_gpus",
        "num_local_procs",
        "world_size",
        "zero_stage",
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "ep_size",
        "num_experts",
        "pp_size",
        "autotp_size",
        "sequence_parallel_size",
        "zero_hpz_partition_size",
        "deepspeed_config",
    ),
    layout_errors=(deepspeed.LayoutError, ZeroDivisionError, TypeError),
    sniff=deepspeed_log.sniff_deepspeed,
    parse_log=deepspeed_log.parse_deepspeed_log,
    parse_command=deepspeed_cmd.parse_command,
    priority=40,
)
