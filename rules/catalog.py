"""Every rule rankmap knows, in the order the catalogue lists them."""

from __future__ import annotations

import importlib
import pkgutil

import rules as rules_pkg
from diagnose.model import SEVERITY_ORDER, Finding
from rules.base import Context, Rule


def _discover() -> tuple[Rule, ...]:
    """Every rule of every module in rules/ (a module lists its rules in RULES), by id.

    New rules register by living in a module of this package; nothing here changes.
    """
    found: list[Rule] = []
    for info in pkgutil.iter_modules(rules_pkg.__path__):
        module = importlib.import_module(f"{rules_pkg.__name__}.{info.name}")
        found.extend(getattr(module, "RULES", ()))
    ids = [r.id for r in found]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise RuntimeError(f"rule ids defined twice: {sorted(duplicates)}")
    return tuple(sorted(found, key=lambda r: r.id))


RULES: tuple[Rule, ...] = _discover()


def find_rule(rule_id: str) -> Rule | None:
    return next((r for r in RULES if r.id.lower() == rule_id.strip().lower()), None)


def _checked(rule: Rule, ctx: Context) -> list[Finding]:
    """A rule's findings; a rule that fails on odd input says so instead of ending the run."""
    try:
        return list(rule.check(ctx))
    except Exception as exc:  # a broken rule must not cost the user the whole report
        message = f"{rule.id} could not run on these inputs ({type(exc).__name__}: {exc})."
        return [Finding(rule.id, "info", message, "Report this with the inputs.")]


def run(ctx: Context) -> list[Finding]:
    """All findings, most severe first, in catalogue order within a severity."""
    engine = ctx.cfg.engine
    applicable = [r for r in RULES if r.engines is None or engine in r.engines]
    findings = [f for rule in applicable for f in _checked(rule, ctx)]
    return sorted(findings, key=lambda f: -SEVERITY_ORDER[f.severity])
