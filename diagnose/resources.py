"""Where rankmap's packaged data files live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path


def templates_dir() -> Path:
    """Directory of the jinja2 templates.

    An installed wheel ships them inside the package; a source checkout keeps them at the
    repository root. Checking both lets the report render the same way from either.
    """
    here = Path(__file__).resolve()
    candidates = (here.parent / "templates", here.parents[1] / "templates")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]
