"""NCCL_DEBUG=INFO facts: every real NCCL log of tests/data plus synthetic lines per variant."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from parsers.lines import read_lines
from parsers.nccl_log import NcclFacts, parse_nccl, sniff_nccl

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "corpus"
GENERATED = DATA / "generated" / "nccl_1gpu_torch2.11"
VLLM_IB = "deepseek-v2.5-tp8-pp2-2node-ray-ib.log"
VLLM_NOIB = "deepseek-v2.5-tp8-pp2-2node-ray-noib.log"
HANG = "dsr1-decode-tp16-2node-hang-ib-completion-error.log"
PD = "dsr1-pd-decode-tp16-2node-nccl-info.log"
REFUSED = "dsr1-tp16-2node-nccl-connect-refused.log"
NCCL_INIT = "sglang-dsr1-decode-tp16-node1-nccl-init.log"


def _corpus(name: str) -> NcclFacts:
    return parse_nccl(read_lines(CORPUS / name), name)


def _lines(*texts: str) -> NcclFacts:
    frame = pl.DataFrame(
        {"line": range(1, len(texts) + 1), "text": list(texts)},
        schema={"line": pl.Int64, "text": pl.Utf8},
    )
    return parse_nccl(frame, "synthetic.log")


def _generated(layout: str) -> dict[int, NcclFacts]:
    """Facts of every rank's NCCL log, keyed by the global rank in the file name."""
    logs = sorted((GENERATED / layout / "nccl_log").glob("nccl_rank*.log.gz"))
    return {
        int(path.name.removeprefix("nccl_rank").removesuffix(".log.gz")): parse_nccl(
            read_lines(path), path.name
        )
        for path in logs
    }


def _links_with_comms(facts: NcclFacts) -> pl.DataFrame:
    comms = facts.comms.select("host", "pid", "comm", "nranks", "nnodes")
    return facts.links.join(comms, on=["host", "pid", "comm"], how="left")


# --- vLLM 0.8.3 on Ray, NCCL 2.21.5, TP=8 x PP=2 over two pods with InfiniBand -------


def test_vllm_ib_processes_and_bare_version_lines() -> None:
    facts = _corpus(VLLM_IB)
    procs = {(h, p): (v, c, devs) for h, p, devs, v, c, _ in facts.procs.rows()}
    # NCCL 2.21 prints its version with a bare printf: the driver's line 88 has no prefix at
    # all, workers' lines only Ray's `(RayWorkerWrapper pid=…)`; line 408 is Ray-folded.
    assert procs[("deepseek-v2-5-0", 5969)] == ("2.21.5", "12.4", [0])
    assert procs[("deepseek-v2-5-0-1", 626)] == ("2.21.5", "12.4", [0])
    assert procs[("deepseek-v2-5-0", 663)] == ("2.21.5", "12.4", [4])
    assert procs[("deepseek-v2-5-0", 660)] == ("2.21.5", "12.4", [6])
    assert procs[("deepseek-v2-5-0-1", 627)] == (None, None, [1])
    assert facts.procs.row(0) == ("deepseek-v2-5-0", 5969, [0], "2.21.5", "12.4", 83)
    on_leader = facts.procs.filter(pl.col("host") == "deepseek-v2-5-0")
    assert sorted(on_leader["devs"].list.first()) == list(range(8))
    # The paste cut one line inside its host name; the parser keeps what is there.
    assert ("pseek-v2-5-0-1", 627) in procs


def test_vllm_ib_tp_comms_stay_in_node_pp_comms_cross_it() -> None:
    facts = _corpus(VLLM_IB)
    driver = facts.comms.filter(pl.col("pid") == 5969)
    assert driver.select(
        "comm", "rank", "nranks", "nnodes", "local_ranks", "comm_id", "init_start_line",
        "init_complete_line",
    ).rows() == [
        ("0x4b8e2080", 0, 8, 1, 8, "0xc13f651b1c793497", 104, 241),
        ("0x524462e0", 0, 2, 2, 1, "0x9bdf58487a45133a", 287, 320),
        ("0x7ec4a8014c20", 0, 8, 1, 8, "0xda1101530f2d86b0", 595, 699),
        ("0x7ec4ab0772a0", 0, 2, 2, 1, "0xf3e517aa6c3e9c19", 707, 730),
    ]  # fmt: skip
    assert driver["func"].unique().to_list() == ["ncclCommInitRank"]
    assert driver["text"][0].startswith("deepseek-v2-5-0:5969:5969 [0] NCCL INFO ncclCommInitRank")
    # Every comm that printed its topology: 8 ranks on one node, 2 ranks on two nodes.
    topo = facts.comms.drop_nulls("nnodes").select("nranks", "nnodes").unique().sort("nranks")
    assert topo.rows() == [(2, 2), (8, 1)]
    # The TP comm ids seen on the leader and on the worker differ: two TP groups.
    tp_ids = facts.comms.filter(pl.col("nranks") == 8).group_by("comm_id").agg(pl.col("host"))
    assert len(tp_ids) == 4


