"""The HTML report renders hand-built result documents safely, completely and compactly.

The documents are written by hand (not produced by the engines) so these tests pin the
renderer alone: a broken engine must not make the report tests fail, and vice versa.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

from diagnose.report_html import anchor_id, render_html

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base"}
SVG_LEAVES = {"rect", "line"}  # written both as <rect/> and as <rect><title>…</title></rect>
XSS = "<script>alert(1)</script> &amp; done"


def _group(
    kind: str, cut: str, ranks: list[list[int]], hosts: list[list[str]], **extra: Any
) -> dict[str, Any]:
    """A group entry as the JSON result carries it."""
    return {
        "kind": kind,
        "label": kind.upper(),
        "cut": cut,
        "ranks": ranks,
        "size": len(ranks[0]),
        "count": len(ranks),
        "alias_of": None,
        "built": True,
        "explanation": f"{kind} groups, explained",
        "formula": f"{kind}_size = {len(ranks[0])}",
        "traffic": "all-reduce",
        "hosts": hosts,
        "crosses_nodes": any(len(set(h)) > 1 for h in hosts),
        **extra,
    }


def _doc(
    groups: list[dict[str, Any]],
    placement: list[dict[str, Any]],
    *,
    world: int,
    nnodes: int,
    gpus: int = 8,
    replicas: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """A minimal but complete `rankmap/1` document around the given groups."""
    return {
        "schema": "rankmap/1",
        "tool": {"name": "rankmap", "version": "0.1.0"},
        "mode": "report",
        "command": None,
        "logdir": "runs/job 1",
        "sample": False,
        "engine": "sglang",
        "engine_version": "0.5.9",
        "layout_version": "current (attn_cp/moe_dp)",
        "world_size": world,
        "replicas": replicas,
        "nnodes": nnodes,
        "gpus_per_node": gpus,
        "verdict": {"status": "ok", "errors": 0, "warnings": 0, "infos": 0, "headline": "fine"},
        "model": None,
        "params": {},
        "derived": [],
        "groups": groups,
        "placement": placement,
        "findings": [],
        "inputs": [],
        "unknowns": [],
        **extra,
    }


def _one_node(ranks: list[list[int]]) -> list[list[str]]:
    """Hosts of groups that all live on the single node of the seed case."""
    return [["gpu-node-17"] * len(r) for r in ranks]


def seed() -> dict[str, Any]:
    """tp 8, dp 2 with DP attention, attn_cp 2 on one node of 8 GPUs."""
    attn_cp = [[0, 2], [1, 3], [4, 6], [5, 7]]
    attn_tp = [[0, 1], [2, 3], [4, 5], [6, 7]]
    attn_dp = [[0, 4], [1, 5], [2, 6], [3, 7]]
    tp = [list(range(8))]
    moe_ep = [[0, 1, 4, 5], [2, 3, 6, 7]]
    groups = [
        _group("world", "world", tp, _one_node(tp)),
        _group("tp", "parameters", tp, _one_node(tp)),
        _group("attn_dp", "requests", attn_dp, _one_node(attn_dp)),
        _group("attn_cp", "sequences", attn_cp, _one_node(attn_cp)),
        _group("attn_tp", "parameters", attn_tp, _one_node(attn_tp)),
        _group("moe_dp", "requests", attn_cp, _one_node(attn_cp), alias_of="attn_cp"),
        _group("moe_ep", "experts", moe_ep, _one_node(moe_ep)),
    ]
    placement = [
        {"rank": r, "host": "gpu-node-17", "gpu": r, "node": 0, "replica": 0} for r in range(8)
    ]
    return _doc(
        groups,
        placement,
        world=8,
        nnodes=1,
        verdict={
            "status": "error",
            "errors": 1,
            "warnings": 1,
            "infos": 1,
            "headline": "ATTN_CP needs a kernel this build lacks",
        },
        params={
            "tp_size": {"value": 8, "source": "launch.sh:3"},
            "enable_dp_attention": {"value": True, "source": "command line"},
            "attn_cp_size": {"value": 2, "source": "command line"},
        },
        derived=[
            {
                "name": "attn_tp_size",
                "value": 2,
                "formula": "tp_size / attn_dp_size / attn_cp_size = 8 / 2 / 2 = 2",
            }
        ],
        model={"name": "DeepSeek-V3", "hidden_size": 7168, "kv_lora_rank": 512, "source": None},
        coords={str(r): f"DP{r // 4} · ATTN_CP{(r // 2) % 2} · ATTN_TP{r % 2}" for r in range(8)},
        findings=[
            {
                "rule": "RM900",
                "severity": "info",
                "title": "MOE_DP is ATTN_CP",
                "message": "moe_dp reuses the attn_cp ranks",
                "evidence": [],
                "fix": "",
            },
            {
                "rule": "RM201",
                "severity": "warning",
                "title": "odd log line",
                "message": "a log line looked odd",
                "evidence": [
                    {
                        "file": "logs/rank 0 <a>.log",
                        "line": 12,
                        "text": XSS,
                        "context": {
                            "before": [{"line": 11, "text": "Traceback <b>(most recent)</b>"}],
                            "after": [{"line": 13, "text": "next &lt;line&gt;"}],
                        },
                    }
                ],
                "fix": "look at it",
            },
            {
                "rule": "RM101",
                "severity": "error",
                "title": "bad layout",
                "message": "something is wrong",
                "evidence": [{"file": "launch.sh", "line": 3, "text": "--attn-cp-size 2"}],
                "fix": "drop --attn-cp-size",
            },
        ],
        inputs=[
            {
                "path": "launch.sh",
                "format": "launch-cmd",
                "status": "parsed",
                "reason": None,
                "size": 120,
            },
            {
                "path": "logs/rank 0 <a>.log",
                "format": "sglang-log",
                "status": "parsed",
                "reason": None,
                "size": 123456,
            },
            {
                "path": "core.bin",
                "format": "unknown",
                "status": "skipped",
                "reason": "binary file",
                "size": 4_000_000_000,
            },
        ],
        unknowns=[{"what": "which transport NCCL used", "how": "rerun with NCCL_DEBUG=INFO"}],
    )


def two_nodes() -> dict[str, Any]:
    """tp 16 over two nodes: the TP group crosses the node boundary, ATTN_TP does not."""
    hosts = ["node-a"] * 8 + ["node-b"] * 8
    tp = [list(range(16))]
    attn_tp = [list(range(8)), list(range(8, 16))]
    groups = [
        _group("tp", "parameters", tp, [hosts]),
        _group("attn_tp", "parameters", attn_tp, [hosts[:8], hosts[8:]]),
    ]
    placement = [
        {"rank": r, "host": hosts[r], "gpu": r % 8, "node": r // 8, "replica": 0} for r in range(16)
    ]
    return _doc(groups, placement, world=16, nnodes=2)


def replicas() -> dict[str, Any]:
    """dp 2 without DP attention, tp 3 on one node of 8 GPUs: two worlds, two idle GPUs."""
    tp = [[0, 1, 2]]
    placement = [
        {"rank": r, "host": "h0", "gpu": rep * 3 + r, "node": 0, "replica": rep}
        for rep in range(2)
        for r in range(3)
    ]
    return _doc(
        [_group("tp", "parameters", tp, [["h0"] * 3])], placement, world=3, nnodes=1, replicas=2
    )


def big() -> dict[str, Any]:
    """1024 ranks on 128 nodes: tp 8 within a node, pp 4 across nodes, cp 2, ep 64."""
    hosts = [f"node-{r // 8:03d}" for r in range(1024)]

    def grp(kind: str, cut: str, ranks: list[list[int]]) -> dict[str, Any]:
        return _group(kind, cut, ranks, [[hosts[r] for r in g] for g in ranks])

    groups = [
        grp("world", "world", [list(range(1024))]),
        grp("tp", "parameters", [list(range(i, i + 8)) for i in range(0, 1024, 8)]),
        grp("pp", "parameters", [list(range(i, 1024, 256)) for i in range(256)]),
        grp("cp", "sequences", [[i, i + 8] for b in range(0, 1024, 16) for i in range(b, b + 8)]),
        grp("ep", "experts", [list(range(i, i + 64)) for i in range(0, 1024, 64)]),
        grp("dp", "requests", [list(range(i, 1024, 8)) for i in range(8)]),
    ]
    placement = [
        {"rank": r, "host": hosts[r], "gpu": r % 8, "node": r // 8, "replica": 0}
        for r in range(1024)
    ]
    coords = {str(r): f"PP{r // 256} · DP{r % 256 // 8} · TP{r % 8}" for r in range(1024)}
    return _doc(groups, placement, world=1024, nnodes=128, coords=coords)


class _Page(HTMLParser):
    """Collects what the assertions need: tag balance, rank cells per kind, evidence text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.kind: str | None = None
        self.cells: dict[str, list[tuple[int, int]]] = {}
        self.classes: dict[str, dict[int, set[str]]] = {}
        self.idle: dict[str, int] = {}
        self.in_ev = 0
        self.evidence = ""
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            assert a["id"] not in self.ids, f"duplicate id {a['id']}"
            self.ids.add(a["id"] or "")
        if a.get("href"):
            self.hrefs.append(a["href"] or "")
        if tag in VOID or tag in SVG_LEAVES:
            return
        self.stack.append(tag)
        classes = (a.get("class") or "").split()
        if tag == "section" and "mapcard" in classes:
            self.kind = a["data-kind"] or ""
            self.cells[self.kind] = []
            self.classes[self.kind] = {}
            self.idle[self.kind] = 0
        if tag == "g" and "cell" in classes and self.kind is not None:
            if a.get("data-g") is not None:
                rank = int(a["data-r"] or -1)
                self.cells[self.kind].append((rank, int(a["data-g"] or -1)))
                self.classes[self.kind][rank] = set(classes)
            elif "idle" in classes:
                self.idle[self.kind] += 1
        if tag == "table" and "ctx" in classes:
            self.in_ev += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or tag in SVG_LEAVES:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "section" and self.kind is not None:
            self.kind = None
        if tag == "table" and self.in_ev:
            self.in_ev -= 1

    def handle_data(self, data: str) -> None:
        if self.in_ev:
            self.evidence += data


