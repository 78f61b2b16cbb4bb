"""The engines rankmap knows, and how an input is matched to one of them."""

from __future__ import annotations

from diagnose.engines import sglang, sglang_text
from diagnose.engines.base import Engine
from parsers import launch_cmd, sglang_log
from parsers.launch_cmd import LaunchCommand, LaunchError

SGLANG = Engine(
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
        "moe_a2a_backend",
        "nnodes",
        "model_path",
    ),
    layout_errors=(sglang.LayoutError, ZeroDivisionError, TypeError),
    sniff=sglang_log.sniff_sglang,
    parse_log=sglang_log.parse_sglang_log,
    parse_command=launch_cmd.parse_command,
)

ENGINES: dict[str, Engine] = {e.name: e for e in (SGLANG,)}


def engine(name: str) -> Engine:
    return ENGINES[name]


def sniff(head: str) -> Engine | None:
    """The engine whose log format the start of a file shows, if any."""
    return next((e for e in ENGINES.values() if e.sniff(head)), None)


def parse_any_command(argv: list[str]) -> LaunchCommand:
    """Parse a launch command with the engine whose entry point it names.

    An engine's parser says "not a … launch command" when the entry point is not its own;
    any other error (a bad flag value, an ambiguous option) is the answer.
    """
    for e in ENGINES.values():
        try:
            return e.parse_command(argv)
        except LaunchError as exc:
            if not str(exc).startswith("not a"):
                raise
    names = ", ".join(e.title for e in ENGINES.values())
    raise LaunchError(f"not a launch command of a known engine ({names}): {' '.join(argv)[:80]}")
