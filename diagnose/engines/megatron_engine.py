"""Megatron-core's entry in the engine registry."""

from __future__ import annotations

from diagnose.engines import megatron, megatron_text
from diagnose.engines.base import Engine
from parsers import megatron_cmd, megatron_log

ENGINE = Engine(
    name="megatron",
    title="Megatron-core",
    resolve=megatron.resolve,
    layout=megatron.layout,
    placement=megatron.placement,
    annotate=megatron_text.annotate,
    coordinates=megatron.coordinate_tokens,
    key_params=(
        "tensor_model_parallel_size",
        "pipeline_model_parallel_size",
        "context_parallel_size",
        "expert_model_parallel_size",
        "expert_tensor_parallel_size",
        "virtual_pipeline_model_parallel_size",
        "sequence_parallel",
        "num_distributed_optimizer_instances",
        "use_tp_pp_dp_mapping",
        "world_size",
        "nnodes",
        "nproc_per_node",
        "num_experts",
        "model_path",
    ),
    layout_errors=(megatron.LayoutError, ZeroDivisionError, TypeError),
    sniff=megatron_log.sniff_megatron,
    parse_log=megatron_log.parse_megatron_log,
    parse_command=megatron_cmd.parse_command,
    priority=20,
)
