"""What the logs themselves say: prefixes that contradict the config, crashes, conflicts."""

from __future__ import annotations

from collections.abc import Iterable

from diagnose.engines.sglang import LEGACY_LAYOUTS, coordinates
from diagnose.model import Evidence, Finding
from rules.base import Context, Rule

PREFIX_TOKENS = {"dp": "DP", "pp": "PP", "attn_cp": "ATTN_CP", "moe_dp": "MOE_DP", "ep": "EP"}


def _prefix_problem(ctx: Context, tokens: dict[str, int]) -> str | None:
    """Why a scheduler prefix cannot come from this configuration, or None."""
    c = ctx.cfg
    tp = tokens.get("tp", 0)
    if tp >= c["tp_size"]:
        return f"TP{tp} but tp_size is {c['tp_size']}"
    pp = tokens.get("pp", 0)
    if pp >= c["pp_size"]:
        return f"PP{pp} but pp_size is {c['pp_size']}"
    expected = coordinates(c, pp * c["tp_size"] + tp)
    if c.replicas > 1:
        expected.pop("dp", None)  # the replica index: any value below dp_size is fine
        if tokens.get("dp", 0) >= c.replicas:
            return f"DP{tokens['dp']} but there are {c.replicas} DP replicas"
    for key, label in PREFIX_TOKENS.items():
        if key in tokens and key in expected and tokens[key] != expected[key]:
            return f"{label}{tokens[key]} where this configuration gives {label}{expected[key]}"
    if c.layout_version not in LEGACY_LAYOUTS:
        if "attn_cp" in tokens and c["attn_cp_size"] == 1:
            return "an ATTN_CP token although attn_cp_size is 1"
        if "ep" in tokens and c["ep_size"] == 1:
            return "an EP token although ep_size is 1"
    return None


def _prefixes(ctx: Context) -> Iterable[Finding]:
    if ctx.layout is None:
        return
    bad: dict[str, Evidence] = {}
    for ev, tokens in ctx.prefixes:
        problem = _prefix_problem(ctx, tokens)
        if problem and problem not in bad:
            bad[problem] = ev
    if bad:
        shown = list(bad.items())[:5]
        yield PREFIXES.finding(
            f"{len(bad)} kind(s) of log prefix contradict the configuration, e.g. "
            + "; ".join(p for p, _ in shown)
            + ". The logs come from another configuration or another version than assumed.",
            [ev for _, ev in shown] + list(ctx.evidence_for("tp_size", "dp_size")),
        )


PREFIXES = Rule(
    "RM301",
    "Scheduler prefixes contradict the configuration",
    "error",
    "Every ` DPd PPp ATTN_CPc MOE_DPm TPt EPe` prefix in the logs against the coordinates "
    "the resolved configuration gives that rank.",
    "The prefixes are SGLang's own statement of each process's coordinates; when they "
    "disagree with the configuration rankmap resolved (TP6 under tp_size 4), the groups "
    "shown would be wrong — "
    "usually a log from another run or an SGLang version with another layout.",
    "Point rankmap at the logs of one run, or pass the launch command that produced them.",
    _prefixes,
    engines=("sglang",),
)


GROUP_VARIABLES = {
    "_TP": "tp",
    "_PP": "pp",
    "_ATTN_TP": "attention_tp",
    "_ATTN_CP": "attn_cp",
    "_MOE_EP": "moe_ep",
    "_MOE_TP": "moe_tp",
    "_MOE_DP": "moe_dp",
    "_WORLD": "world",
}


def _failing_group(ctx: Context) -> str:
    """Which SGLang group was being created when the exception struck, in words."""
    frames = ctx.events_of("pg_create")
    if not frames:
        return ""
    var = frames[0].text.split("=", 1)[0].strip()
    kind = GROUP_VARIABLES.get(var, var)
    text = f" while creating the `{kind}` process group ({var} = init_model_parallel_group)"
    group = ctx.layout.group(kind) if ctx.layout else None
    if group is not None and group.hosts and any(len(h) > 1 for h in group.hosts):
        text += f"; that group spans {len(group.hosts[0])} nodes"
    return text


