"""server_args= lines: the real 0.5.8 dataclass repr, the v0.5.23 dict form, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from parsers.server_args import parse_server_args

CORPUS = Path(__file__).parent / "data" / "corpus"


def _real_line() -> str:
    text = (CORPUS / "dsr1-pd-decode-tp16-2node-nccl-info.log").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if "server_args=ServerArgs(" in line)
    return line.split("server_args=", 1)[1]


def test_real_dataclass_repr_from_an_sglang_0_5_8_decode_node() -> None:
    args = parse_server_args(_real_line())
    assert args["tp_size"] == 16
    assert args["nnodes"] == 2
    assert args["node_rank"] == 0
    assert args["dp_size"] == 1
    assert args["ep_size"] == 1
    assert args["pp_size"] == 1
    assert args["enable_dp_attention"] is False
    assert args["disaggregation_mode"] == "decode"
    assert args["dist_init_addr"] == "10.99.91.49:5000"
    assert args["moe_dense_tp_size"] is None
    assert args["cuda_graph_bs"][:4] == [1, 2, 4, 8]
    assert args["mm_process_config"] == {}
    assert args["model_loader_extra_config"] == "{}"
    assert args["forward_hooks"] is None
    assert len(args) > 300


def test_dict_form_of_v0_5_23() -> None:
    text = (
        "{'model_path': '/models/DeepSeek-V4.1-Flash', 'dist_init_addr': '192.168.1.3:20000', "
        "'nnodes': 3, 'node_rank': 0, 'tp_size': 3, 'dcp_size': 1, 'pp_size': 1, 'dp_size': 1, "
        "'attn_cp_size': 1, 'moe_dp_size': 1, 'enable_dp_attention': False, 'api_key': "
        "'[REDACTED]', 'cuda_graph_config': {'decode': {'backend': 'full', 'bs': [1, 2, 3]}}, "
        "'ep_size': 3, 'pre_warm_nccl': False}"
    )
    args = parse_server_args(text)
    assert args["tp_size"] == 3
    assert args["ep_size"] == 3
    assert args["nnodes"] == 3
    assert args["api_key"] == "[REDACTED]"
    assert args["cuda_graph_config"] == {"decode": {"backend": "full", "bs": [1, 2, 3]}}


def test_commas_parens_quotes_and_escapes_inside_strings() -> None:
    text = (
        "ServerArgs(a='x, (y', b=\"it's, [odd\", c='it\\'s', d='}{)(', "
        "e='ends with backslash \\\\', f=1)"
    )
    assert parse_server_args(text) == {
        "a": "x, (y",
        "b": "it's, [odd",
        "c": "it's",
        "d": "}{)(",
        "e": "ends with backslash \\",
        "f": 1,
    }


def test_nested_containers_and_numbers() -> None:
    text = "ServerArgs(x={'k': [1, (2, 3)], 'j': {'z': None}}, y=[], z=0.48, w=-1, v=(1,))"
    assert parse_server_args(text) == {
        "x": {"k": [1, (2, 3)], "j": {"z": None}},
        "y": [],
        "z": 0.48,
        "w": -1,
        "v": (1,),
    }


def test_non_literal_values_are_kept_as_raw_text() -> None:
    text = (
        "ServerArgs(speculative_algorithm=<SpeculativeAlgorithm.NONE: 1>, "
        "b=SpeculativeAlgorithm.NONE, c=PosixPath('/tmp/x, y'), "
        "d=<object at 0x7f, (x)>, tp_size=2)"
    )
    assert parse_server_args(text) == {
        "speculative_algorithm": "<SpeculativeAlgorithm.NONE: 1>",
        "b": "SpeculativeAlgorithm.NONE",
        "c": "PosixPath('/tmp/x, y')",
        "d": "<object at 0x7f, (x)>",
        "tp_size": 2,
    }


def test_enum_repr_in_dict_form() -> None:
    assert parse_server_args("{'algo': <Algo.EAGLE: 'a, b'>, 'tp_size': 4,}") == {
        "algo": "<Algo.EAGLE: 'a, b'>",
        "tp_size": 4,
    }


def test_empty_argument_list_is_empty() -> None:
    assert parse_server_args("ServerArgs()") == {}
    assert parse_server_args("  {}  ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ServerArgs(tp_size=16, nnodes=2, dist_init_addr='10.0", "unterminated string"),
        ("ServerArgs(tp_size=16, nnodes=2", "unterminated server_args"),
        ("{'tp_size': 16, 'x': [1, 2", "unterminated server_args"),
        ("tp_size=16", "must start with"),
        ("ServerArgs(tp_size=16))", "unexpected text"),
        ("ServerArgs(a=[1)", "unbalanced"),
        ("ServerArgs(a=1,,b=2)", "empty item"),
        ("ServerArgs(tp_size)", "without '='"),
        ("ServerArgs(tp_size=)", "without a value"),
        ("ServerArgs(1x=2)", "field name"),
        ("{1: 2}", "not a string"),
    ],
)
def test_bad_input_raises_a_short_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_server_args(text)


def test_truncated_real_line_is_rejected() -> None:
    line = _real_line()
    with pytest.raises(ValueError, match="unterminated"):
        parse_server_args(line[: len(line) // 2])


def test_never_evaluates_code() -> None:
    args = parse_server_args("ServerArgs(x=__import__('os').system('false'), y=1)")
    assert args == {"x": "__import__('os').system('false')", "y": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ServerArgs(a=1 , b='x,y', c=<E.V: 1>, d=-2, e=1e-05)",
         {"a": 1, "b": "x,y", "c": "<E.V: 1>", "d": -2, "e": 1e-05}),
        ("ServerArgs(a='it\\'s', b=[1, 'x,y'], c=None,)",
         {"a": "it's", "b": [1, "x,y"], "c": None}),
        ("{'a': 'p', 'b': {'k': 1}, 'c': True}", {"a": "p", "b": {"k": 1}, "c": True}),
    ],
)  # fmt: skip
def test_plain_and_nested_fields_side_by_side(text: str, expected: dict[str, object]) -> None:
    """Plain fields are cut in one step, the others token by token: both read alike."""
    assert parse_server_args(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ServerArgs(a: 1)", "without '='"),
        ("{a: 1}", "bad server_args key"),
        ("ServerArgs(a=1, , b=2)", "empty item"),
        ("ServerArgs(a=1}", "unbalanced"),
        ("ServerArgs(a=1) x", "unexpected text"),
    ],
)
def test_plain_fields_in_the_wrong_form_still_fail(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_server_args(text)
