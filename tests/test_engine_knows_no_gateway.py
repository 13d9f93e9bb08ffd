"""The engine (``django_remq/core``) knows nothing of the WebSocket gateway.

The gateway plugs into the engine's generic seams (an event sink, extra record fields,
an ``ExposeServer``); its keys, scripts and record fields live in
``django_remq/consumers``. So no name the engine's code defines or uses, no string it
writes (a key, a record field, a Lua string) and no Lua code speaks of the gateway's
concepts, and its comments and docstrings do not mention the gateway. Comments may use
the other words in their plain sense ("they also watch the stopping flag").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import django_remq

pytestmark = pytest.mark.unit

CORE = Path(django_remq.__file__).resolve().parent / "core"
#: the gateway's concepts, as words of a name the engine's code defines or uses
IN_NAMES = frozenset({"gateway", "gateways", "watch", "watched", "watching", "watcher",
                      "broadcast", "broadcasts"})
#: ... and of a string it holds (a key, a record field) or of its Lua code: there
#: "owner" is the gateway's record field, while a name ``owner`` is a plain word
#: (the connection whose clients a loop closes)
IN_STRINGS = IN_NAMES | {"owner", "owners"}
#: never a plain word in this project: not in a comment or docstring either
ANYWHERE = frozenset({"gateway", "gateways"})


def words(text: str) -> set[str]:
    """Lower-case words of identifiers and text (``gateway_server``, ``GatewayServer``,
    ``remq:gateway:watched`` -> gateway, server, remq, watched)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    return {w.lower() for w in re.findall(r"[A-Za-z]+", spaced)}


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def python_code(tree: ast.AST) -> Iterator[tuple[int, str, frozenset[str]]]:
    """(line, text, words it may not hold) of every name the code defines or uses and
    every string it holds that is not a docstring."""
    skip = docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            yield line, node.id, IN_NAMES
        elif isinstance(node, ast.Attribute):
            yield line, node.attr, IN_NAMES
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name, IN_NAMES
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            yield line, node.arg, IN_NAMES
        elif isinstance(node, ast.alias):
            yield line, f"{node.name} {node.asname or ''}", IN_NAMES
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in skip):
            yield line, node.value, IN_STRINGS


def python_prose(source: str, tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of comments and docstrings."""
    for n, text in enumerate(source.splitlines(), 1):
        if "#" in text:
            yield n, text[text.index("#"):]  # a "#" in a string only widens the check
    found = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) in found:
            yield node.lineno, str(node.value)


def lua_parts(source: str) -> Iterator[tuple[int, str, str]]:
    """(line, code, comment) of each line of a Lua script."""
    for n, text in enumerate(source.splitlines(), 1):
        code, _, comment = text.partition("--")
        yield n, code, comment


def mentions() -> list[str]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source, str(path))
        where = path.relative_to(CORE.parent)
        found += [f"{where}:{line}: {text!r}" for line, text, banned in python_code(tree)
                  if words(text) & banned]
        found += [f"{where}:{line}: {text.strip()[:80]!r}" for line, text
                  in python_prose(source, tree) if words(text) & ANYWHERE]
    for path in sorted(CORE.rglob("*.lua")):
        where = path.relative_to(CORE.parent)
        for line, code, comment in lua_parts(path.read_text()):
            if words(code) & IN_STRINGS or words(comment) & ANYWHERE:
                found.append(f"{where}:{line}: {code + comment!r}")
    return found


def test_the_engine_never_speaks_of_the_gateway() -> None:
    assert mentions() == []


def test_the_check_sees_each_kind_of_mention() -> None:
    """The check itself: a key, a record field, an attribute, a Lua flag, a comment."""
    code = ('"""Keys."""\nKEY = f"{prefix}:gateway:watched"\nmessage.watched = True\n'
            'fields = ("name", "owner")\n# sent to the gateway\nx = ClusterDownError\n'
            'owner = ref()\n')
    tree = ast.parse(code)
    hits = sorted({line for line, text, banned in python_code(tree) if words(text) & banned})
    assert hits == [2, 3, 4]  # not ClusterDownError (no word "owner"), nor a name owner
    assert [line for line, text in python_prose(code, tree) if words(text) & ANYWHERE] == [5]
    lua = "-- watch the stream\nredis.call('HSET', KEYS[1], 'watch', '1')\n"
    assert [n for n, c, _ in lua_parts(lua) if words(c) & IN_STRINGS] == [2]


def test_the_gateways_keys_scripts_and_fields_live_in_consumers() -> None:
    consumers = CORE.parent / "consumers"
    assert not list(CORE.rglob("watch.lua"))
    assert (consumers / "lua" / "watch.lua").is_file()
    from django_remq.consumers.keys import OWNER, WATCH, GatewayKeys
    from django_remq.core.store.calls import ENGINE_FIELDS, RUN_FIELDS

    assert {WATCH, OWNER}.isdisjoint({*RUN_FIELDS, *ENGINE_FIELDS})
    keys = GatewayKeys("remq")  # the names stored before the move, unchanged
    assert (keys.broadcast, keys.watched, keys.holds("user:1"), keys.holds_pruned("user:1")) \
        == ("remq:gateway:broadcast", "remq:gateway:watched", "remq:gateway:holds:user:1",
            "remq:gateway:pruned:user:1")
