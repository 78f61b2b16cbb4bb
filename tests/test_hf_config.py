"""Model facts: config.json parsing, the HF cache, the bundled table and their order."""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path

import pytest

from parsers.hf_config import ModelConfigError, ModelFacts, load_config_json, resolve_model

LLAMA_8B = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the developer's real HF cache out of every test."""
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    return hub


def write_config(folder: Path, config: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def cache_snapshot(hub: Path, repo_id: str, config: dict, commit: str = "abc123") -> Path:
    org, name = repo_id.split("/")
    repo = hub / f"models--{org}--{name}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return write_config(repo / "snapshots" / commit, config)


# --- bundled table -------------------------------------------------------------------------


def test_table_deepseek_v32_has_the_published_shape() -> None:
    facts = resolve_model("deepseek-ai/DeepSeek-V3.2")
    assert facts == ModelFacts(
        name="deepseek-ai/DeepSeek-V3.2",
        source="bundled table (deepseek-ai/DeepSeek-V3.2)",
        architectures=("DeepseekV32ForCausalLM",),
        hidden_size=7168,
        num_hidden_layers=61,
        num_attention_heads=128,
        num_key_value_heads=128,
        n_routed_experts=256,
        moe_intermediate_size=2048,
        kv_lora_rank=512,
        dtype_bytes=2,
        vocab_size=129280,
    )
    assert facts.is_moe and facts.is_mla


def test_table_matches_repo_id_case_insensitively() -> None:
    facts = resolve_model("DEEPSEEK-AI/deepseek-r1")
    assert facts is not None
    assert facts.name == "deepseek-ai/DeepSeek-R1"
    assert facts.architectures == ("DeepseekV3ForCausalLM",)


def test_table_matches_local_folder_named_like_a_known_model() -> None:
    # The path from the real 2-node decode log; the folder does not exist here.
    facts = resolve_model("/app/models/Deepseek-R1/")
    assert facts is not None
    assert facts.name == "deepseek-ai/DeepSeek-R1"
    assert facts.source == "bundled table (deepseek-ai/DeepSeek-R1)"


def test_table_matches_hf_cache_path_from_another_machine() -> None:
    path = (
        "/root/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3.1-8B-Instruct"
        "/snapshots/0e9e39f249a16976918f6564b8830bc894c89659"
    )
    facts = resolve_model(path)
    assert facts is not None
    assert facts.name == "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize(
    ("repo_id", "heads", "kv_heads", "experts", "moe_inter", "mla"),
    [
        ("moonshotai/Kimi-K2-Instruct", 64, 64, 384, 2048, True),
        ("Qwen/Qwen3-235B-A22B", 64, 4, 128, 1536, False),
        ("Qwen/Qwen3-30B-A3B", 32, 4, 128, 768, False),
        ("meta-llama/Llama-3.1-70B", 64, 8, None, None, False),
        ("meta-llama/Llama-3.1-405B-Instruct", 128, 8, None, None, False),
        ("mistralai/Mixtral-8x7B-v0.1", 32, 8, 8, 14336, False),
        ("THUDM/GLM-4.5", 96, 8, 160, 1536, False),
        ("zai-org/GLM-4.5-Air", 96, 8, 128, 1408, False),
        ("openai/gpt-oss-120b", 64, 8, 128, 2880, False),
    ],
)
def test_table_entries(
    repo_id: str,
    heads: int,
    kv_heads: int,
    experts: int | None,
    moe_inter: int | None,
    mla: bool,
) -> None:
    facts = resolve_model(repo_id)
    assert facts is not None
    assert (facts.num_attention_heads, facts.num_key_value_heads) == (heads, kv_heads)
    assert (facts.n_routed_experts, facts.moe_intermediate_size) == (experts, moe_inter)
    assert facts.is_moe == (experts is not None)
    assert facts.is_mla == mla


def test_table_names_are_unambiguous() -> None:
    """A folder name must never match two different entries."""
    text = resources.files("parsers").joinpath("models.json").read_text(encoding="utf-8")
    entries = json.loads(text)["models"]
    owners: dict[str, set[str]] = {}
    for entry in entries:
        for repo_id in (entry["id"], *entry.get("aliases", ())):
            owners.setdefault(repo_id.rsplit("/", 1)[-1].lower(), set()).add(entry["id"])
    assert {name: ids for name, ids in owners.items() if len(ids) > 1} == {}
    for entry in entries:
        assert resolve_model(entry["id"]) is not None


