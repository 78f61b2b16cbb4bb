"""vLLM's entry in the engine registry."""

from __future__ import annotations

from diagnose.engines import vllm, vllm_text
from diagnose.engines.base import Engine
from parsers import vllm_cmd, vllm_log

ENGINE = Engine(
    name="vllm",
    title="vLLM",
    resolve=vllm.resolve,
    layout=vllm.layout,
    placement=vllm.placement,
    annotate=vllm_text.annotate,
    coordinates=vllm.coordinate_tokens,
    key_params=(
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "data_parallel_size_local",
        "prefill_context_parallel_size",
        "decode_context_parallel_size",
        "enable_expert_parallel",
        "enable_eplb",
        "all2all_backend",
        "distributed_executor_backend",
        "nnodes",
        "is_moe",
        "model_path",
    ),
    layout_errors=(vllm.LayoutError, ZeroDivisionError, TypeError),
    sniff=vllm_log.sniff_vllm,
    parse_log=vllm_log.parse_vllm_log,
    parse_command=vllm_cmd.parse_command,
    priority=10,
)
