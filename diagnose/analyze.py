"""From inputs to findings: the one pipeline `report` and `check` share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from diagnose import graph as rank_graph
from diagnose.assemble import Assembled, assemble, world_rank_hosts
from diagnose.discover import Candidate, discover, single_file
from diagnose.engines import registry
from diagnose.engines.base import Engine, EngineConfig, EngineLog
from diagnose.model import Finding, InputFile, Layout, Param, Source
from diagnose.observation import Observation, observe
from parsers.hf_config import ModelConfigError, ModelFacts, load_config_json, resolve_model
from parsers.launch_cmd import LaunchCommand
from parsers.lines import read_lines
from parsers.nccl_log import NcclFacts, parse_nccl
from parsers.torch_dist_log import TorchDistFacts, parse_torch_dist
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


@dataclass
class Inputs:
    """Everything read from a log directory, and how each file was handled."""

    logs: list[EngineLog] = field(default_factory=list)
    files: list[InputFile] = field(default_factory=list)
    models: list[ModelFacts] = field(default_factory=list)
    nccl: list[NcclFacts] = field(default_factory=list)
    torch: list[TorchDistFacts] = field(default_factory=list)


def read_inputs(path: Path) -> Inputs:
    """Parse every file under `path`; each one is accounted for in `files`."""
    candidates = discover(path) if path.is_dir() else [single_file(path)]
    found = Inputs()
    for cand in candidates:
        found.files.append(_read_one(cand, found))
    return found


def _read_one(cand: Candidate, found: Inputs) -> InputFile:
    """Parse one file into `found`; return its record (parsed, skipped or failed)."""

    def record(status: str, reason: str | None = None) -> InputFile:
        return InputFile(cand.display, cand.format, status, reason, cand.size)  # type: ignore[arg-type]

    if cand.skip_reason:
        return record("skipped", cand.skip_reason)
    said = False
    try:
        if cand.format == "hf-config":
            found.models.append(load_config_json(cand.path))
            return record("parsed")
        if cand.engine is not None:
            log = registry.engine(cand.engine).parse_log(cand.path, cand.display)
            if _says_anything(log):
                found.logs.append(log)
                said = True
        if cand.nccl or cand.torch or cand.engine is not None:
            said = _read_distributed(cand, found) or said
    except (OSError, ValueError, ModelConfigError) as exc:
        return record("failed", str(exc))
    if not said:
        return record("skipped", "no engine configuration, rank prefixes, NCCL or PyTorch lines")
    return record("parsed")


def _read_distributed(cand: Candidate, found: Inputs) -> bool:
    """NCCL and PyTorch distributed lines, wherever they sit (engine logs included)."""
    frame = read_lines(cand.path)
    nccl = parse_nccl(frame, cand.display)
    torch = parse_torch_dist(frame, cand.display)
    said = False
    if not (nccl.comms.is_empty() and nccl.warns.is_empty() and nccl.procs.is_empty()):
        found.nccl.append(nccl)
        said = True
    if not (torch.pgs.is_empty() and torch.works.is_empty() and not torch.errors):
        found.torch.append(torch)
        said = True
    return said


def _says_anything(log: EngineLog) -> bool:
    return bool(
        log.config or log.commands or not log.prefixes.is_empty() or not log.nccl_comms.is_empty()
    )


def analyse(
    found: Inputs,
    options: Options,
    mode: str,
    extra_commands: list[LaunchCommand] | None = None,
) -> Analysis:
    engine = _engine(found.logs, extra_commands or [], options)
    compared = [p for p in engine.key_params if p not in PER_NODE_PARAMS]
    assembled = assemble(found.logs, extra_commands, compared, found.nccl)
    if not assembled.params and not assembled.prefixes:
        raise BadInput(
            f"no engine configuration found in the inputs ({_input_summary(found.files)})"
        )
    params = _complete(engine, assembled, options)
    model = _model(params, options, found.models)
    cfg = engine.resolve(params, options.engine_version or assembled.version, model)
    layout, layout_error = _layout(engine, cfg, assembled)
    shape = cfg.shape(model)
    observation = observe(found.nccl, found.torch, layout, _world(cfg))
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
        unknowns=_unknowns(engine, cfg, shape.nnodes, model, options, assembled, layout),
        assembled=assembled,
        observation=observation,
    )
    return analysis


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