def test_vllm_ib_transports_per_comm() -> None:
    facts = _corpus(VLLM_IB)
    links = _links_with_comms(facts).filter(
        (pl.col("pid") == 5969) & pl.col("kind").is_in(["channel", "p2p"])
    )
    by_comm = links.group_by("comm", "nranks", "nnodes", "kind").agg(
        pl.col("transport").unique().sort(), pl.len()
    )
    assert sorted(by_comm.rows()) == [
        ("0x4b8e2080", 8, 1, "channel", ["P2P/IPC/read"], 24),
        ("0x524462e0", 2, 2, "channel", ["NET/IB/0/GDRDMA"], 4),
        ("0x7ec4a8014c20", 8, 1, "channel", ["P2P/IPC/read"], 24),
        ("0x7ec4ab0772a0", 2, 2, "channel", ["NET/IB/0/GDRDMA"], 4),
        ("0x7ec4ab0772a0", 2, 2, "p2p", ["NET/IB/0/GDRDMA/Shared", "NET/IB/1/GDRDMA/Shared"], 2),
    ]
    first = links.row(0, named=True)
    assert first == {
        "host": "deepseek-v2-5-0",
        "pid": 5969,
        "comm": "0x4b8e2080",
        "channel": 0,
        "src": 0,
        "dst": 1,
        "kind": "channel",
        "transport": "P2P/IPC/read",
        "transport_class": "P2P",
        "line": 137,
        "nranks": 8,
        "nnodes": 1,
    }
    # A worker whose init lines survived the Ray folding: TP over P2P, PP over IB.
    worker = _links_with_comms(facts).filter((pl.col("pid") == 663) & (pl.col("kind") == "channel"))
    assert sorted(worker.select("nranks", "transport_class").unique().rows()) == [
        (2, "NET/IB"),
        (8, "P2P"),
    ]


def test_vllm_ib_ring_and_tree_edges() -> None:
    facts = _corpus(VLLM_IB)
    ring = facts.links.filter((pl.col("comm") == "0x4b8e2080") & (pl.col("kind") == "ring"))
    # 24 `Channel NN/24 :    0   1 … 7` lines (<= 2.22 padding), each a closed 8-ring.
    assert ring.height == 24 * 8
    assert ring.filter(pl.col("channel") == 0).select("src", "dst").rows() == [
        (i, (i + 1) % 8) for i in range(8)
    ]
    trees = facts.links.filter((pl.col("comm") == "0x4b8e2080") & (pl.col("kind") == "tree"))
    # Rank 0's `Trees [0] 1/-1/-1->0->-1 …` line is cut after channel 12 in the paste.
    assert trees.select("channel", "src", "dst").unique().sort("channel").rows() == [
        (c, 1, 0) for c in range(13)
    ]


def test_vllm_ib_network_and_env() -> None:
    facts = _corpus(VLLM_IB)
    net = facts.net.filter(pl.col("pid") == 5969).select("what", "value", "line")
    assert net.rows() == [
        ("bootstrap_if", "eth0:10.244.2.62<0>", 83),
        ("plugin", "No plugin found (libnccl-net.so)", 84),
        (
            "plugin",
            "Plugin load returned 2 : libnccl-net.so: cannot open shared object file: No such "
            "file or directory : when loading libnccl-net.so",
            85,
        ),
        ("plugin", "Using internal network plugin.", 86),
        (
            "ib_devices",
            "[0]mlx5_0:1/IB [1]mlx5_1:1/IB [2]mlx5_2:1/IB [3]mlx5_3:1/IB [4]mlx5_4:1/IB "
            "[5]mlx5_5:1/IB [6]mlx5_6:1/IB [7]mlx5_7:1/IB [RO]",
            100,
        ),
        ("network", "IB", 102),
        ("network", "IB", 276),
        ("network", "IB", 593),
        ("network", "IB", 705),
    ]
    assert set(facts.net.filter(pl.col("what") == "network")["value"]) == {"IB"}
    assert facts.env.filter(pl.col("pid") == 5969).drop("host", "pid").rows() == [
        ("NCCL_IB_DISABLE", "0", 99),
        ("NCCL_CUMEM_ENABLE", "0", 105),
        ("NCCL_NET_GDR_LEVEL", "SYS", 294),
    ]
    assert facts.warns.is_empty()
    assert facts.collectives.is_empty()


# --- the same job without InfiniBand: sockets ------------------------------------------


def test_vllm_noib_falls_back_to_sockets() -> None:
    facts = _corpus(VLLM_NOIB)
    assert set(facts.net.filter(pl.col("what") == "network")["value"]) == {"Socket"}
    no_ib = facts.net.filter(pl.col("what") == "no_ib_device")
    assert no_ib.select("pid", "value", "line").rows() == [
        (8845, "No device found", 87),
        (327, "No device found", 138),
        (330, "No device found", 202),  # `[repeated 14x across cluster]` stripped
    ]
    sockets = facts.net.filter(pl.col("what") == "socket_if").select("host", "value").unique()
    assert sorted(sockets.rows()) == [
        ("deepseek-v2-5-0", "[0]eth0:10.244.2.248<0>"),
        ("deepseek-v2-5-0-1", "[0]eth0:10.244.1.228<0>"),
    ]
    assert facts.net.filter(pl.col("what") == "ib_devices").is_empty()


def test_vllm_noib_pp_comm_over_socket_tp_comm_over_p2p() -> None:
    facts = _corpus(VLLM_NOIB)
    worker = facts.comms.filter(pl.col("pid") == 327)
    assert worker.select("comm", "rank", "nranks", "nnodes", "comm_id").rows() == [
        ("0x28e1a730", 0, 8, 1, "0xed2bb9fc5bc1a669"),
        ("0x2d4a3a10", 1, 2, 2, "0x7d4a6eff44836401"),
        ("0x4f2f85d0", 0, 8, 1, None),  # the paste ends before its Init COMPLETE line
    ]
    links = _links_with_comms(facts).filter((pl.col("pid") == 327) & (pl.col("kind") == "channel"))
    assert sorted(links.select("nranks", "nnodes", "transport").unique().rows()) == [
        (2, 2, "NET/Socket/0"),
        (8, 1, "P2P/IPC/read"),
    ]
    pp = links.filter(pl.col("nranks") == 2).select("channel", "src", "dst").rows()
    assert sorted(pp) == [(0, 0, 1), (0, 1, 0), (1, 0, 1), (1, 1, 0)]


# --- SGLang TP16 over two nodes: the hang with the NET/IB completion error --------------