def test_unknown_model_is_none() -> None:
    assert resolve_model("someone/SomeModel-7B") is None
    assert resolve_model("/data/weights/my-finetune") is None
    assert resolve_model(None) is None
    assert resolve_model("") is None


# --- config.json on disk -------------------------------------------------------------------


def test_local_config_json(tmp_path: Path) -> None:
    path = write_config(tmp_path / "Llama-8B-local", LLAMA_8B)
    facts = load_config_json(path)
    assert facts.name == "Llama-8B-local"
    assert facts.source == str(path)
    assert facts.num_key_value_heads == 8
    assert not facts.is_moe and not facts.is_mla


def test_local_folder_beats_the_table(tmp_path: Path) -> None:
    # A trimmed test checkpoint named like a published model keeps its own shape.
    folder = tmp_path / "DeepSeek-V3"
    write_config(folder, {**LLAMA_8B, "num_hidden_layers": 4})
    facts = resolve_model(str(folder) + "/")
    assert facts is not None
    assert facts.name == "DeepSeek-V3"
    assert facts.num_hidden_layers == 4
    assert facts.source == str(folder / "config.json")


def test_explicit_model_config_beats_everything(tmp_path: Path) -> None:
    path = write_config(tmp_path / "override", {**LLAMA_8B, "num_attention_heads": 48})
    facts = resolve_model("deepseek-ai/DeepSeek-V3", model_config=path)
    assert facts is not None
    assert facts.num_attention_heads == 48


def test_kv_heads_fall_back_to_attention_heads(tmp_path: Path) -> None:
    config = {k: v for k, v in LLAMA_8B.items() if k != "num_key_value_heads"}
    facts = load_config_json(write_config(tmp_path / "m", config))
    assert facts.num_key_value_heads == 32


def test_expert_key_spellings_and_dense_single_expert(tmp_path: Path) -> None:
    qwen = {**LLAMA_8B, "num_experts": 64, "moe_intermediate_size": 512}
    assert load_config_json(write_config(tmp_path / "q", qwen)).n_routed_experts == 64
    mixtral = {**LLAMA_8B, "num_local_experts": 8, "intermediate_size": 14336}
    facts = load_config_json(write_config(tmp_path / "x", mixtral))
    assert (facts.n_routed_experts, facts.moe_intermediate_size) == (8, 14336)
    dense = {**LLAMA_8B, "n_routed_experts": 1, "moe_intermediate_size": 512}
    facts = load_config_json(write_config(tmp_path / "d", dense))
    assert (facts.n_routed_experts, facts.moe_intermediate_size, facts.is_moe) == (
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("dtype_key", "dtype", "expected"),
    [
        ("torch_dtype", "bfloat16", 2),
        ("torch_dtype", "float16", 2),
        ("torch_dtype", "float32", 4),
        ("dtype", "float32", 4),
        ("torch_dtype", "float8_e4m3fn", 2),
    ],
)
def test_dtype_bytes(tmp_path: Path, dtype_key: str, dtype: str, expected: int) -> None:
    config = {k: v for k, v in LLAMA_8B.items() if k != "torch_dtype"}
    config[dtype_key] = dtype
    assert load_config_json(write_config(tmp_path / "m", config)).dtype_bytes == expected


def test_nested_text_config(tmp_path: Path) -> None:
    config = {
        "architectures": ["KimiK25ForConditionalGeneration"],
        "model_type": "kimi_k25",
        "vision_config": {"num_hidden_layers": 27, "hidden_size": 1152},
        "text_config": {
            "hidden_size": 7168,
            "num_hidden_layers": 61,
            "num_attention_heads": 64,
            "num_key_value_heads": 64,
            "kv_lora_rank": 512,
            "n_routed_experts": 384,
            "moe_intermediate_size": 2048,
            "vocab_size": 163840,
            "dtype": "bfloat16",
        },
    }
    facts = load_config_json(write_config(tmp_path / "Kimi-K2.5", config))
    assert facts.architectures == ("KimiK25ForConditionalGeneration",)
    assert (facts.hidden_size, facts.num_hidden_layers, facts.n_routed_experts) == (7168, 61, 384)
    assert facts.is_mla


