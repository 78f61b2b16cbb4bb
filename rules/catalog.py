"""Every rule rankmap knows, in the order the catalogue lists them."""

from __future__ import annotations

from diagnose.model import SEVERITY_ORDER, Finding
from rules import evidence, model_shape, placement, sglang_validation, sizes
from rules.base import Context, Rule

RULES: tuple[Rule, ...] = (
    *sglang_validation.RULES,
    *sizes.RULES,
    *placement.RULES,
    *model_shape.RULES,
    *evidence.RULES,
)


def find_rule(rule_id: str) -> Rule | None:
    return next((r for r in RULES if r.id.lower() == rule_id.strip().lower()), None)


def run(ctx: Context) -> list[Finding]:
    """All findings, most severe first, in catalogue order within a severity."""
    engine = ctx.cfg.engine
    applicable = [r for r in RULES if r.engines is None or engine in r.engines]
    findings = [f for rule in applicable for f in rule.check(ctx)]
    return sorted(findings, key=lambda f: -SEVERITY_ORDER[f.severity])