def test_hang_sixteen_rank_comms() -> None:
    facts = _corpus(HANG)
    assert set(facts.comms["nranks"]) == {16}
    ids = facts.comms.group_by("host", "comm_id").agg(pl.col("rank").sort()).sort("host", "comm_id")
    assert ids.rows() == [
        ("tpgds-aihub0007", "0x221dee7fa4558566", [0, 2, 4, 6]),  # what the paste kept
        ("tpgds-aihub0007", "0x45a3a89de169ea18", list(range(8))),
        ("tpgds-aihub0008", "0x45a3a89de169ea18", list(range(8, 16))),
    ]
    node1 = facts.comms.filter(pl.col("host") == "tpgds-aihub0008")
    assert set(node1["nnodes"]) == {2}
    assert set(node1["local_ranks"]) == {8}
    assert sorted(node1["local_rank"]) == list(range(8))
    rank8 = node1.filter(pl.col("rank") == 8).row(0, named=True)
    assert (rank8["pid"], rank8["comm"], rank8["line"], rank8["init_complete_line"]) == (
        181411,
        "0x5584f0195160",
        378,
        563,
    )
    assert node1["init_complete_line"].null_count() == 0


def test_hang_ib_completion_warns_and_first_allreduce() -> None:
    facts = _corpus(HANG)
    assert facts.warns.select("host", "pid", "line").rows() == [
        ("tpgds-aihub0007", 185303, 121),
        ("tpgds-aihub0007", 196830, 336),
    ]
    assert all(
        "NET/IB: Got completion from peer 10.99.91.63" in text for text in facts.warns["text"]
    )
    assert facts.warns["text"][0].startswith("[2026-03-03 12:11:38] tpgds-aihub0007:185303:186751")
    first = facts.collectives.row(0, named=True)
    assert first == {
        "host": "tpgds-aihub0007",
        "pid": 177794,
        "comm": "0x558f79e65f00",
        "op": "AllReduce",
        "op_count": 0,
        "count": 1,
        "datatype": 7,
        "root": 0,
        "nranks": 16,
        "line": 7,
    }
    assert facts.collectives.height == 16
    assert set(facts.collectives.select("op", "op_count", "count", "nranks").rows()) == {
        ("AllReduce", 0, 1, 16)
    }


def test_hang_cross_node_links_are_ib() -> None:
    facts = _corpus(HANG)
    node1 = facts.links.filter(
        (pl.col("host") == "tpgds-aihub0008") & (pl.col("kind") == "channel")
    )
    assert set(node1["transport_class"]) == {"P2P", "NET/IB"}
    net = node1.filter(pl.col("transport_class") == "NET/IB")
    assert set(net["transport"]) == {"NET/IB/0/GDRDMA", "NET/IB/0(8)/GDRDMA"}  # PXN proxy
    # Every IB connection joins a rank of this node (8-15) with one of the other (0-7).
    assert net.height == 16
    assert ((net["src"] >= 8) != (net["dst"] >= 8)).all()


# --- SGLang decode node 0 of a PD setup, NCCL 2.29.3 ------------------------------------


def test_pd_version_and_rank_prefixed_init_start() -> None:
    facts = _corpus(PD)
    assert set(facts.procs.select("nccl_version", "cuda_version").rows()) == {("2.29.3", "13.1")}
    assert facts.procs.height == 8
    rank0 = facts.comms.filter(pl.col("rank") == 0).row(0, named=True)
    assert rank0["text"].startswith(
        "tpgds-aihub0003:3828976:3828976 [0] NCCL INFO "
        "[Rank 0] ncclCommInitRank comm 0x5621301a1640"
    )
    assert (rank0["comm_id"], rank0["nranks"], rank0["nnodes"], rank0["local_ranks"]) == (
        "0x35712f37c64c1510",
        16,
        2,
        8,
    )
    assert (rank0["init_start_line"], rank0["cuda_dev"], rank0["nvml_dev"], rank0["bus_id"]) == (
        175,
        0,
        0,
        "a000",
    )
    assert set(facts.comms["comm_id"]) == {"0x35712f37c64c1510"}


def test_pd_links_rings_and_network() -> None:
    facts = _corpus(PD)
    channels = facts.links.filter(pl.col("kind") == "channel")
    assert set(channels["transport_class"]) == {"P2P", "NET/IB"}
    assert set(channels.filter(pl.col("transport_class") == "P2P")["transport"]) == {"P2P/IPC"}
    # IB connections always cross to the other node's ranks (8-15).
    ib = channels.filter(pl.col("transport_class") == "NET/IB")
    assert ((ib["src"] >= 8) != (ib["dst"] >= 8)).all()
    ring = facts.links.filter(pl.col("kind") == "ring")
    first = ring.filter(pl.col("line") == ring["line"].min())
    assert first.height == 16  # a closed 16-ring: the list held every rank
    assert set(first["comm"]) == {"0x5621301a1640"}
    assert set(facts.net.filter(pl.col("what") == "network")["value"]) == {"IB"}
    ib_devices = facts.net.filter(pl.col("what") == "ib_devices")["value"]
    assert ib_devices[0].startswith("[0]mlx5_0:1/RoCE [1]mlx5_1:1/RoCE")


# --- every scheduler dies with connection refused ----------------------------------------


def test_refused_has_warns_but_no_comm() -> None:
    facts = _corpus(REFUSED)
    assert facts.comms.is_empty()
    assert facts.warns.height == 14
    assert set(facts.warns["host"]) == {"tpgds-aihub0003", "tpgds-aihub0006"}
    assert all(
        "connect to 10.82.101.249<37857> returned Connection refused" in text
        for text in facts.warns["text"]
    )
    assert facts.procs.height == 14


