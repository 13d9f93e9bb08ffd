""":class:`Problem`: one thing wrong with ``settings.REMQ``, under its stable check id.

Its own module so that each part of the settings layer (:mod:`.conf`,
:mod:`.gateway_settings`) reports the same shape without importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with ``REMQ``; ``id`` is the stable system-check id."""

    id: str
    msg: str
    hint: str | None = None
