"""Read the `server_args=` line SGLang logs at startup.

SGLang logs its ServerArgs *after* its own rewrites (ep_size forced to tp_size, DP
attention switched off when dp_size == 1, ...), so this line is the most trustworthy
record of the sizes a run really used. Older releases print the dataclass repr
`ServerArgs(model_path='/m', tp_size=16, ...)`; v0.5.23 prints a dict
`{'model_path': '/m', 'tp_size': 8, ...}`.

Neither form is a Python literal as a whole (the repr has a call, and both may hold
enum or object reprs such as `<SpeculativeAlgorithm.NONE: 1>`), so the top level is
split here by hand and each value goes through `ast.literal_eval` on its own. Values
that are not literals are kept as their raw text: the layout code only needs the plain
numbers, strings and booleans, and nothing from a log is ever evaluated.
"""

from __future__ import annotations

import ast
import re

_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_KEYWORD = re.compile(r"\s*([A-Za-z_]\w*)\s*$")
_REPR_START = re.compile(r"[A-Za-z_][\w.]*\(")
# What _split_top_level steps over: a whole string literal, a bracket or separator, a run of
# other characters, a run of blanks; a lone quote is a string that never ends.
_TOKEN = re.compile(
    r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[()\[\]{}<>,=:]|[^'"()\[\]{}<>,=:\s]+|\s+|['"]""",
    re.S,
)
# A whole item whose value is a plain literal (what most fields hold), up to the comma or
# bracket after it: _split_top_level takes it in one step instead of token by token.
_PLAIN_ITEM = re.compile(
    r"""\s*(?:(?P<name>[A-Za-z_]\w*)|(?P<quoted>'[^'\\\n]*'))\s*(?P<sep>[=:])\s*(?P<value>"""
    r"""-?[0-9][0-9_.eE+-]*|True|False|None|'[^'\\\n]*'|"[^"\\\n]*")\s*(?=[,)}])"""
)
# Values literal_eval would read the same way, read without compiling them.
_PLAIN_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_PLAIN_STR = re.compile(r"'[^'\\\n]*'")
_NAMED = {"True": True, "False": False, "None": None}


def parse_server_args(text: str) -> dict[str, object]:
    """Map each ServerArgs field in `text` (what follows `server_args=`) to its value."""
    body = text.strip()
    if not body:
        raise ValueError("empty server_args")
    opener = _REPR_START.match(body)
    if opener:
        start, separator = opener.end(), "="
    elif body.startswith("{"):
        start, separator = 1, ":"
    else:
        raise ValueError(f"server_args must start with 'ServerArgs(' or '{{': {_clip(body)}")
    out: dict[str, object] = {}
    for item in _split_top_level(body, start, body[start - 1]):
        plain = _plain_pair(item, separator)
        if plain is not None:
            out[plain[0]] = _value(plain[1])
            continue
        key_text, value_text = _split_item(
            item if isinstance(item, str) else item.group(), separator
        )
        out[_key(key_text, separator)] = _value(value_text)
    return out


def _plain_pair(item: str | re.Match[str], separator: str) -> tuple[str, str] | None:
    """The key and value text of an item cut in one step, when it is in the dump's own form
    (`name=` in the repr, `'name':` in the dict); else None, and the item is read as text."""
    if isinstance(item, str) or item.group("sep") != separator:
        return None
    if separator == "=":
        name = item.group("name")
        return (name, item.group("value")) if name else None
    quoted = item.group("quoted")
    return (quoted[1:-1], item.group("value")) if quoted else None


def _split_top_level(body: str, start: int, opener: str) -> list[str | re.Match[str]]:
    """Cut the text between `opener` and its closing bracket at top-level commas.

    Quotes (with backslash escapes) and nested brackets are skipped over; a `<...>`
    object repr is treated as a bracket only where a value starts, because `<` and `>`
    are ordinary characters anywhere else. The walk goes token by token (a dump is some
    10 KB in a few hundred fields), not character by character.
    """
    stack = [_CLOSERS[opener]]
    items: list[str | re.Match[str]] = []
    item_start = start
    value_start = True
    taken = False  # the current item was cut in one step
    i = start
    while token := _TOKEN.match(body, i):
        if i == item_start and (plain := _PLAIN_ITEM.match(body, i)):
            items.append(plain)  # a whole `name=value` in one step, already cut
            i, value_start, taken = plain.end(), False, True
            continue
        char, i = token.group(), token.end()
        if char.isspace():
            continue
        if char in "'\"":
            raise ValueError(f"unterminated string in server_args: {_clip(body[i - 1 :])}")
        if char in _CLOSERS or (char == "<" and value_start and len(stack) == 1):
            stack.append(_CLOSERS.get(char, ">"))
        elif char == stack[-1]:
            stack.pop()
            if not stack:
                if body[i:].strip():
                    raise ValueError(f"unexpected text after server_args: {_clip(body[i:])}")
                if not taken:
                    items.append(body[item_start : i - 1])
                return _drop_trailing_blank(items)
        elif char in ")]}":
            raise ValueError(f"unbalanced {char!r} in server_args at offset {i - 1}")
        elif char == "," and len(stack) == 1:
            if not taken:
                items.append(body[item_start : i - 1])
            item_start, taken = i, False
        value_start = char in "=:,"
    raise ValueError(f"unterminated server_args (no closing {stack[0]!r}): {_clip(body)}")


def _drop_trailing_blank(items: list[str | re.Match[str]]) -> list[str | re.Match[str]]:
    """Allow `ServerArgs()` and a trailing comma, but not an empty item in the middle."""
    if _blank(items[-1]):
        items = items[:-1]
    if any(_blank(item) for item in items):
        raise ValueError("empty item in server_args")
    return items


def _blank(item: str | re.Match[str]) -> bool:
    return isinstance(item, str) and not item.strip()


def _skip_string(body: str, quote_at: int) -> int:
    """Index just past the string literal that opens at `quote_at`."""
    quote = body[quote_at]
    i = quote_at + 1
    while i < len(body):
        if body[i] == "\\":
            i += 2
            continue
        if body[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string in server_args: {_clip(body[quote_at:])}")


def _split_item(item: str, separator: str) -> tuple[str, str]:
    """Split `name=value` or `'name': value` at the first top-level separator."""
    at = item.find(separator)
    if at >= 0 and "'" not in item[:at] and '"' not in item[:at]:
        return item[:at], item[at + 1 :]
    i = 0
    while i < len(item):
        if item[i] in "'\"":
            i = _skip_string(item, i)
            continue
        if item[i] == separator:
            return item[:i], item[i + 1 :]
        i += 1
    raise ValueError(f"server_args item without {separator!r}: {_clip(item.strip())}")


def _key(text: str, separator: str) -> str:
    if separator == "=":
        match = _KEYWORD.fullmatch(text)
        if not match:
            raise ValueError(f"bad server_args field name: {_clip(text.strip())}")
        return match.group(1)
    try:
        key = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"bad server_args key: {_clip(text.strip())}") from exc
    if not isinstance(key, str):
        raise ValueError(f"server_args key is not a string: {_clip(text.strip())}")
    return key


def _value(text: str) -> object:
    raw = text.strip()
    if not raw:
        raise ValueError("server_args field without a value")
    if raw in _NAMED:
        return _NAMED[raw]
    if _PLAIN_INT.fullmatch(raw):
        return int(raw)
    if _PLAIN_STR.fullmatch(raw):
        return raw[1:-1]
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
