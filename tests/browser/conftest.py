"""Headless-Chromium fixtures for the report's browser tests.

These tests need Chromium and Playwright, which the README's plain `pytest` run must not
require: without RANKMAP_BROWSER_TESTS=1 they are skipped. With it (as `.ci/run` sets it) a
missing browser or Playwright is an error, so CI cannot pass by silently skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ENABLED = os.environ.get("RANKMAP_BROWSER_TESTS") == "1"
REPO = Path(__file__).resolve().parents[2]
# The flags .ci/run documents: no sandbox (root in CI), and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MARKUP = "<script>window.__pwned = 1</script> &amp; &lt;b&gt;not bold&lt;/b&gt;"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="browser tests run with RANKMAP_BROWSER_TESTS=1 (.ci/run)")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


def chromium_path() -> str:
    """The system Chromium: never a browser that Playwright downloads."""
    for candidate in (os.environ.get("RANKMAP_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("no Chromium found: install it (apt-get install chromium)")
    return found


def rankmap(*args: str, cwd: Path) -> None:
    """Run the CLI as a user would; the reports are its real output, not a test double."""
    cmd = [sys.executable, "-m", "diagnose", "report", *args, "--fail-on", "never"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """HTML reports of the bundled samples, of a log holding markup, and of 1024 ranks."""
    out = tmp_path_factory.mktemp("reports")
    rankmap("-o", str(out / "seed.html"), cwd=out)
    rankmap(
        str(REPO / "sample_logs" / "two_node_tp16"),
        "--gpus-per-node", "8", "-o", str(out / "two_node.html"),
        cwd=out,
    )  # fmt: skip
    markup = out / "markup"
    shutil.copytree(REPO / "sample_logs" / "seed_dsv32_tp8_dp2_attncp2", markup)
    with (markup / "server.log").open("a", encoding="utf-8") as fh:
        fh.write("Traceback (most recent call last):\n")
        fh.write('  File "scheduler.py", line 1, in <module> &copy; <b>bold</b>\n')
        fh.write(f"RuntimeError: NCCL error {MARKUP}\n")
    rankmap(str(markup), "--gpus-per-node", "8", "-o", str(out / "markup.html"), cwd=out)
    big = out / "big"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "generate_sglang_logs.py"), str(big)],
        check=True,
        capture_output=True,
    )
    rankmap(str(big), "--gpus-per-node", "8", "-o", str(out / "big.html"), cwd=out)
    return {p.stem: p for p in out.glob("*.html")}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Opened:
    """A loaded report with everything the page tried to say or fetch."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@pytest.fixture
def open_report(browser: Any) -> Iterator[Callable[[Path], Opened]]:
    """Open a report file; every request other than the file itself is recorded and aborted."""
    contexts = []

    def open_(path: Path) -> Opened:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        opened = Opened(page)
        own = path.resolve().as_uri()

        def route(r: Any) -> None:
            url = r.request.url
            opened.requests.append(url)
            if url == own:
                r.continue_()
            else:
                opened.blocked.append(url)
                r.abort()

        context.route("**/*", route)
        page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.errors.append(str(e)))
        page.goto(own)
        page.wait_for_load_state("load")
        return opened

    yield open_
    for context in contexts:
        context.close()