# --- node-rank-1 host of a TP16 decode instance, NCCL 2.27.5 -----------------------------


def test_nccl_init_one_comm_over_two_nodes() -> None:
    facts = _corpus(NCCL_INIT)
    comms = facts.comms
    assert comms.height == 8
    assert set(comms["comm_id"]) == {"0xde4443395863ef4a"}
    assert sorted(comms["rank"]) == list(range(8, 16))
    assert sorted(comms["local_rank"]) == list(range(8))
    assert set(comms.select("nranks", "nnodes", "local_ranks").rows()) == {(16, 2, 8)}
    assert comms["init_complete_line"].null_count() == 0
    assert set(facts.procs["nccl_version"]) == {"2.27.5"}
    assert set(facts.procs["host"]) == {"tpgds-aihub0008"}
    channels = facts.links.filter(pl.col("kind") == "channel")
    assert set(channels["transport_class"]) == {"P2P", "NET/IB"}
    assert channels["comm"].null_count() == 0
    plugins = facts.net.filter(pl.col("what") == "plugin")["value"]
    assert "Loaded net plugin AWS Libfabric (v6)" in plugins
    assert "Initialized NET plugin IB" in plugins
    assert facts.warns.is_empty()


# --- generated NCCL 2.28.9 logs with ground truth ----------------------------------------


def _group_key() -> pl.Expr:
    """Root comms join by commId, splits by (parent commId, splitCount, color)."""
    split = pl.concat_str(
        "parent_comm_id", pl.col("split_count").cast(pl.Utf8), pl.col("color").cast(pl.Utf8),
        separator="/",
    )  # fmt: skip
    return pl.coalesce("comm_id", split)


def _formed_groups(per_rank: dict[int, NcclFacts]) -> pl.DataFrame:
    comms = pl.concat(
        [facts.comms.with_columns(pl.lit(r).alias("global_rank")) for r, facts in per_rank.items()]
    )
    return (
        comms.with_columns(_group_key().alias("key"))
        .group_by("key")
        .agg(
            pl.col("global_rank").sort_by("rank"),
            pl.col("nranks").unique(),
            pl.col("line").min(),
        )
        .sort("line")
    )


def _truth(layout: str) -> list[dict]:
    return json.loads((GENERATED / layout / "layout.json").read_text())["groups_in_creation_order"]


def test_generated_megatron_split_comms_match_ground_truth() -> None:
    per_rank = _generated("megatron_tp2_pp2_dp2")
    groups = _formed_groups(per_rank)
    assert groups.height == 29
    for members, nranks in zip(groups["global_rank"], groups["nranks"], strict=True):
        assert nranks.to_list() == [len(members)]
    truth = _truth("megatron_tp2_pp2_dp2")
    nccl_truth = [g["ranks"] for g in truth if not g["group_desc"].endswith("_GLOO")]
    assert sorted(groups["global_rank"].to_list()) == sorted([list(range(8)), *nccl_truth])


def test_generated_megatron_every_split_names_parent_color_and_key() -> None:
    per_rank = _generated("megatron_tp2_pp2_dp2")
    for rank, facts in per_rank.items():
        comms = facts.comms
        world = comms.filter(pl.col("parent").is_null())
        assert world.select("func", "rank", "nranks", "comm_id").rows() == [
            ("ncclCommInitRankConfig", rank, 8, "0x8dd9d24455cd79ad")
        ]
        splits = comms.filter(pl.col("parent").is_not_null())
        assert splits.height == 7  # DP, CP, MP, TP, PP, EMBEDDING, TP x DP
        assert set(splits["func"]) == {"ncclCommSplit"}
        assert set(splits["parent"]) == {world["comm"][0]}
        assert set(splits["parent_comm_id"]) == {"0x8dd9d24455cd79ad"}
        assert (splits["key"] == splits["rank"]).all()  # torch splits with key = group rank
        assert splits["init_complete_line"].null_count() == 0
    rank0 = per_rank[0].comms.filter(pl.col("parent").is_not_null())
    assert rank0.select("comm", "nranks", "split_count", "color").rows() == [
        ("0x116c2c90", 2, 1, 1684518034),
        ("0x118f0680", 1, 8, 59908776),
        ("0x11d1f450", 4, 16, 1247566339),
        ("0x11e62fa0", 2, 18, 2130503744),
        ("0x120994c0", 2, 22, 923304772),  # PP [0,4] ...
        ("0x122c44b0", 2, 26, 923304772),  # ... and EMBEDDING [0,4]: same color, other count
        ("0x124f1ba0", 4, 30, 2003953581),
    ]
    # Members of one group agree on splitCount even though each rank counts its own calls.
    rank1 = per_rank[1].comms.filter(pl.col("parent").is_not_null())
    rank3 = per_rank[3].comms.filter(pl.col("parent").is_not_null())
    dp_of_rank1 = rank1.select("split_count", "color").row(0)
    assert dp_of_rank1 == rank3.select("split_count", "color").row(0)
    assert rank1["split_count"][0] == 2


