"""The README's first example is something a user copies: it must not emit an event
that nothing handles (that job would end failed with UnknownEvent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parent.parent / "README.md"


def first_python_block() -> str:
    return re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)


def test_every_event_the_example_emits_has_a_handler_in_it():
    code = first_python_block()
    handled = set(re.findall(r'@handler\("([^"]+)"', code))
    emitted = set(re.findall(r'emit\((?:event=)?"([^"]+)"', code))
    assert handled, "the example declares handlers"
    assert emitted, "the example emits"
    assert emitted <= handled, f"emitted without a handler: {sorted(emitted - handled)}"
