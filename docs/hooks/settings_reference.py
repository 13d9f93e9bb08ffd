"""MkDocs hook (mkdocs.yml ``hooks:``): the settings reference of docs/settings.md, read from
the code at build time, so it cannot drift from it.

docs/settings.md holds one marker line per table, ``<!-- settings-reference: REMQ -->``
(``PROCESSOR``, ``GATEWAY``); each becomes a table of key, type, default and description.
Keys, types and defaults come from the code:

- ``REMQ``: ``django_remq.conf.SPEC`` (key -> (types, default));
- ``PROCESSOR``: the keys of ``ProcessorOptions`` (``PROCESSOR_KEYS``) with their types,
  the defaults of ``ProcessorSettings``; a key whose value is a dict of its own (``retry``,
  ``dlq``, ``retention``) is followed by its keys, dotted, with the defaults the processor
  gives when that dict is ``{}``;
- ``GATEWAY``: ``django_remq.gateway_settings.GATEWAY_KEYS`` (the rules' signatures, the
  limits' lowest values), the defaults of ``GatewayPolicy`` (a key it does not hold, such
  as ``allowed_origins``, which the Origin check reads, defaults to ``None``).

The one-line descriptions are the docs' own, in docs/hooks/settings_descriptions.py. A key
in the code with no description, or a description of a key the code no longer has, is
logged as a warning, which fails ``mkdocs build --strict`` (the ``./dev docs`` build).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, ForwardRef, NamedTuple, is_typeddict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PAGE = "settings.md"
MARKER = re.compile(r"^<!-- settings-reference: (\w+) -->$", re.M)

log = logging.getLogger("mkdocs.plugins.settings_reference")


class Row(NamedTuple):
    key: str
    type: str
    default: str


def _package() -> None:
    """Make the package importable when the docs are built from a bare checkout."""
    try:
        import django_remq  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT))


# -- rendering values -------------------------------------------------------------------


def literal(value: Any) -> str:
    """A default as a reader would write it in settings.py."""
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, FunctionType):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, frozenset | set):
        return "[" + ", ".join(literal(v) for v in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return literal({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _annotation(hint: Any) -> str:
    """A TypedDict's annotation as written in the code (``from __future__ import
    annotations`` keeps them as text); a TypedDict of keys shows as ``dict``."""
    if isinstance(hint, ForwardRef):
        hint = hint.__forward_arg__
    if isinstance(hint, str):
        return "dict" if hint.endswith("Config") else hint
    return "dict" if is_typeddict(hint) else getattr(hint, "__name__", str(hint))


def _types(types: Iterable[type | None]) -> str:
    return " | ".join("None" if t is None else t.__name__ for t in types)


# -- the tables, from the code -------------------------------------------------------------


def remq_rows() -> list[Row]:
    _package()
    from django_remq.conf import SPEC

    return [Row(key, _types(types), literal(default)) for key, (types, default) in SPEC.items()]


def processor_rows() -> list[Row]:
    _package()
    from django_remq.core import types as core_types
    from django_remq.core.settings import PROCESSOR_KEYS, ProcessorSettings

    options = core_types.ProcessorOptions
    hints = dict(options.__annotations__)
    order = [k for k in hints if k in PROCESSOR_KEYS] + sorted(PROCESSOR_KEYS - set(hints))
    defaults = ProcessorSettings()
    rows = []
    for key in order:
        hint = hints.get(key, "")
        default = getattr(defaults, key, None)
        nested = _typed_dict(core_types, hint)
        rows.append(Row(key, _annotation(hint),
                        "(below)" if nested and default is not None else literal(default)))
        if nested is None:
            continue
        turned_on = getattr(ProcessorSettings.from_options({key: {}}), key)
        for sub, sub_hint in nested.__annotations__.items():
            rows.append(Row(f"{key}.{sub}", _annotation(sub_hint),
                            literal(getattr(turned_on, sub, None))))
    return rows


def _typed_dict(module: ModuleType, hint: Any) -> Any:
    name = hint.__forward_arg__ if isinstance(hint, ForwardRef) else hint
    found = getattr(module, name, None) if isinstance(name, str) else name
    return found if found is not None and is_typeddict(found) else None


def gateway_rows() -> list[Row]:
    _package()
    from django_remq import gateway_settings as gateway
    from django_remq.consumers.policy import GatewayPolicy

    fields = {f.name for f in dataclasses.fields(GatewayPolicy)}
    defaults = GatewayPolicy()
    rows = []
    for key in gateway.GATEWAY_KEYS:
        if key in gateway.POLICY_KEYS:
            kind = f"dotted path of fn{gateway.SIGNATURES[key]}"
        elif key in gateway.LIMITS:
            kind = f"int >= {gateway.LIMITS[key][1]}"
        else:
            kind = "list[str] | None"
        rows.append(Row(key, kind, literal(getattr(defaults, key) if key in fields else None)))
    return rows


TABLES: dict[str, Callable[[], list[Row]]] = {
    "REMQ": remq_rows, "PROCESSOR": processor_rows, "GATEWAY": gateway_rows}


def descriptions() -> dict[str, dict[str, str]]:
    """docs/hooks/settings_descriptions.py, loaded by path (the docs tree is no package)."""
    spec = importlib.util.spec_from_file_location("settings_descriptions",
                                                  HERE / "settings_descriptions.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: dict(getattr(module, name, {})) for name in TABLES}


def drift(table: str, rows: Iterable[Row], described: Mapping[str, str]) -> list[str]:
    """What the code and the descriptions disagree on, one sentence each."""
    keys = [row.key for row in rows]
    found = [f"REMQ settings reference: {table} key {key!r} is in the code but has no "
             f"description in docs/hooks/settings_descriptions.py ({table})"
             for key in keys if not described.get(key, "").strip()]
    found += [f"REMQ settings reference: docs/hooks/settings_descriptions.py describes "
              f"{table} key {key!r}, which the code no longer has"
              for key in described if key not in keys]
    return found


def table(name: str, rows: Iterable[Row], described: Mapping[str, str]) -> str:
    lines = ["| key | type | default | what it is |", "| --- | --- | --- | --- |"]
    for row in rows:  # a "|" inside a code span does not split a cell (Python-Markdown)
        lines.append(f"| `{row.key}` | `{row.type}` | `{row.default}` | "
                     f"{described.get(row.key, '')} |")
    return "\n".join(lines)


def render(markdown: str) -> tuple[str, list[str]]:
    """The page with its markers replaced by tables, and every problem found."""
    described = descriptions()
    problems: list[str] = []
    seen = [m.group(1) for m in MARKER.finditer(markdown)]
    problems += [f"{PAGE}: <!-- settings-reference: {name} --> names no table (known: "
                 f"{', '.join(TABLES)})" for name in seen if name not in TABLES]
    problems += [f"{PAGE}: no <!-- settings-reference: {name} --> marker" for name in TABLES
                 if name not in seen]
    rendered: dict[str, str] = {}
    for name, rows_of in TABLES.items():
        rows = rows_of()
        problems += drift(name, rows, described[name])
        rendered[name] = table(name, rows, described[name])
    text = MARKER.sub(lambda m: rendered.get(m.group(1), m.group(0)), markdown)
    return text, problems


# -- the MkDocs event --------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    text, problems = render(markdown)
    for problem in problems:
        log.warning(problem)
    return text