def test_generated_sglang_root_comms_match_ground_truth() -> None:
    per_rank = _generated("sglang_tp8_attncp2_moeep4")
    groups = _formed_groups(per_rank)
    assert groups.height == 31
    device = [g for g in _truth("sglang_tp8_attncp2_moeep4") if g["group_desc"].endswith(":device")]
    # NCCL comms are created lazily and `world:device` never ran a collective; the two
    # `late_created:device` groups (pg 61, 62; see tests/data/generated/README.md) are not
    # in the list.
    formed = [g["ranks"] for g in device if g["group_desc"] != "world:device"]
    formed += [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert sorted(groups["global_rank"].to_list()) == sorted(formed)
    for facts in per_rank.values():
        assert facts.comms["parent"].null_count() == facts.comms.height
        assert set(facts.comms["func"]) == {"ncclCommInitRankConfig"}


def test_generated_desync_comms_collectives_and_warn() -> None:
    per_rank = _generated("fr_desync_tp2x2")
    groups = _formed_groups(per_rank)
    assert sorted(groups["global_rank"].to_list()) == [[0, 1], [2, 3]]
    rank2 = per_rank[2]
    assert rank2.comms.select("comm", "rank", "nranks", "nnodes", "comm_id").rows() == [
        ("0x2c325c20", 0, 2, 2, "0x6aaa27b12016c7b5")
    ]
    assert rank2.collectives.select("op", "op_count", "count", "nranks").rows() == [
        ("AllReduce", n, 1024, 2) for n in range(4)
    ]
    assert rank2.warns.select("line", "text").rows() == [
        (
            113,
            "[2026-11-29 05:38:08] vm:1473:1526 [0] misc/socket.cc:72 NCCL WARN socketProgress: "
            "Connection closed by remote peer localhost<57026>",
        )
    ]
    # Runtime connections come after the first collective and belong to its comm.
    conns = rank2.links.filter(pl.col("kind") == "channel")
    assert conns.select("comm", "channel", "src", "dst", "transport").rows() == [
        ("0x2c325c20", 0, 1, 0, "NET/Socket/0"),
        ("0x2c325c20", 1, 1, 0, "NET/Socket/0"),
        ("0x2c325c20", 0, 0, 1, "NET/Socket/0"),
        ("0x2c325c20", 1, 0, 1, "NET/Socket/0"),
    ]
    assert rank2.procs.row(0) == ("vm", 1473, [0], "2.28.9", "13.0", 1)
    assert rank2.env.select("var", "value").rows() == [
        ("NCCL_SOCKET_IFNAME", "lo"),
        ("NCCL_SOCKET_IFNAME", "lo"),
        ("NCCL_IB_DISABLE", "1"),
        ("NCCL_SOCKET_IFNAME", "lo"),
        ("NCCL_HOSTID", "vhost2"),
    ]


def test_generated_size_one_comm_ring_is_dropped_and_p2p_uses_conn_one() -> None:
    facts = _generated("megatron_tp2_pp2_dp2")[0]
    cp = facts.links.filter(pl.col("comm") == "0x118f0680")
    assert cp.is_empty()  # `Channel NN/64 : 0` and trees of one rank are no edges
    pp = facts.links.filter((pl.col("comm") == "0x120994c0") & (pl.col("kind") == "p2p"))
    assert set(pp["transport"]) == {"NET/Socket/0/Shared"}
    graph = facts.links.filter(
        (pl.col("comm") == "0x9eda590") & (pl.col("kind") == "ring") & (pl.col("channel") == 0)
    )
    # `Channel 00/02 : 0 1 … 7` (closed ring) and `Ring 00 : 7 -> 0 -> 1` (GRAPH).
    assert sorted(set(graph.select("src", "dst").rows())) == [(i, (i + 1) % 8) for i in range(8)]


# --- synthetic lines: each format variant ------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (  # 2.12-2.15: no nvmlDev, no commId, COMPLETE only
            "h:1:1 [0] NCCL INFO comm 0x55e0 rank 3 nranks 4 cudaDev 3 busId 1d000 - Init COMPLETE",
            {
                "func": None,
                "rank": 3,
                "nranks": 4,
                "cuda_dev": 3,
                "nvml_dev": None,
                "bus_id": "1d000",
                "comm_id": None,
                "init_complete_line": 1,
            },
        ),
        (  # 2.16-2.17: commId, still no nvmlDev
            "h:1:1 [0] NCCL INFO comm 0x55e0 rank 0 nranks 2 cudaDev 0 busId 1000 "
            "commId 0xabc - Init COMPLETE",
            {"nvml_dev": None, "comm_id": "0xabc"},
        ),
        (  # 2.18-2.20: nvmlDev, no function name
            "h:1:1 [1] NCCL INFO comm 0x55e0 rank 1 nranks 2 cudaDev 1 nvmlDev 5 busId 2000 "
            "commId 0xdef - Init START",
            {
                "func": None,
                "nvml_dev": 5,
                "comm_id": "0xdef",
                "init_start_line": 1,
                "init_complete_line": None,
            },
        ),
        (  # 2.21-2.22 split: parent, color, key and a commId
            "h:1:1 [0] NCCL INFO ncclCommSplit comm 0x77 rank 0 nranks 2 cudaDev 0 nvmlDev 0 "
            "busId 60 parent 0x66 color 5 key 0 commId 0x99 - Init COMPLETE",
            {
                "func": "ncclCommSplit",
                "parent": "0x66",
                "split_count": None,
                "color": 5,
                "key": 0,
                "comm_id": "0x99",
            },
        ),
        (  # 2.23: no splitCount, no commId, no space before "-"
            "h:1:1 [0] NCCL INFO ncclCommSplit comm 0x77 rank 1 nranks 4 cudaDev 0 nvmlDev 0 "
            "busId 60 parent 0x66 color -1 key 7- Init START",
            {"parent": "0x66", "split_count": None, "color": -1, "key": 7, "comm_id": None},
        ),
        (  # 2.24-2.28 split and shrink: splitCount
            "h:1:1 [0] NCCL INFO ncclCommShrink comm 0x77 rank 0 nranks 2 cudaDev 0 nvmlDev 0 "
            "busId 60 parent 0x66 splitCount 22 color 923304772 key 0- Init START",
            {"func": "ncclCommShrink", "split_count": 22, "color": 923304772},
        ),
        (  # 2.29+: childCount
            "h:1:1 [0] NCCL INFO ncclCommSplit comm 0x77 rank 0 nranks 2 cudaDev 0 nvmlDev 0 "
            "busId 60 parent 0x66 childCount 3 color 9 key 0 - Init COMPLETE",
            {"split_count": 3, "color": 9},
        ),
        (  # 2.29+ root START: `[Rank N]` in front
            "h:1:1 [0] NCCL INFO [Rank 12] ncclCommInitRankScalable comm 0x88 rank 12 nranks 16 "
            "cudaDev 4 nvmlDev 4 busId 9a000 commId 0x1234 - Init START",
            {"func": "ncclCommInitRankScalable", "rank": 12, "nranks": 16, "comm_id": "0x1234"},
        ),
        (  # topology line
            "h:1:1 [0] NCCL INFO comm 0x88 rank 12 nRanks 16 nNodes 2 localRanks 8 localRank 4 "
            "MNNVL 0",
            {"nnodes": 2, "local_ranks": 8, "local_rank": 4, "init_start_line": None},
        ),
    ],
)
def test_comm_line_variants(line: str, expected: dict) -> None:
    row = _lines(line).comms.row(0, named=True)
    assert {name: row[name] for name in expected} == expected
    assert row["host"] == "h" and row["pid"] == 1