def parse(page: str) -> _Page:
    """Parse a rendered page and insist its tags balance."""
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def test_seed_page_is_complete_html5() -> None:
    page = render_html(seed())
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert '<html lang="en">' in page
    assert '<meta charset="utf-8">' in page
    assert re.search(r"<title>[^<]+</title>", page)
    parse(page)


def test_no_external_resources() -> None:
    for doc in (seed(), two_nodes(), replicas()):
        page = render_html(doc)
        assert "http://" not in page and "https://" not in page
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?://|[a-z]+:)""", page, re.I)
        assert "@import" not in page and "url(" not in page


def test_log_text_is_escaped() -> None:
    page = render_html(seed())
    assert "<script>alert(1)</script>" not in page
    assert page.count("<script>") == 1  # the page's own, optional, script
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; done" in page
    evidence = parse(page).evidence
    assert XSS in evidence
    assert "Traceback <b>(most recent)</b>" in evidence and "next &lt;line&gt;" in evidence
    assert "<b>" not in page


def test_evidence_shows_its_context_in_file_order() -> None:
    page = render_html(seed())
    page = page[page.index("logs/rank 0 &lt;a&gt;.log:12") :]
    rows = re.findall(r'<tr( class="hit")?><th scope="row">(\d+)</th>', page)
    assert [(bool(hit), int(n)) for hit, n in rows[:3]] == [(False, 11), (True, 12), (False, 13)]


