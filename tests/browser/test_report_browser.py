"""The reports as a browser shows them: clean, offline, interactive, and safe with log text.

Each report is the CLI's real output for a bundled sample, for a log holding HTML markup,
and for a generated 1024-rank job; see conftest.py for how they are made and opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import MARKUP, Opened

OpenReport = Callable[[Path], Opened]


def visible_cells(page: Any, kind: str) -> list[dict[str, Any]]:
    """Rank cells of one kind's map as drawn: rank, group and the fill the browser painted."""
    return page.eval_on_selector_all(
        f'.mapcard[data-kind="{kind}"]:not([hidden]) .cell[data-r]',
        """cells => cells.map(c => ({
            r: Number(c.dataset.r), g: c.dataset.g, hl: c.classList.contains('hl'),
            fill: getComputedStyle(c.querySelector('rect')).fill}))""",
    )


def shown_kinds(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        ".mapcard:not([hidden])", "cards => cards.map(c => c.dataset.kind)"
    )


@pytest.mark.parametrize("name", ["seed", "two_node", "markup", "big"])
def test_report_loads_offline_without_errors(
    reports: dict[str, Path], open_report: OpenReport, name: str
) -> None:
    opened = open_report(reports[name])
    assert opened.errors == []
    assert opened.blocked == []
    assert opened.requests == [reports[name].resolve().as_uri()]
    external = opened.page.eval_on_selector_all(
        "script[src], link[href], img, iframe, object, embed", "els => els.length"
    )
    assert external == 0
    assert opened.page.locator("#mapbar button").count() > 1  # the script ran


def test_choosing_a_kind_lights_up_each_of_its_groups(
    reports: dict[str, Path], open_report: OpenReport
) -> None:
    page = open_report(reports["seed"]).page
    assert shown_kinds(page) == page.eval_on_selector_all(
        ".mapcard", "cards => cards.map(c => c.dataset.kind)"
    )  # small layouts open on every kind at once
    page.click('#mapbar button[data-kind="attn_cp"]')
    assert shown_kinds(page) == ["attn_cp"]
    cells = visible_cells(page, "attn_cp")
    assert sorted(c["r"] for c in cells) == list(range(8))
    groups: dict[str, set[int]] = {}
    for c in cells:
        groups.setdefault(c["g"], set()).add(c["r"])
    assert sorted(map(sorted, groups.values())) == [[0, 2], [1, 3], [4, 6], [5, 7]]
    fills = {c["g"]: c["fill"] for c in cells}
    assert len(set(fills.values())) == 4  # each group in its own colour
    assert all(len({c["fill"] for c in cells if c["g"] == g}) == 1 for g in groups)
    card = page.locator('.mapcard[data-kind="attn_cp"]')
    assert "every group stays inside one node" in card.inner_text()


def test_hover_and_focus_show_coordinates_and_groups(
    reports: dict[str, Path], open_report: OpenReport
) -> None:
    page = open_report(reports["seed"]).page
    page.click('#mapbar button[data-kind="attn_cp"]')
    page.hover('.mapcard[data-kind="attn_cp"] .cell[data-r="6"]')
    info = page.locator("#rankinfo").inner_text()
    assert "rank 6: DP1 · ATTN_CP1 · ATTN_TP0" in info
    assert "GPU6" in info
    assert "ATTN_CP g2 [4, 6]" in info and "ATTN_TP g3 [6, 7]" in info
    lit = [c["r"] for c in visible_cells(page, "attn_cp") if c["hl"]]
    assert sorted(lit) == [4, 6]
    page.click('#mapbar button[data-kind=""]')
    page.focus('.mapcard[data-kind="attention_tp"] .cell[data-r="3"]')
    assert "rank 3: DP0 · ATTN_CP1 · ATTN_TP1" in page.locator("#rankinfo").inner_text()
    assert sorted(c["r"] for c in visible_cells(page, "attention_tp") if c["hl"]) == [2, 3]
    assert sorted(c["r"] for c in visible_cells(page, "attn_cp") if c["hl"]) == [1, 3]


def test_group_across_nodes_is_marked(reports: dict[str, Path], open_report: OpenReport) -> None:
    page = open_report(reports["two_node"]).page
    page.click('#mapbar button[data-kind="tp"]')
    card = page.locator('.mapcard[data-kind="tp"]')
    assert "spans 2 nodes" in card.inner_text()
    crossing = page.eval_on_selector_all(
        '.mapcard[data-kind="tp"] .cell.x',
        "cells => cells.map(c => getComputedStyle(c.querySelector('rect')).stroke)",
    )
    assert len(crossing) == 16 and len(set(crossing)) == 1


def test_log_markup_renders_as_text(reports: dict[str, Path], open_report: OpenReport) -> None:
    page = open_report(reports["markup"]).page
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.scripts.length") == 1
    evidence = page.locator("#findings .ctx").all_inner_texts()
    assert any(MARKUP in text for text in evidence)
    assert any("&copy; <b>bold</b>" in text for text in evidence)  # context lines too
    assert page.locator("#findings b").count() == 0


def test_1024_ranks_stay_small_and_usable(
    reports: dict[str, Path], open_report: OpenReport
) -> None:
    path = reports["big"]
    assert path.stat().st_size < 5_000_000
    page = open_report(path).page
    assert len(shown_kinds(page)) == 1  # big layouts open on one kind
    assert page.locator("table tr").count() < 5000
    page.click('#mapbar button[data-kind="attention_tp"]')
    cells = visible_cells(page, "attention_tp")
    assert len(cells) == 1024
    assert len({c["g"] for c in cells}) == int(
        page.get_attribute('.mapcard[data-kind="attention_tp"]', "data-count") or 0
    )
    page.hover('.mapcard[data-kind="attention_tp"] .cell[data-r="517"]')
    info = page.locator("#rankinfo").inner_text()
    assert info.startswith("rank 517: DP")
    assert "gpu-node-064 GPU5" in info
    assert sorted(c["r"] for c in visible_cells(page, "attention_tp") if c["hl"]) == [
        516,
        517,
        518,
        519,
    ]


def test_sample_screenshot(
    reports: dict[str, Path], open_report: OpenReport, tmp_path: Path
) -> None:
    """The picture the README shows: the sample's rank map with ATTN_CP chosen and rank 6
    pointed at. RANKMAP_SCREENSHOT names where to keep it (docs/report.png in the repo)."""
    page = open_report(reports["seed"]).page
    page.set_viewport_size({"width": 1100, "height": 900})
    page.click('#mapbar button[data-kind="attn_cp"]')
    page.hover('.mapcard[data-kind="attn_cp"] .cell[data-r="6"]')
    target = Path(os.environ.get("RANKMAP_SCREENSHOT") or tmp_path / "report.png")
    page.locator("#rankmap").screenshot(path=str(target))
    assert target.stat().st_size > 10_000
