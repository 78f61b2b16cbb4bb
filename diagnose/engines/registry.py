"""The engines rankmap knows, and how an input is matched to one of them."""

from __future__ import annotations

import importlib
import pkgutil

from diagnose import engines as engines_pkg
from diagnose.engines.base import Engine
from parsers.launch_cmd import LaunchCommand, LaunchError


def _discover() -> dict[str, Engine]:
    """Every `ENGINE` defined by a module of diagnose.engines, in sniffing priority order.

    New engines register by defining ENGINE in their own module; nothing here changes.
    """
    found = []
    for info in pkgutil.iter_modules(engines_pkg.__path__):
        module = importlib.import_module(f"{engines_pkg.__name__}.{info.name}")
        candidate = getattr(module, "ENGINE", None)
        if isinstance(candidate, Engine):
            found.append(candidate)
    return {e.name: e for e in sorted(found, key=lambda e: (e.priority, e.name))}


ENGINES: dict[str, Engine] = _discover()


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
