"""From inputs to findings: the one pipeline `report` and `check` share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diagnose import graph as rank_graph
from diagnose import watchdog
from diagnose.assemble import Assembled, assemble, world_rank_hosts
from diagnose.engines import registry
from diagnose.engines.base import Engine, EngineConfig, EngineLog
from diagnose.infer import InferredConfig, infer_configs
from diagnose.model import Finding, InputFile, Layout, Param, Source
from diagnose.observation import Observation, observe, recorded_groups
from diagnose.reading import Inputs
from parsers.hf_config import ModelConfigError, ModelFacts, resolve_model
from parsers.launch_cmd import LaunchCommand
from rules import catalog
from rules.base import Context

# Parameters that legitimately differ between the nodes (and servers) of one job.
PER_NODE_PARAMS = frozenset(
    {
        "model_path",
        "node_rank",
        "dist_init_addr",
        "host",
        "port",
        "master_addr",
        "data_parallel_rank",
    }
)


class BadInput(Exception):
    """The inputs cannot be analysed (nothing readable, a broken --model-config); the CLI
    prints the one-line message and exits 2."""


@dataclass
class Options:
    gpus_per_node: int | None = None
    nnodes: int | None = None
    model_config: Path | None = None
    engine_version: str | None = None
    engine: str | None = None


@dataclass
class Analysis:
    """Everything the report, the terminal summary and the JSON document show."""

    mode: str
    engine: Engine
    cfg: EngineConfig
    layout: Layout | None
    layout_error: str | None
    model: ModelFacts | None
    gpus_per_node: int | None
    findings: list[Finding]
    inputs: list[InputFile]
    unknowns: list[dict[str, str]]
    assembled: Assembled
    observation: Observation | None = None
    command: str | None = None
    logdir: str | None = None
    sample: bool = False


def analyse(
    found: Inputs,
    options: Options,
    mode: str,
    extra_commands: list[LaunchCommand] | None = None,
) -> Analysis:
    engine = _engine(found.logs, extra_commands or [], options)
    compared = [p for p in engine.key_params if p not in PER_NODE_PARAMS]
    assembled = assemble(found.logs, extra_commands, compared, found.nccl)
    inferred = None
    if assembled.params or assembled.prefixes:
        params = _complete(engine, assembled, options)
    else:
        inferred = _infer(found, options)
        engine, params = registry.engine(inferred.engine), dict(inferred.params)
    model = _model(params, options, found.models)
    cfg = engine.resolve(params, options.engine_version or assembled.version, model)
    layout, layout_error = _layout(engine, cfg, assembled)
    shape = cfg.shape(model)
    observation = observe(
        found.nccl, found.torch, found.traces, found.dumps, layout, _world(cfg), engine.name
    )
    graph = None
    if layout is not None:
        graph = rank_graph.build(layout)
        rank_graph.annotate_hosts(layout, graph)
        engine.annotate(cfg, layout.groups)
    ctx = Context(
        cfg=cfg,
        layout=layout,
        shape=shape,
        model=model,
        gpus_per_node=options.gpus_per_node,
        graph=graph,
        param_evidence=assembled.param_evidence,
        events=assembled.events,
        prefixes=assembled.prefixes,
        conflicts=assembled.conflicts,
        nccl_comms=assembled.nccl_comms,
        engine_files=assembled.engine_files,
        observation=observation,
    )
    findings = catalog.run(ctx)
    analysis = Analysis(
        mode=mode,
        engine=engine,
        cfg=cfg,
        layout=layout,
        layout_error=layout_error,
        model=model,
        gpus_per_node=options.gpus_per_node,
        findings=findings,
        inputs=found.files,
        unknowns=_inference_notes(inferred)
        + _unknowns(engine, cfg, shape.nnodes, model, options, assembled, layout),
        assembled=assembled,
        observation=observation,
    )
    return analysis


def _infer(found: Inputs, options: Options) -> InferredConfig:
    """With no configuration in the inputs, the engine and sizes whose layout reproduces
    the groups that traces and Flight Recorder dumps show, or else those that PyTorch's
    ProcessGroupNCCL lines name (with their descriptions and global ranks). NCCL's own
    communicators are left out: they name no kind, and sizes alone fit layouts that would
    only raise false alarms."""
    observed = recorded_groups(found.traces, found.dumps, options.engine)
    if not observed:
        observed = [g for g in watchdog.torch_groups(found.torch) if g.ranks]
    worlds = [t.world_size for t in found.traces if t.world_size]
    worlds += [max(g.ranks) + 1 for g in observed if g.ranks]
    if not observed or not worlds:
        raise BadInput(
            f"no engine configuration found in the inputs ({_input_summary(found.files)})"
        )
    candidates = infer_configs(observed, max(worlds))
    if options.engine:
        candidates = [c for c in candidates if c.engine == options.engine]
    if not candidates:
        raise BadInput(
            f"the {len(observed)} process groups the inputs show fit no engine's layout, "
            "and no configuration was found in the inputs"
        )
    return candidates[0]


def _inference_notes(inferred: InferredConfig | None) -> list[dict[str, str]]:
    if inferred is None:
        return []
    what = (
        f"the configuration itself: no launch command or engine log was found, so it was "
        f"inferred from the observed groups as {inferred.title} with {inferred.sizes_text()}"
    )
    if inferred.tie:
        what += f" (other configurations fit equally: {'; '.join(inferred.ties[:3])})"
    return [{"what": what, "how": "add the launch command or the engine's log to the directory"}]


def _world(cfg: EngineConfig) -> int | None:
    try:
        return int(cfg.world_size)
    except (TypeError, ValueError):
        return None


def _complete(engine: Engine, assembled: Assembled, options: Options) -> dict[str, Param]:
    """The configured values, plus what options override and what the logs imply."""
    params = dict(assembled.params)
    if options.nnodes is not None:
        params["nnodes"] = Param("nnodes", options.nnodes, Source("option", why="--nnodes"))
    if engine.name == "sglang" and "tp_size" not in params and assembled.prefixes:
        params.update(_sizes_from_prefixes(assembled))
    if "nnodes" not in params and len(assembled.nccl_hosts) > 1:
        hosts = ", ".join(assembled.nccl_hosts)
        why = f"{len(assembled.nccl_hosts)} hosts print NCCL lines ({hosts})"
        params["nnodes"] = Param("nnodes", len(assembled.nccl_hosts), Source("inferred", why=why))
    return params


def _sizes_from_prefixes(assembled: Assembled) -> dict[str, Param]:
    """With no SGLang configuration at all, the highest TP/PP numbers in the scheduler
    prefixes bound the sizes."""
    tps = [t["tp"] for _, t in assembled.prefixes if "tp" in t]
    pps = [t["pp"] for _, t in assembled.prefixes if "pp" in t]
    out = {}
    why = "highest rank seen in the log prefixes"
    if tps:
        out["tp_size"] = Param("tp_size", max(tps) + 1, Source("inferred", why=why))
    if pps:
        out["pp_size"] = Param("pp_size", max(pps) + 1, Source("inferred", why=why))
    return out


def _input_summary(inputs: list[InputFile]) -> str:
    if not inputs:
        return "no files"
    shown = "; ".join(f"{i.path}: {i.status}, {i.reason}" for i in inputs[:5])
    return shown + (f"; {len(inputs) - 5} more" if len(inputs) > 5 else "")


def _model(
    params: dict[str, Param], options: Options, found: list[ModelFacts]
) -> ModelFacts | None:
    """The model's shape: --model-config, else --model-path, else a config.json in the logs."""
    path = params.get("model_path")
    try:
        model = resolve_model(path.value if path else None, options.model_config)
    except ModelConfigError as exc:
        raise BadInput(str(exc)) from exc
    return model or (found[0] if found else None)