def test_backticks_become_code_after_escaping() -> None:
    doc = seed()
    doc["findings"][0]["message"] = "creating the `tp` group failed: `<b>x</b>`"
    page = render_html(doc)
    assert "creating the <code>tp</code> group failed: <code>&lt;b&gt;x&lt;/b&gt;</code>" in page


def test_findings_ordered_with_evidence_linked_to_inputs() -> None:
    doc = seed()
    page = render_html(doc)
    parsed = parse(page)
    assert page.index("RM101") < page.index("RM201") < page.index("RM900")
    assert "drop --attn-cp-size" in page
    for item in doc["inputs"]:
        assert html.escape(item["path"]) in page
        assert anchor_id("in", item["path"]) in parsed.ids
    assert f"#{anchor_id('in', 'logs/rank 0 <a>.log')}" in parsed.hrefs
    assert all(h[1:] in parsed.ids for h in parsed.hrefs if h.startswith("#"))


def test_every_group_kind_appears_and_alias_is_named() -> None:
    doc = seed()
    page = render_html(doc)
    for group in doc["groups"]:
        assert group["label"] in page
        assert f'<code class="muted">{group["kind"]}</code>' in page
    assert "same ranks as ATTN_CP" in page
    for text in ("Parameters: the weights", "Requests: the batch", "Sequences: the tokens"):
        assert text in page
    assert "Experts: the MoE experts" in page
    assert "Attention context parallel" in page  # the general meaning, for newcomers
    assert "tp_size / attn_dp_size / attn_cp_size = 8 / 2 / 2 = 2" in page
    assert "DeepSeek-V3" in page and "which transport NCCL used" in page