def test_top_level_wins_over_text_config(tmp_path: Path) -> None:
    config = {**LLAMA_8B, "text_config": {"num_hidden_layers": 2, "vocab_size": 10}}
    facts = load_config_json(write_config(tmp_path / "m", config))
    assert (facts.num_hidden_layers, facts.vocab_size) == (32, 128256)


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path / "broken", '{\n  "hidden_size": 4096,\n  "vocab_size": ,\n}\n')
    with pytest.raises(ModelConfigError) as info:
        load_config_json(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message


def test_bad_json_through_resolve_model(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    write_config(folder, "{")
    with pytest.raises(ModelConfigError, match="line 1"):
        resolve_model(str(folder))


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match=re.escape("nope.json")):
        resolve_model(None, model_config=tmp_path / "nope.json")


@pytest.mark.parametrize(
    "config",
    [
        '["not", "an", "object"]',
        '{"hidden_size": "4096"}',
        '{"architectures": "Llama"}',
        '{"architectures": 5}',
    ],
)
def test_wrong_shapes_are_errors(tmp_path: Path, config: str) -> None:
    path = write_config(tmp_path / "m", config)
    with pytest.raises(ModelConfigError, match=re.escape(str(path))):
        load_config_json(path)


# --- Hugging Face cache --------------------------------------------------------------------


def test_hf_cache_via_hf_hub_cache(empty_hf_cache: Path) -> None:
    path = cache_snapshot(empty_hf_cache, "deepseek-ai/DeepSeek-V3", {**LLAMA_8B, "vocab_size": 7})
    facts = resolve_model("deepseek-ai/DeepSeek-V3")
    assert facts is not None
    assert facts.vocab_size == 7  # the cached file, not the table
    assert facts.name == "deepseek-ai/DeepSeek-V3"
    assert facts.source == str(path)


def test_hf_cache_via_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cache_snapshot(tmp_path / "hf" / "hub", "acme/Tiny-1B", LLAMA_8B)
    facts = resolve_model("acme/Tiny-1B")
    assert facts is not None and facts.name == "acme/Tiny-1B"


def test_hf_cache_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache_snapshot(tmp_path / "home" / ".cache" / "huggingface" / "hub", "acme/Tiny-1B", LLAMA_8B)
    facts = resolve_model("ACME/tiny-1b")
    assert facts is not None and facts.hidden_size == 4096


def test_hf_cache_prefers_main_ref(empty_hf_cache: Path) -> None:
    cache_snapshot(empty_hf_cache, "acme/Tiny-1B", {**LLAMA_8B, "vocab_size": 1}, commit="old")
    newer = cache_snapshot(
        empty_hf_cache, "acme/Tiny-1B", {**LLAMA_8B, "vocab_size": 2}, commit="other"
    )
    (empty_hf_cache / "models--acme--Tiny-1B" / "refs" / "main").write_text("old\n")
    os.utime(newer, (2_000_000_000, 2_000_000_000))
    facts = resolve_model("acme/Tiny-1B")
    assert facts is not None and facts.vocab_size == 1


def test_hf_cache_without_ref_takes_newest_snapshot(empty_hf_cache: Path) -> None:
    old = cache_snapshot(empty_hf_cache, "acme/Tiny-1B", {**LLAMA_8B, "vocab_size": 1}, "a")
    new = cache_snapshot(empty_hf_cache, "acme/Tiny-1B", {**LLAMA_8B, "vocab_size": 2}, "b")
    (empty_hf_cache / "models--acme--Tiny-1B" / "refs" / "main").unlink()
    os.utime(old, (1_000_000_000, 1_000_000_000))
    os.utime(new, (2_000_000_000, 2_000_000_000))
    facts = resolve_model("acme/Tiny-1B")
    assert facts is not None and facts.vocab_size == 2


def test_hf_cache_file_gets_repo_name(empty_hf_cache: Path) -> None:
    path = cache_snapshot(empty_hf_cache, "acme/Tiny-1B", LLAMA_8B)
    assert load_config_json(path).name == "acme/Tiny-1B"