@pytest.mark.parametrize(
    ("prefix", "host", "pid"),
    [
        ("", "node-a", 17),
        ("(RayWorkerWrapper pid=17, ip=10.0.0.2) ", "node-a", 17),
        ("[2026-01-13 12:11:38 TP3] ", "node-a", 17),
        ("0: ", "node-a", 17),
        ("[rank3]:", "node-a", 17),
        ("  RayWorkerWrapper pid=17) ", "node-a", 17),  # a paste that lost the "("
        ("[2026-11-29 05:38:08] ", "node-a", 17),
    ],
)
def test_prefixes_in_front_of_nccl_lines(prefix: str, host: str, pid: int) -> None:
    facts = _lines(
        f"{prefix}node-a:17:17 [3] NCCL INFO Using network IB",
        f"{prefix}node-a:17:99 [3] misc/socket.cc:72 NCCL WARN socketProgress: closed",
    )
    assert facts.net.select("host", "pid", "what", "value").rows() == [(host, pid, "network", "IB")]
    assert facts.warns.select("host", "pid", "line").rows() == [(host, pid, 2)]
    assert facts.procs.select("host", "pid", "devs").rows() == [(host, pid, [3])]


def test_lines_that_are_not_nccl_info_or_warn_are_ignored() -> None:
    facts = _lines(
        "h:1:1 [0] 12.345 enqueue.cc:10 NCCL TRACE AllReduce: opCount 0 sendbuff 0x1",
        "h:1:1 NCCL CALL ncclAllReduce(...)",
        "ordinary NCCL INFO text without a writer",
        "sglang is using nccl==2.27.5",
        "h:1:1 [0] NCCL INFO",  # cut right after the level: the process still counts
    )
    assert facts.procs.select("host", "pid", "first_line").rows() == [("h", 1, 5)]
    for frame in (facts.comms, facts.links, facts.net, facts.collectives, facts.warns, facts.env):
        assert frame.is_empty()


def test_connection_variants() -> None:
    p = "h:1:1 [0] NCCL INFO "
    facts = _lines(
        p + "ncclCommInitRank comm 0x10 rank 0 nranks 4 cudaDev 0 busId 1 commId 0x1 - Init START",
        p + "Channel 00/0 : 0[0] -> 1[1] via P2P/IPC",
        p + "Channel 01/0 : 0[0] -> 1[1] via P2P/CUMEM/read",
        p + "Channel 02/0 : 0[0] -> 1[0] via P2P/direct pointer",
        p + "Channel 03 : 0[0] -> 1[1] via SHM/direct/direct",
        p + "Channel 04/0 : 3[3] -> 4[4] [send] via NET/IB/0/GDRDMA",
        p + "Channel 04/0 : 4[4] -> 3[3] [receive] via NET/IB/1(0)/GDRDMA",
        p + "Channel 05/0 : 0[0] -> 2[2] [send] via NET/Socket/0",
        p + "Channel 06/0 : 0[0] -> 2[2] [send] via NET/AWS Libfabric/0/GDRDMA",
        p + "Channel 07/1 : 0[0] -> 3[3] [send] via NET/IB/0/GDRDMA/Shared",
        p + "Channel 08/0 : 0[0] -> 1[1] via P2P/indirect/2[2]",
        p + "CollNet 00/0 : 0 [send] via COLLNET/SHARP/0/GDRDMA",
        p + "Channel 23/0 : 1[1] -> 2[2] via P",  # cut by the paste
        p + "Channel 23/0 : 1[1] -",
        p + "Channel 09/0 : 0[0] -> 1[1] via P2P/IPC [repeated 479x across cluster]",
    )
    rows = facts.links.select("channel", "src", "dst", "kind", "transport", "transport_class")
    assert rows.rows() == [
        (0, 0, 1, "channel", "P2P/IPC", "P2P"),
        (1, 0, 1, "channel", "P2P/CUMEM/read", "P2P"),
        (2, 0, 1, "channel", "P2P/direct pointer", "P2P"),
        (3, 0, 1, "channel", "SHM/direct/direct", "SHM"),
        (4, 3, 4, "channel", "NET/IB/0/GDRDMA", "NET/IB"),
        (4, 4, 3, "channel", "NET/IB/1(0)/GDRDMA", "NET/IB"),
        (5, 0, 2, "channel", "NET/Socket/0", "NET/Socket"),
        (6, 0, 2, "channel", "NET/AWS Libfabric/0/GDRDMA", "NET/AWS Libfabric"),
        (7, 0, 3, "p2p", "NET/IB/0/GDRDMA/Shared", "NET/IB"),
        (8, 0, 1, "channel", "P2P/indirect/2[2]", "P2P"),
        (0, 0, None, "collnet", "COLLNET/SHARP/0/GDRDMA", "COLLNET"),
        (9, 0, 1, "channel", "P2P/IPC", "P2P"),
    ]
    assert set(facts.links["comm"]) == {"0x10"}