def test_rank_cells_match_group_membership() -> None:
    doc = seed()
    parsed = parse(render_html(doc))
    drawn = [g for g in doc["groups"] if g["cut"] != "world"]
    assert sorted(parsed.cells) == sorted(g["kind"] for g in drawn)
    for group in drawn:
        expected = {(r, i) for i, ranks in enumerate(group["ranks"]) for r in ranks}
        assert sorted(parsed.cells[group["kind"]]) == sorted(expected)
        assert parsed.idle[group["kind"]] == 0


def test_crossing_badge_only_where_a_group_crosses() -> None:
    assert 'class="badge b-cross"' not in render_html(seed())
    page = render_html(two_nodes())
    parsed = parse(page)
    tp_map = page[page.index('data-kind="tp"') : page.index('data-kind="attn_tp"')]
    attn_map = page[page.index('data-kind="attn_tp"') : page.index('id="groups"')]
    assert 'class="badge b-cross"' in tp_map and 'class="badge b-cross"' not in attn_map
    assert ' x" data-r' in tp_map and ' x" data-r' not in attn_map
    assert len(parsed.cells["tp"]) == 16 and len(parsed.cells["attn_tp"]) == 16


def test_replicas_draw_each_world_and_idle_gpus() -> None:
    parsed = parse(render_html(replicas()))
    assert sorted(parsed.cells["tp"]) == sorted([(r, 0) for r in range(3)] * 2)
    assert parsed.idle["tp"] == 2


def test_sample_notice_and_check_mode() -> None:
    doc = seed()
    doc.update(sample=True, mode="check", logdir=None, command="python -m sglang.launch_server")
    page = render_html(doc)
    assert "bundled example" in page
    assert "<code>python -m sglang.launch_server</code>" in page
    assert "bundled example" not in render_html(seed())


def test_1024_ranks_stay_small() -> None:
    doc = big()
    page = render_html(doc)
    parsed = parse(page)
    assert len(page.encode()) < 5_000_000
    for group in doc["groups"]:
        if group["cut"] != "world":
            assert len(parsed.cells[group["kind"]]) == 1024
    assert "… 240 more" in page  # 256 PP groups, first 16 listed
    assert "… 112 more" in page  # 128 TP groups, first 16 listed
    assert 'class="rm compact"' in page


def test_numbers_of_a_formula_name_their_sources() -> None:
    doc = seed()
    attn_tp = next(g for g in doc["groups"] if g["kind"] == "attn_tp")
    attn_tp["formula"] = doc["derived"][0]["formula"]
    doc["derived"].append({"name": "attn_dp_size", "value": 2, "formula": "dp_size = 2"})
    page = render_html(doc)
    kind = page[page.index(f'id="{anchor_id("g", "attn_tp")}"') :]
    kind = kind[: kind.index("</article>")]
    assert '<code>tp_size = 8</code></th><td><a href="#' + anchor_id("in", "launch.sh") in kind
    assert "<code>attn_cp_size = 2</code></th><td>command line" in kind
    assert "<code>attn_dp_size = 2</code></th><td>dp_size = 2" in kind
    assert "<code>attn_tp_size = 2</code>" not in kind  # what the formula computes


def test_map_card_says_which_groups_and_whether_they_stay_inside_a_node() -> None:
    page = render_html(seed())
    card = page[page.index('data-kind="attn_cp"') :]
    card = card[: card.index("</section>")]
    assert "Attention context parallel" in card
    assert "every group stays inside one node" in card
    for index, ranks in enumerate(["0, 2", "1, 3", "4, 6", "5, 7"]):
        assert f"g{index} [{ranks}]" in card
    crossing = render_html(two_nodes())
    card = crossing[crossing.index('data-kind="tp"') :]
    assert "✗ the group spans 2 nodes" in card[: card.index("</section>")]