def _crashes(ctx: Context) -> Iterable[Finding]:
    errors = [e for e in ctx.events_of("exception") if "Traceback" not in e.text]
    if not errors:
        return
    # The final `SomethingError: message` line names the cause; the banner lines do not.
    named = [e for e in errors if "Error" in e.text.split(":", 1)[0]] or errors
    distinct: dict[str, Evidence] = {}
    for e in named:
        distinct.setdefault(e.text.split("] ", 1)[-1][:160], e)
    yield CRASHES.finding(
        f"The logs hold {len(errors)} exception line(s){_failing_group(ctx)}; first: "
        f"{next(iter(distinct))}",
        list(distinct.values())[:4] + ctx.events_of("pg_create")[:1],
    )


CRASHES = Rule(
    "RM302",
    "Exceptions in the logs",
    "error",
    "Tracebacks, `Scheduler hit an exception` and `…Error:` lines.",
    "A scheduler that dies takes its whole TP group with it (16 ranks for --tp 16); the first "
    "exception (not the cascade after it) names the cause.",
    "Read the first exception shown; if it sits in process-group creation, check the "
    "network between the nodes of that group (NCCL_SOCKET_IFNAME, firewalls, IB state).",
    _crashes,
)


def _nccl_warnings(ctx: Context) -> Iterable[Finding]:
    warns = ctx.events_of("nccl_warn")
    if warns:
        distinct: dict[str, Evidence] = {}
        for e in warns:
            distinct.setdefault(e.text.split("NCCL WARN", 1)[-1].strip()[:80], e)
        yield NCCL_WARN.finding(
            f"NCCL printed {len(warns)} warning(s); first: "
            f"{warns[0].text.split('NCCL WARN', 1)[-1].strip()}",
            list(distinct.values())[:6],
        )


NCCL_WARN = Rule(
    "RM303",
    "NCCL warnings",
    "warning",
    "`NCCL WARN` lines anywhere in the inputs.",
    "NCCL warns before it fails: refused connections, IB completion errors (e.g. status=4, "
    "vendor err 81) and missing devices show up here first, usually on the link between "
    "nodes, minutes before the 600 s watchdog timeout ends the job.",
    "Check the interface and HCA settings (NCCL_SOCKET_IFNAME, NCCL_IB_HCA) on the hosts "
    "named in the lines.",
    _nccl_warnings,
)


def _conflicts(ctx: Context) -> Iterable[Finding]:
    for name, values in ctx.conflicts:
        shown = ", ".join(f"{v!r} ({e.file}:{e.line})" for v, e in values[:4])
        yield CONFLICTS.finding(
            f"{name} has different values across the inputs: {shown}; rankmap used "
            f"{ctx.cfg[name]!r} ({ctx.cfg.src(name)}).",
            [e for _, e in values[:4]],
        )


CONFLICTS = Rule(
    "RM304",
    "Inputs disagree about a parameter",
    "warning",
    "The same layout parameter given different values by different launch commands or "
    "server_args dumps in the inputs (node_rank, host and port excluded).",
    "Two servers with different sizes are two different jobs (--tp 16 on node 0 and --tp 8 on "
    "node 1 never form one world); mixing their logs gives a layout neither of them had.",
    "Keep the logs of one job per directory, or check that every node got the same flags.",
    _conflicts,
)


def _mixed_engines(ctx: Context) -> Iterable[Finding]:
    if len(ctx.engine_files) < 2:
        return
    parts = [f"{name}: {', '.join(files[:3])}" for name, files in ctx.engine_files.items()]
    yield MIXED.finding(
        f"The inputs come from {len(ctx.engine_files)} engines ({'; '.join(parts)}); rankmap "
        f"analysed them as {ctx.cfg.engine}.",
        [Evidence(files[0], None, f"{name} log") for name, files in ctx.engine_files.items()],
    )


MIXED = Rule(
    "RM305",
    "Logs of several engines in one directory",
    "warning",
    "Whether the inputs were written by more than one engine (say SGLang and vLLM logs "
    "side by side).",
    "One layout describes one job: a directory with 8 SGLang and 8 vLLM logs is two jobs, and "
    "their ranks 0–7 are different processes; mixing them gives groups neither job had.",
    "Point rankmap at one job's directory, or name the engine with --engine.",
    _mixed_engines,
)

RULES: tuple[Rule, ...] = (PREFIXES, CRASHES, NCCL_WARN, CONFLICTS, MIXED)
