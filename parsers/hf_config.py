"""Model shape facts from a Hugging Face config.json, found without touching the network.

The layout checks need a handful of numbers (heads, KV heads, experts, layers, ...) to
say whether a parallel layout divides the model cleanly and how much each group moves.
Logs name the model only by path or repo id, so this module finds its config.json on
disk when it can and otherwise falls back to a small bundled table of well-known
models. Everything works offline: rankmap runs on the machine where the logs are, which
often is not the one with the weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

_TABLE_FILE = "models.json"
_HF_CACHE_DIR = re.compile(r"^models--(?P<org>[^/]+?)--(?P<name>[^/]+)$")
# Keys that name the number of routed experts, in the spelling of each model family:
# DeepSeek/Kimi/GLM, Mixtral/gpt-oss, Qwen-MoE.
_EXPERT_KEYS = ("n_routed_experts", "num_local_experts", "num_experts")
_FOUR_BYTE_DTYPES = {"float32", "fp32", "float"}


class ModelConfigError(ValueError):
    """A config.json that exists but cannot be used; the message names the file."""


@dataclass(frozen=True)
class ModelFacts:
    """The parts of a model's architecture that constrain or size process groups."""

    name: str
    source: str
    architectures: tuple[str, ...]
    hidden_size: int | None
    num_hidden_layers: int | None
    num_attention_heads: int | None
    num_key_value_heads: int | None
    n_routed_experts: int | None
    moe_intermediate_size: int | None
    kv_lora_rank: int | None
    dtype_bytes: int
    vocab_size: int | None

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts is not None

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None


def load_config_json(path: Path) -> ModelFacts:
    """Read one config.json; a file that is unreadable or malformed is an error, not None."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelConfigError(f"{path}: cannot read model config: {exc}") from exc
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelConfigError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    if not isinstance(config, dict):
        raise ModelConfigError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return _facts_from_config(config, name=_name_from_path(Path(path)), source=str(path))


def resolve_model(model_path: str | None, model_config: Path | None = None) -> ModelFacts | None:
    """Find the facts for a model named by a log or launch command, or None if unknown.

    Most specific first: an explicit file beats what is on disk, and what is on disk
    beats the bundled table, because a local checkpoint may be a fine-tune or a
    trimmed test model whose shape differs from the published one.
    """
    if model_config is not None:
        return load_config_json(Path(model_config))
    if not model_path:
        return None
    local = Path(model_path).expanduser()
    if (local / "config.json").is_file():
        name = _name_from_path(local.resolve() / "config.json")
        return dataclasses.replace(load_config_json(local / "config.json"), name=name)
    cached = _hf_cache_config(model_path)
    if cached is not None:
        return load_config_json(cached)
    return _table_lookup(model_path)


def _facts_from_config(config: dict[str, Any], name: str, source: str) -> ModelFacts:
    """Build facts from a parsed config, looking inside `text_config` for missing keys.

    Multimodal wrappers (Kimi-K2.5, Qwen-VL, Gemma 3, ...) keep the language model's
    settings in `text_config`; the language model is what the process groups shard.
    """
    nested = config.get("text_config")
    text = nested if isinstance(nested, dict) else {}

    def get(key: str) -> Any:
        value = config.get(key)
        return text.get(key) if value is None else value

    def integer(key: str) -> int | None:
        value = get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value

    heads = integer("num_attention_heads")
    kv_heads = integer("num_key_value_heads")
    experts = next((n for n in (integer(k) for k in _EXPERT_KEYS) if n is not None), None)
    # One "expert" (or zero) is a dense MLP; treating it as MoE would invent EP groups.
    if experts is not None and experts < 2:
        experts = None
    moe_intermediate = integer("moe_intermediate_size")
    if experts is not None and moe_intermediate is None:
        # Mixtral and gpt-oss size each expert with plain intermediate_size.
        moe_intermediate = integer("intermediate_size")
    architectures = get("architectures") or ()
    if not isinstance(architectures, list | tuple) or not all(
        isinstance(a, str) for a in architectures
    ):
        raise ModelConfigError(f"{source}: architectures must be a list of strings")
    return ModelFacts(
        name=name,
        source=source,
        architectures=tuple(architectures),
        hidden_size=integer("hidden_size"),
        num_hidden_layers=integer("num_hidden_layers"),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads if kv_heads is not None else heads,
        n_routed_experts=experts,
        moe_intermediate_size=moe_intermediate if experts is not None else None,
        kv_lora_rank=integer("kv_lora_rank"),
        dtype_bytes=_dtype_bytes(get("torch_dtype") or get("dtype")),
        vocab_size=integer("vocab_size"),
    )


def _dtype_bytes(dtype: Any) -> int:
    """Bytes per activation element; fp8/fp4 checkpoints still compute in 16-bit."""
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _FOUR_BYTE_DTYPES:
        return 4
    return 2


def _hf_cache_repo_id(path: Path) -> str | None:
    """`org/name` when the path runs through an HF cache folder `models--org--name`."""
    for part in reversed(path.parts):
        match = _HF_CACHE_DIR.match(part)
        if match:
            return f"{match['org']}/{match['name']}"
    return None


def _name_from_path(path: Path) -> str:
    """The repo id for a file in the HF cache, else the folder that holds the config."""
    return _hf_cache_repo_id(path) or path.parent.name or str(path)


def _hf_hub_dir() -> Path:
    """The hub cache huggingface_hub itself would use, from the same variables."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache_home = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache_home).expanduser() / "huggingface" / "hub"


def _hf_cache_config(model_path: str) -> Path | None:
    """config.json of a repo id in the local HF cache, preferring the `main` snapshot."""
    parts = model_path.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        return None
    hub = _hf_hub_dir()
    wanted = f"models--{parts[0]}--{parts[1]}".lower()
    try:
        repo = next((d for d in hub.iterdir() if d.name.lower() == wanted and d.is_dir()), None)
    except OSError:
        return None
    if repo is None:
        return None
    main_ref = repo / "refs" / "main"
    if main_ref.is_file():
        pinned = repo / "snapshots" / main_ref.read_text(encoding="utf-8").strip() / "config.json"
        if pinned.is_file():
            return pinned
    snapshots = [p for p in (repo / "snapshots").glob("*/config.json") if p.is_file()]
    return max(snapshots, key=lambda p: p.stat().st_mtime, default=None)


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, Any], ...]:
    """The bundled table, read through importlib.resources so it works from a wheel."""
    text = resources.files(__package__).joinpath(_TABLE_FILE).read_text(encoding="utf-8")
    return tuple(json.loads(text)["models"])


def _table_lookup(model_path: str) -> ModelFacts | None:
    """Match a repo id, an HF cache path, or a local folder named like a known model."""
    key = model_path.strip().rstrip("/").lower()
    cache_id = _hf_cache_repo_id(Path(key))
    last = key.rsplit("/", 1)[-1]
    by_id = by_cache = by_name = None
    for entry in _table():
        ids = [entry["id"], *entry.get("aliases", ())]
        lowered = [i.lower() for i in ids]
        if key in lowered:
            by_id = entry
            break
        if by_cache is None and cache_id in lowered:
            by_cache = entry
        if by_name is None and last in (i.rsplit("/", 1)[-1] for i in lowered):
            by_name = entry
    entry = by_id or by_cache or by_name
    if entry is None:
        return None
    return _facts_from_config(
        entry["config"], name=entry["id"], source=f"bundled table ({entry['id']})"
    )