def test_kinds_that_split_nothing_are_grey_and_last() -> None:
    doc = seed()
    doc["groups"].append(
        _group("pp", "parameters", [[r] for r in range(8)], _one_node([[r] for r in range(8)]))
    )
    page = render_html(doc)
    parsed = parse(page)
    assert list(parsed.cells)[-1] == "pp"
    assert all(classes == {"cell", "t"} for classes in parsed.classes["pp"].values())
    assert 'data-kind="pp" data-label="PP" data-count="8" data-trivial' in page


def test_big_layouts_open_on_one_kind_and_small_ones_on_all() -> None:
    assert 'id="rankmap" data-default=""' in render_html(seed())
    assert 'id="rankmap" data-default="pp"' in render_html(big())  # the kind crossing nodes


def test_timeline_draws_every_rank_and_names_the_outliers() -> None:
    doc = two_nodes()
    rows = [
        {"rank": r, "replica": 0, "node": r // 8, "host": None, "gpu": r % 8, "file": "n.log",
         "line": r + 1, "begin": 0.0 if r != 3 else 42.0, "end": None if r == 3 else 45.0,
         "status": "late" if r == 3 else "ok"}
        for r in range(8)
    ] + [
        {"rank": r, "replica": 0, "node": 1, "host": None, "gpu": r % 8, "file": None,
         "line": None, "begin": None, "end": None, "status": "no log"}
        for r in range(8, 16)
    ]  # fmt: skip
    doc["timeline"] = {
        "start": "2026-03-12 09:41:10",
        "late_after_s": 10.0,
        "median_begin": 0.0,
        "span": 45.0,
        "counts": {"ok": 7, "late": 1, "no log": 8},
        "ranks": rows,
        "notes": ["Rank 3 (node 0 GPU 3) began `Init torch distributed` 42 s after <b>"],
    }
    page = render_html(doc)
    parse(page)
    assert page.count('<g class="tr"') == 16
    assert '<g class="tr" data-status="late" data-r="3">' in page
    assert "<code>Init torch distributed</code> 42 s after &lt;b&gt;" in page
    assert '<a href="#timeline">' in page


def test_observed_groups_and_traffic_render_when_present() -> None:
    doc = two_nodes()
    doc["groups"][0]["observed"] = [list(range(16))]
    doc["groups"][0]["status"] = "matched"
    doc["groups"][1]["observed"] = {"comm": "<0x55>"}
    doc["groups"][1]["status"] = "differs"
    doc["traffic"] = [
        {"group_kind": "tp", "op": "all_reduce", "bytes": 3.5e9, "time_us": 1234.5, "calls": 61}
    ]
    doc["traffic_matrix"] = {
        "method": "trace <rank0.json>",
        "ranks": list(range(16)),
        "bytes": [[0 if i == j else (i + j) * 1e6 for j in range(16)] for i in range(16)],
    }
    page = render_html(doc)
    parse(page)
    assert "seen in the logs" in page and "<code>[0–15]</code>" in page
    assert "logs differ" in page and "{&#34;comm&#34;: &#34;&lt;0x55&gt;&#34;}" in page
    assert "From trace &lt;rank0.json&gt;." in page
    assert page.count("fill-opacity=") == 16 * 15
    assert "3.3 GB" in page and "1.2 ms" in page and "all_reduce" in page
    assert "seen in the logs" not in render_html(two_nodes())
    assert 'id="traffic"' not in render_html(two_nodes())


def test_overlapping_evidence_of_one_file_is_one_block_and_extra_pieces_fold() -> None:
    def item(line: int) -> dict[str, Any]:
        around = {"before": [{"line": line - 1, "text": f"line {line - 1}"}]}
        return {"file": "n.log", "line": line, "text": f"hit {line}", "context": around}

    doc = seed()
    doc["findings"][2]["evidence"] = [item(175), item(177), item(30), item(90), item(95)]
    page = render_html(doc)
    parse(page)
    assert "n.log:175, 177</span>" in page
    block = page[page.index("n.log:175, 177") :]
    block = block[: block.index("</table>")]
    assert re.findall(r'<tr( class="hit")?><th scope="row">(\d+)', block) == [
        ("", "174"),
        (' class="hit"', "175"),
        ("", "176"),
        (' class="hit"', "177"),
    ]
    assert "2 more pieces of evidence" in page  # n.log:30 shown, 90 and 95 folded
