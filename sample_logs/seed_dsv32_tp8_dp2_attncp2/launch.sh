#!/usr/bin/env bash
# Synthetic example shipped with rankmap (see README.md): SGLang serving DeepSeek-V3.2 on one
# node with 8 GPUs, attention split into 2 DP groups x 2 context-parallel ranks x 2 TP ranks.
NCCL_DEBUG=INFO python3 -m sglang.launch_server \
    --model-path deepseek-ai/DeepSeek-V3.2 \
    --tp 8 \
    --dp 2 \
    --enable-dp-attention \
    --attn-cp-size 2 \
    --trust-remote-code \
    --host 0.0.0.0 \
    --port 30000 \
    2>&1 | tee server.log
