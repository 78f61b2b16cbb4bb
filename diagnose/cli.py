"""The `rankmap` command line."""

from __future__ import annotations

import gc
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from diagnose import __version__, graph
from diagnose.analyze import BadInput, Options, analyse
from diagnose.engines import registry
from diagnose.glossary import TERMS, find_term
from diagnose.model import SEVERITY_ORDER
from diagnose.reading import Inputs, read_inputs
from diagnose.report_html import render_html, template
from diagnose.resources import sample_logs_dir
from diagnose.result import document
from diagnose.terminal import summary
from parsers.launch_cmd import LaunchError
from rules.catalog import RULES, find_rule

SAMPLE = "seed_dsv32_tp8_dp2_attncp2"
# New container objects between two collections of the youngest generation (Python: 700).
GC_THRESHOLD = 7000


class InputError(click.ClickException):
    """Bad input or nothing readable: exit code 2, one line, no traceback."""

    exit_code = 2


def _shared(f: Any) -> Any:
    options = (
        click.option("--json", "json_out", metavar="PATH|-", help="Write the rankmap/1 JSON."),
        click.option("--gpus-per-node", type=click.IntRange(min=1), help="GPUs in each node."),
        click.option("--nnodes", type=click.IntRange(min=1), help="Override the node count."),
        click.option(
            "--engine",
            type=click.Choice(sorted(registry.ENGINES)),
            help="The engine, when the inputs do not make it clear.",
        ),
        click.option(
            "--engine-version",
            metavar="VERSION",
            help="The engine's release (e.g. 0.5.9) when the inputs do not show it.",
        ),
        click.option(
            "--model-config",
            type=click.Path(dir_okay=False, path_type=Path),
            help="A Hugging Face config.json of the model.",
        ),
        click.option(
            "--fail-on",
            type=click.Choice(["error", "warning", "never"]),
            default="error",
            show_default=True,
            help="Exit 1 when a finding is at least this severe.",
        ),
    )
    for option in reversed(options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rankmap")
def main() -> None:
    """Rebuild the process-group layout of a multi-GPU job, explain it, flag bad layouts."""
    _few_collections()


def _few_collections() -> None:
    """Tune Python's cycle collector for one run over a big directory: the modules already
    loaded are set aside for good, and collections come after ten times as many new objects.
    A run makes hundreds of thousands of small, long-lived objects (parameters, evidence,
    the report's rows); collecting them over and over took a quarter of a second of a
    5-second run, and again as the interpreter exits."""
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _prepare_report() -> None:
    """What the report needs after reading and can have before: networkx and the compiled
    template (a third of a second), readied while the workers read their last files."""
    graph.networkx()
    template()


def _finish(doc: dict[str, Any], json_out: str | None, fail_on: str, explain: bool) -> None:
    gc.freeze()  # all that is left goes with the process: no last collection at exit
    to_stdout = json_out == "-"
    echo_summary = click.echo if not to_stdout else (lambda s: click.echo(s, err=True))
    for line in summary(doc, explain, registry.engine(doc["engine"]).key_params):
        echo_summary(line)
    if json_out:
        text = json.dumps(doc, indent=2, default=str)
        if to_stdout:
            click.echo(text)
        else:
            Path(json_out).write_text(text + "\n", encoding="utf-8")
            echo_summary(f"JSON written to {json_out}")
    if fail_on != "never":
        worst = max((SEVERITY_ORDER[f["severity"]] for f in doc["findings"]), default=-1)
        if worst >= SEVERITY_ORDER[fail_on]:
            sys.exit(1)


def _write_html(doc: dict[str, Any], output: Path, echo: Any) -> None:
    try:
        output.write_text(render_html(doc), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{output}: cannot write the report: {exc.strerror or exc}") from exc
    echo(f"Report written to {output}")


@main.command()
@click.argument("logdir", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("rankmap-report.html"),
    show_default=True,
    help="Where to write the HTML report.",
)
@_shared
def report(
    logdir: Path | None,
    output: Path,
    json_out: str | None,
    gpus_per_node: int | None,
    nnodes: int | None,
    engine: str | None,
    engine_version: str | None,
    model_config: Path | None,
    fail_on: str,
) -> None:
    """Read a log directory (or one file) and write the HTML report.

    Without LOGDIR the bundled sample (SGLang, tp 8, dp 2 with DP attention, attn-cp 2) is
    used.
    """
    sample = logdir is None
    if logdir is None:
        logdir = sample_logs_dir() / SAMPLE
        gpus_per_node = gpus_per_node or 8
    found = read_inputs(logdir, idle=_prepare_report)
    options = Options(gpus_per_node, nnodes, model_config, engine_version, engine)
    try:
        analysis = analyse(found, options, "report")
    except BadInput as exc:
        raise InputError(f"{logdir}: {exc}") from exc
    analysis.logdir = str(logdir)
    analysis.sample = sample
    doc = document(analysis)
    echo = click.echo if json_out != "-" else (lambda s: click.echo(s, err=True))
    _write_html(doc, output, echo)
    _finish(doc, json_out, fail_on, explain=False)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the HTML report here.",
)
@_shared
def check(
    command: tuple[str, ...],
    output: Path | None,
    json_out: str | None,
    gpus_per_node: int | None,
    nnodes: int | None,
    engine: str | None,
    engine_version: str | None,
    model_config: Path | None,
    fail_on: str,
) -> None:
    """Pre-flight: resolve a launch command as its engine would, before any GPU is touched.

    Use as: rankmap check [OPTIONS] -- python -m sglang.launch_server --tp 8 ...
    (or vllm serve …, torchrun … pretrain_gpt.py …, trtllm-serve …, deepspeed …)
    """
    argv = list(command)
    if len(argv) == 1 and " " in argv[0]:
        argv = shlex.split(argv[0])
    try:
        cmd = registry.parse_any_command(argv)
    except LaunchError as exc:
        raise InputError(str(exc)) from exc
    options = Options(gpus_per_node, nnodes, model_config, engine_version, engine)
    try:
        analysis = analyse(Inputs(), options, "check", extra_commands=[cmd])
    except BadInput as exc:
        raise InputError(str(exc)) from exc
    analysis.command = cmd.text
    doc = document(analysis)
    if output is not None:
        _write_html(doc, output, click.echo if json_out != "-" else lambda s: None)
    _finish(doc, json_out, fail_on, explain=True)


@main.command()
@click.argument("name")
def explain(name: str) -> None:
    """What a group kind (ATTN_CP, MOE_DP, TP, …) or a rule id (RM101) means."""
    rule = find_rule(name)
    if rule is not None:
        click.echo(rule.doc())
        return
    term = find_term(name)
    if term is None:
        known = ", ".join(t.name for t in TERMS)
        raise InputError(f"unknown name {name!r}: try a group kind ({known}) or a rule id")
    click.echo(f"{term.name} — {term.title} (cut: {term.cut})\n")
    click.echo(f"{term.meaning}\n\nTraffic: {term.traffic}\n\nSet by: {term.engines}")


@main.command("rules")
def rules_cmd() -> None:
    """The rule catalogue."""
    for rule in RULES:
        click.echo(f"{rule.id}  {rule.severity:<7}  {rule.title}")