def test_ring_lists_close_only_when_complete() -> None:
    p = "h:1:1 [0] NCCL INFO "
    twenty_two = " ".join(f"{r:3d}" for r in range(20))  # <= 2.22 stops at 20 ranks
    long_list = " ".join(f"{r:2d}" for r in range(40))[:104] + "..."  # >= 2.23 cut at 128
    facts = _lines(
        p + "comm 0x10 rank 0 nRanks 4 nNodes 1 localRanks 4 localRank 0 MNNVL 0",
        p + "Channel 00/02 :    0   1   2   3" + " " * 20,
        p + "comm 0x20 rank 0 nRanks 24 nNodes 3 localRanks 8 localRank 0 MNNVL 0",
        p + "Channel 00/02 :" + twenty_two,
        p + "comm 0x30 rank 0 nRanks 40 nNodes 5 localRanks 8 localRank 0 MNNVL 0",
        p + "Channel 00/02 :" + long_list,
    )
    rings = facts.links.filter(pl.col("kind") == "ring")
    small = rings.filter(pl.col("comm") == "0x10").select("src", "dst").rows()
    assert small == [(0, 1), (1, 2), (2, 3), (3, 0)]
    cut20 = rings.filter(pl.col("comm") == "0x20").select("src", "dst").rows()
    assert cut20 == [(r, r + 1) for r in range(19)]  # no 19 -> 0: ranks 20-23 missing
    cut = rings.filter(pl.col("comm") == "0x30").select("src", "dst").rows()
    assert cut == [(r, r + 1) for r in range(33)]  # 0-34 shown, "34..." may be cut: dropped


def test_ring_and_tree_graph_lines() -> None:
    p = "h:1:1 [2] NCCL INFO "
    facts = _lines(
        p + "comm 0x10 rank 2 nRanks 4 nNodes 1 localRanks 4 localRank 2 MNNVL 0",
        p + "Ring 00 : 1 -> 2 -> 3",
        p + "Tree 0 : -1 -> 2 -> 3/-1/-1",
        p + "Trees [0] 3/-1/-1->2->1 [1] -1/-1/-1->2->-1",
    )
    rows = facts.links.select("channel", "src", "dst", "kind", "line").rows()
    assert rows == [
        (0, 1, 2, "ring", 2),
        (0, 2, 3, "ring", 2),
        (0, 3, 2, "tree", 3),
        (0, 3, 2, "tree", 4),
        (0, 2, 1, "tree", 4),
    ]


def test_network_facts() -> None:
    p = "h:1:1 [0] NCCL INFO "
    facts = _lines(
        p + "Bootstrap : Using eth0:10.0.0.1<0>",
        p + "Bootstrap: Using ib0:10.1.0.1<0>",
        p + "NET/Plugin : No plugin found, using internal implementation",
        p + "NET/Plugin: Loaded net plugin AWS Libfabric (v6)",
        p + "Failed to initialize NET plugin IB",
        p + "NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/RoCE [RO]; OOB eth0:10.0.0.1<0>",
        p + "NET/IB : No device found.",
        p + "NET/Socket : Using [0]eth0:10.0.0.1<0> [1]eth1:10.0.1.1<0>",
        p + "Using network Socket",
        p + "NET/IB: [2] mlx5_2:uverbs2:1/RoCE provider=Mlx5 speed=400000",  # not a fact kind
    )
    assert facts.net.select("what", "value").rows() == [
        ("bootstrap_if", "eth0:10.0.0.1<0>"),
        ("bootstrap_if", "ib0:10.1.0.1<0>"),
        ("plugin", "No plugin found, using internal implementation"),
        ("plugin", "Loaded net plugin AWS Libfabric (v6)"),
        ("plugin", "Failed to initialize NET plugin IB"),
        ("ib_devices", "[0]mlx5_0:1/IB [1]mlx5_1:1/RoCE [RO]"),
        ("no_ib_device", "No device found"),
        ("socket_if", "[0]eth0:10.0.0.1<0> [1]eth1:10.0.1.1<0>"),
        ("network", "Socket"),
    ]


def test_env_lines() -> None:
    p = "h:1:1 [0] NCCL INFO "
    facts = _lines(
        p + "NCCL_IB_DISABLE set by environment to 1.",
        p + "NCCL_SOCKET_IFNAME set by environment to =eth0",
        p + "NCCL_IB_HCA set to mlx5_0,mlx5_1",
        p + "NCCL_P2P_LEVEL set by environment to NVL [repeated 7x across cluster]",
        p + "Comm config Blocking set to 1",
    )
    assert facts.env.select("var", "value", "line").rows() == [
        ("NCCL_IB_DISABLE", "1", 1),
        ("NCCL_SOCKET_IFNAME", "=eth0", 2),
        ("NCCL_IB_HCA", "mlx5_0,mlx5_1", 3),
        ("NCCL_P2P_LEVEL", "NVL", 4),
    ]


def test_versions_prefixed_and_bare() -> None:
    facts = _lines(
        "NCCL version 2.21.5+cuda12.4",  # before any line of its process: the next one's
        "a:1:1 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>",
        "(Worker pid=2, ip=10.0.0.2) b:2:2 [1] NCCL INFO cudaDriverVersion 12080",
        "a:1:1 [0] NCCL INFO cudaDriverVersion 12080",
        "(Worker pid=2, ip=10.0.0.2) NCCL version 2.21.6a0+cuda12.2",
        "c:3:3 [2] NCCL INFO NCCL version 2.28.9+cuda13.0",
    )
    assert facts.procs.select("host", "pid", "nccl_version", "cuda_version").rows() == [
        ("a", 1, "2.21.5", "12.4"),
        ("b", 2, "2.21.6a0", "12.2"),
        ("c", 3, "2.28.9", "13.0"),
    ]


