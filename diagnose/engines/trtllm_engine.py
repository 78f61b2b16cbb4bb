"""TensorRT-LLM's entry in the engine registry."""

from __future__ import annotations

from diagnose.engines import trtllm, trtllm_text
from diagnose.engines.base import Engine
from parsers import trtllm_cmd, trtllm_log

ENGINE = Engine(
    name="trtllm",
    title="TensorRT-LLM",
    resolve=trtllm.resolve,
    layout=trtllm.layout,
    placement=trtllm.placement,
    annotate=trtllm_text.annotate,
    coordinates=trtllm.coordinate_tokens,
    key_params=(
        "tp_size",
        "pp_size",
        "cp_size",
        "cp_type",
        "moe_tp_size",
        "moe_ep_size",
        "moe_cluster_size",
        "enable_attention_dp",
        "mpi_size",
        "gpus_per_node",
        "nnodes",
        "model_path",
    ),
    layout_errors=(trtllm.LayoutError, ZeroDivisionError, TypeError),
    sniff=trtllm_log.sniff_trtllm,
    parse_log=trtllm_log.parse_trtllm_log,
    parse_command=trtllm_cmd.parse_command,
    priority=30,
)
