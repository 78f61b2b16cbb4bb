"""SGLang's entry in the engine registry."""

from __future__ import annotations

from diagnose.engines import sglang, sglang_text
from diagnose.engines.base import Engine
from parsers import launch_cmd, sglang_log

ENGINE = Engine(
    name="sglang",
    title="SGLang",
    resolve=sglang.resolve,
    layout=sglang.layout,
    placement=sglang.placement,
    annotate=sglang_text.annotate,
    coordinates=sglang.coordinate_tokens,
    key_params=(
        "tp_size",
        "pp_size",
        "dp_size",
        "enable_dp_attention",
        "attn_dp_size",
        "attn_cp_size",
        "moe_dp_size",
        "ep_size",
        "moe_dense_tp_size",
        "moe_a2a_backend",
        "dcp_size",
        "nnodes",
        "node_rank",
        "base_gpu_id",
        "gpu_id_step",
        "dist_init_addr",
        "model_path",
    ),
    layout_errors=(sglang.LayoutError, ZeroDivisionError, TypeError),
    sniff=sglang_log.sniff_sglang,
    parse_log=sglang_log.parse_sglang_log,
    parse_command=launch_cmd.parse_command,
    priority=0,
)