def test_collective_lines() -> None:
    p = "h:1:1 [0] NCCL INFO "
    facts = _lines(
        p + "AllReduce: opCount 1a sendbuff 0x7f recvbuff 0x7f count 4096 datatype 7 op 0 "
        "root 0 comm 0x10 [nranks=16] stream 0x5",
        p + "Send: opCount 2 sendbuff 0x7f recvbuff (nil) count 512 datatype 9 op 0 root 3 "
        "comm 0x20 [nranks=2] stream (nil)",
        p + "AllReduce: 4096 Bytes -> Algo RING proto LL channel{Lo..Hi}={0..0}",
    )
    assert facts.collectives.drop("host", "pid").rows() == [
        ("0x10", "AllReduce", 26, 4096, 7, 0, 16, 1),
        ("0x20", "Send", 2, 512, 9, 3, 2, 2),
    ]


def test_reused_comm_pointer_starts_a_new_row() -> None:
    p = "h:1:1 [0] NCCL INFO "
    start = "ncclCommInitRank comm 0x10 rank 0 nranks 2 cudaDev 0 busId 1 commId {} - Init {}"
    facts = _lines(
        p + start.format("0xa", "START"),
        p + start.format("0xa", "COMPLETE"),
        p + "comm 0x10 rank 0 nranks 2 cudaDev 0 busId 1 - Destroy COMPLETE",
        p + start.format("0xb", "START"),
        p + "comm 0x10 rank 0 nRanks 2 nNodes 2 localRanks 1 localRank 0 MNNVL 0",
        p + start.format("0xb", "COMPLETE"),
    )
    assert facts.comms.select(
        "comm", "comm_id", "nnodes", "init_start_line", "init_complete_line", "line"
    ).rows() == [("0x10", "0xa", None, 1, 2, 1), ("0x10", "0xb", 2, 4, 6, 4)]


def test_split_parent_comm_id_comes_from_the_same_process() -> None:
    p = "h:{0}:{0} [0] NCCL INFO "
    root = "ncclCommInitRank comm 0x10 rank {1} nranks 2 cudaDev 0 busId 1 commId 0xfeed - Init"
    root += " START"
    split = (
        "ncclCommSplit comm 0x20 rank 0 nranks 1 cudaDev 0 nvmlDev 0 busId 1 parent 0x10 "
        "splitCount 1 color {1} key {1}- Init START"
    )
    facts = _lines(
        (p + root).format(1, 0),
        (p + root).format(2, 1).replace("0xfeed", "0xbeef"),
        (p + split).format(1, 0),
        (p + split).format(2, 1),
    )
    splits = facts.comms.filter(pl.col("parent").is_not_null())
    assert splits.select("pid", "parent_comm_id", "color", "key").rows() == [
        (1, "0xfeed", 0, 0),
        (2, "0xbeef", 1, 1),
    ]


def test_comm_context_of_connection_lines() -> None:
    p = "h:1:{} [0] NCCL INFO "
    init = "ncclCommInitRank comm {} rank 0 nranks 2 cudaDev 0 busId 1 commId 0x1 - Init {}"
    facts = _lines(
        p.format(1) + init.format("0xa", "START"),
        p.format(1) + "Channel 00/0 : 0[0] -> 1[1] via P2P/IPC",  # inside 0xa's init
        p.format(1) + init.format("0xa", "COMPLETE"),
        p.format(1) + "AllReduce: opCount 0 sendbuff 0x1 recvbuff 0x1 count 1 datatype 7 op 0 "
        "root 0 comm 0xb [nranks=2] stream 0x1",
        p.format(1) + "Channel 00/0 : 0[0] -> 1[1] [send] via NET/Socket/0",  # lazy connect
        p.format(1) + "AllReduce: opCount 1 sendbuff 0x1 recvbuff 0x1 count 1 datatype 7 op 0 "
        "root 0 comm 0xb [nranks=2] stream 0x1",
        p.format(1) + "Channel 00/0 : 0[0] -> 1[1] [send] via NET/IB/0/GDRDMA",  # START lost
        p.format(1) + init.format("0xc", "COMPLETE"),
        p.format(7) + "Channel 00/1 : 0[0] -> 1[1] [send] via NET/IB/0/GDRDMA/Shared",
    )
    assert facts.links.select("comm", "transport").rows() == [
        ("0xa", "P2P/IPC"),
        ("0xb", "NET/Socket/0"),
        ("0xc", "NET/IB/0/GDRDMA"),
        ("0xc", "NET/IB/0/GDRDMA/Shared"),  # a thread naming no comm: its process's last
    ]


def test_empty_and_nccl_free_input() -> None:
    facts = _lines("hello", "world")
    for frame in (facts.procs, facts.env, facts.comms, facts.links, facts.net):
        assert frame.is_empty()
    assert facts.comms.schema["nranks"] == pl.Int64
    assert facts.links.schema["dst"] == pl.Int64
    assert facts.path == "synthetic.log"


def test_sniff() -> None:
    assert sniff_nccl("x\nnode:1:2 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>\n")
    assert sniff_nccl("[ts] node:1:2 [0] misc/socket.cc:72 NCCL WARN oops\n")
    assert sniff_nccl("NCCL version 2.21.5+cuda12.4\n")
    assert not sniff_nccl("INFO 04-20 vLLM is using nccl==2.21.5\nNCCL_DEBUG=INFO python x.py\n")
    assert not sniff_nccl("x" * 70_000 + "node:1:2 [0] NCCL INFO late")
