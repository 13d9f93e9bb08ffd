"""``REMQ["METRICS"]``: who may read the metrics view besides staff (:mod:`.metrics`).

Checked here, beside :mod:`.conf` (as ``GATEWAY`` is by :mod:`.gateway_settings`), so
``manage.py check`` and a running process agree; importing it needs no
``prometheus_client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .problems import Problem

#: Keys of ``REMQ["METRICS"]``.
METRICS_KEYS = frozenset({"TOKEN"})
#: Shortest bearer token the metrics view takes: a guessable one would open it to anyone.
MIN_METRICS_TOKEN = 16


def metrics_problems(metrics: Mapping[str, Any]) -> list[Problem]:
    """``METRICS``: only ``TOKEN``, a string long enough not to be guessed (or None)."""
    hint = ("Write REMQ['METRICS'] = {'TOKEN': os.environ['REMQ_METRICS_TOKEN']} with a "
            "random value (python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
            "or leave METRICS out: staff sessions only.")
    found = [Problem("remq.E050", f"REMQ['METRICS'] has an unknown key {k!r}; it takes "
                     f"{', '.join(sorted(METRICS_KEYS))}.", hint)
             for k in metrics if k not in METRICS_KEYS]
    token = metrics.get("TOKEN")
    if token is not None and (not isinstance(token, str) or len(token) < MIN_METRICS_TOKEN
                              or token != token.strip()):
        found.append(Problem(
            "remq.E050", f"REMQ['METRICS']['TOKEN'] must be a string of at least "
            f"{MIN_METRICS_TOKEN} characters without surrounding spaces (a scraper sends it as "
            f"'Authorization: Bearer <token>'), got {type(token).__name__}"
            f"{' of ' + str(len(token)) + ' characters' if isinstance(token, str) else ''}.",
            hint))
    return found