def _engine(logs: list[EngineLog], commands: list[LaunchCommand], options: Options) -> Engine:
    """The engine of the job: --engine, else what the launch command or most logs are."""
    if options.engine:
        return registry.engine(options.engine)
    names = [c.engine for c in commands] or [log.engine for log in logs]
    return registry.engine(max(set(names), key=names.count) if names else "sglang")


def _layout(
    engine: Engine, cfg: EngineConfig, assembled: Assembled
) -> tuple[Layout | None, str | None]:
    """The expected layout, with node → host names from whatever the logs tell."""
    try:
        hosts = dict(assembled.node_hosts)
        rank_hosts = world_rank_hosts(assembled.nccl_comms, cfg.world_size)
        rank_hosts.update(assembled.rank_hosts)
        for p in engine.placement(cfg):
            host = rank_hosts.get(p.rank)
            if host and p.node is not None:
                hosts.setdefault(p.node, host)
        return engine.layout(cfg, hosts), None
    except engine.layout_errors as exc:
        return None, str(exc)


def _unknowns(
    engine: Engine,
    cfg: EngineConfig,
    nnodes: int,
    model: ModelFacts | None,
    options: Options,
    assembled: Assembled,
    layout: Layout | None,
) -> list[dict[str, str]]:
    out = []
    if model is None:
        out.append(
            {
                "what": "the model's shape (heads, KV heads, experts, layers, hidden size), so "
                "head/expert divisibility and the cost of cross-node all-reduces are not checked",
                "how": "pass --model-config path/to/config.json, or use a --model-path rankmap "
                "knows (local directory, Hugging Face cache, or a popular model id)",
            }
        )
    if options.gpus_per_node is None:
        out.append(
            {
                "what": "how many GPUs each node has, so idle or over-subscribed GPUs are not "
                "checked",
                "how": "pass --gpus-per-node N",
            }
        )
    if layout is not None and nnodes > 1 and not assembled.rank_hosts and not assembled.node_hosts:
        out.append(
            {
                "what": "the host name of each node (nodes are shown as node0, node1, …)",
                "how": "keep one log per node in the directory, or run with NCCL_DEBUG=INFO",
            }
        )
    if nnodes > 1 and not assembled.has_net_lines:
        out.append(
            {
                "what": "which transport NCCL used between nodes (InfiniBand, RoCE or TCP sockets)",
                "how": "rerun with NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,NET,GRAPH",
            }
        )
    if cfg.version is None:
        out.append(
            {
                "what": f"the {engine.title} version; its newest group layout "
                f"({cfg.layout_version}) is assumed",
                "how": "keep the startup lines that print it, or pass --engine-version",
            }
        )
    return out
