"""``settings.REMQ``'s keys, their types and defaults, and what is wrong with a value.

:func:`problems` is the one validation: :func:`.conf.get_settings` raises the first
problem it finds, and the system checks (:mod:`django_remq.checks`) report them all.
``GATEWAY`` and ``METRICS`` are checked by their own modules (:mod:`.gateway_settings`,
:mod:`.metrics_settings`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.utils.module_loading import import_string

from .core.errors import InvalidOptions
from .core.options import EMIT_KEYS, HANDLER_ONLY_KEYS, MAX_PAYLOAD_BYTES
from .core.settings import PROCESSOR_KEYS, ProcessorSettings
from .core.store.client_copies import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT
from .core.store.keys import validate_queue_name
from .core.store.replicas import DEFAULT_TIMEOUT_MS, ReplicaWait
from .core.worker import affinity
from .gateway_settings import gateway_problems
from .metrics_settings import metrics_problems
from .problems import Problem

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Tasks at once per worker process: I/O-bound handlers (the common case: HTTP, mail,
#: the ORM) spend most of a task waiting, so a handful of slots keeps one core busy,
#: while each sync slot's thread may hold its own DB connection (docs/settings.md).
DEFAULT_CONCURRENCY = 16
REDIS_SCHEMES = ("redis", "rediss", "unix")

#: key -> (accepted types, default); ``None`` in the types means the key may be None.
SPEC: dict[str, tuple[tuple[type | None, ...], Any]] = {
    "REDIS_URL": ((str,), DEFAULT_REDIS_URL),
    "STREAM_REDIS_URL": ((str, None), None),
    "PREFIX": ((str,), "remq"),
    "CONCURRENCY": ((int,), DEFAULT_CONCURRENCY),
    "QUEUES": ((list, tuple, None), None),
    "CTX": ((str, None), None),
    "PROCESSOR": ((dict, None), None),
    "GATEWAY": ((dict, None), None),
    "EMIT_ON_COMMIT": ((bool,), False),
    "TASKS_MODULE": ((str, None), "tasks"),
    "SOCKET_TIMEOUT": ((int, float), DEFAULT_SOCKET_TIMEOUT),
    "SOCKET_CONNECT_TIMEOUT": ((int, float), DEFAULT_CONNECT_TIMEOUT),
    "ADMIN_PERMISSION": ((str, None), None),
    "CLUSTER": ((bool,), False),
    "WAIT_REPLICAS": ((int,), 0),
    "WAIT_TIMEOUT_MS": ((int,), DEFAULT_TIMEOUT_MS),
    "CPU_AFFINITY": ((str, list, tuple, None), affinity.THREADS),
    "MAX_PAYLOAD_BYTES": ((int, None), MAX_PAYLOAD_BYTES),
    "METRICS": ((dict, None), None),
}

#: Options that belong to one task or one handler, not to the processor.
TASK_LEVEL_KEYS = (EMIT_KEYS | HANDLER_ONLY_KEYS) - {"id"}
#: Processor callbacks that live one level down, under ``retry`` or ``dlq``.
NESTED_PROCESSOR_KEYS = {"max_retries": "retry", "retry_delay_ms": "retry",
                         "should_retry": "retry", "backoff": "retry",
                         "should_send_to_dlq": "dlq", "stream_key": "dlq"}


def problems(raw: Any, *, import_paths: bool = True) -> list[Problem]:
    """Everything wrong with a ``REMQ`` value, in key order; empty when it is fine."""
    if not isinstance(raw, dict):
        return [Problem("remq.E001", f"REMQ must be a dict, got {type(raw).__name__}.",
                        "Write REMQ = {'REDIS_URL': 'redis://127.0.0.1:6379/0'} in settings.")]
    found = [_unknown_key(k) for k in raw if k not in SPEC]
    for key, (types, _) in SPEC.items():
        if key in raw and not _has_type(raw[key], types):
            found.append(_wrong_type(key, raw[key], types))
    if found:
        return found
    found += _values(raw)
    if raw.get("CLUSTER"):
        found += cluster_problems(raw)
    if import_paths and raw.get("CTX"):
        found += _ctx_problems(raw["CTX"])
    if raw.get("PROCESSOR"):
        found += processor_problems(raw["PROCESSOR"])
    if raw.get("GATEWAY") is not None:
        found += gateway_problems(raw["GATEWAY"], import_paths=import_paths)
    if import_paths and raw.get("ADMIN_PERMISSION"):
        found += admin_permission_problems(raw["ADMIN_PERMISSION"])
    found += metrics_problems(raw.get("METRICS") or {})
    return found


def _has_type(value: Any, types: tuple[type | None, ...]) -> bool:
    if value is None:
        return None in types
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, tuple(t for t in types if t is not None))


def _unknown_key(key: Any) -> Problem:
    misplaced = _misplaced_key(key)
    if misplaced is not None:
        return misplaced
    close = difflib.get_close_matches(str(key).upper(), list(SPEC), n=1)
    hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(SPEC)}."
    return Problem("remq.E002", f"REMQ has an unknown key {key!r}.", hint)


def _misplaced_key(key: Any) -> Problem | None:
    """A processor setting or a per-task option written at the top level (``REMQ =
    {"max_retries": 3}``): say where it goes instead of "unknown key"."""
    name = str(key).lower()
    sub = NESTED_PROCESSOR_KEYS.get(name)
    if sub or name in PROCESSOR_KEYS:
        path, value = ((f"[{sub!r}][{name!r}]", f"{{{sub!r}: {{{name!r}: ...}}}}") if sub
                       else (f"[{name!r}]", f"{{{name!r}: ...}}"))
        also = f" (Per task: {_task_option_home(name)}.)" if name in TASK_LEVEL_KEYS else ""
        return Problem("remq.E007", f"REMQ has {key!r} at the top level, but it is a "
                       "processor setting.", f"It belongs under PROCESSOR: REMQ['PROCESSOR']"
                       f"{path}, i.e. REMQ = {{'PROCESSOR': {value}}}.{also}")
    if name in TASK_LEVEL_KEYS:
        return Problem("remq.E007", f"REMQ has {key!r}, which is a per-task option, not a "
                       "setting.", f"Move it to {_task_option_home(name)}.")
    return None


def _task_option_home(key: str) -> str:
    """Where a per-task option is written."""
    if key in HANDLER_ONLY_KEYS:
        return f"the handler: @handler(..., {key}=...)"
    return f"a handler or an emit: @handler(..., {key}=...) or emit(..., options={{'{key}': ...}})"


def _wrong_type(key: str, value: Any, types: tuple[type | None, ...]) -> Problem:
    names = " or ".join("None" if t is None else t.__name__ for t in types)
    return Problem("remq.E003", f"REMQ[{key!r}] must be {names}, got {type(value).__name__} "
                   f"({value!r}).", f"Default: {SPEC[key][1]!r}.")


def _values(raw: dict[str, Any]) -> list[Problem]:
    found = [p for key in ("REDIS_URL", "STREAM_REDIS_URL") if raw.get(key)
             for p in _url_problems(key, raw[key])]
    stream = raw.get("STREAM_REDIS_URL")
    if stream and stream != raw.get("REDIS_URL", DEFAULT_REDIS_URL):
        found.append(Problem(
            "remq.E009", "REMQ['STREAM_REDIS_URL'] differs from REDIS_URL.",
            "Streams and job records change together in one atomic script, so they must live "
            "in one Redis database: remove STREAM_REDIS_URL or set it equal to REDIS_URL."))
    for key in ("SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT"):
        value = raw.get(key, 1.0)
        if not 0 < value <= 3600:  # NaN fails this too
            found.append(Problem("remq.E008", f"REMQ[{key!r}] must be seconds in (0, 3600], "
                                 f"got {value!r}.",
                                 f"Default: {SPEC[key][1]!r}; a URL's ?{key.lower()}= wins."))
    if raw.get("CONCURRENCY", DEFAULT_CONCURRENCY) < 1:
        found.append(Problem("remq.E008", f"REMQ['CONCURRENCY'] must be >= 1, got "
                             f"{raw['CONCURRENCY']}.", "Use 1 or more tasks at a time."))
    prefix = raw.get("PREFIX", "remq")
    if not prefix or set(prefix) & set("{} ") or any(c.isspace() for c in prefix):
        found.append(Problem("remq.E008", f"REMQ['PREFIX'] = {prefix!r} is not a usable key "
                             "prefix.", "Use letters, digits, '-', '_' or '.', e.g. 'remq'."))
    found += _wait_problems(raw)
    limit = raw.get("MAX_PAYLOAD_BYTES", MAX_PAYLOAD_BYTES)
    if limit is not None and limit < 1:
        found.append(Problem("remq.E008", f"REMQ['MAX_PAYLOAD_BYTES'] must be >= 1, got "
                             f"{limit}.", "Bytes of JSON a task's data or result may take "
                             "(default 1048576, 1 MiB); None turns the limit off."))
    try:
        affinity.check(raw.get("CPU_AFFINITY"))
    except ValueError as exc:
        found.append(Problem("remq.E008", f"REMQ['CPU_AFFINITY']: {exc}.",
                             "'auto': each worker process on its own CPU; see the README, "
                             "Settings."))
    for queue in raw.get("QUEUES") or ():
        try:
            validate_queue_name(queue)
        except ValueError as exc:
            found.append(Problem("remq.E008", f"REMQ['QUEUES']: {exc}.", None))
    return found


def _wait_problems(raw: dict[str, Any]) -> list[Problem]:
    """``WAIT_REPLICAS`` / ``WAIT_TIMEOUT_MS`` (remq.E040): a WAIT must end before the
    socket timeout, or the client gives up on a write that did happen."""
    replicas, timeout = raw.get("WAIT_REPLICAS", 0), raw.get("WAIT_TIMEOUT_MS",
                                                            DEFAULT_TIMEOUT_MS)
    try:
        ReplicaWait.of(replicas, timeout)
    except InvalidOptions as exc:
        return [Problem("remq.E040", f"REMQ: {exc}.",
                        "WAIT_REPLICAS: how many replicas must have each emitted job before "
                        "emit returns (0: none); WAIT_TIMEOUT_MS: how long to wait (ms).")]
    socket_ms = raw.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT) * 1000
    if replicas and timeout >= socket_ms:
        return [Problem("remq.E040", f"REMQ['WAIT_TIMEOUT_MS'] = {timeout} is not below "
                        f"SOCKET_TIMEOUT ({socket_ms:g} ms).",
                        "The client would time out before Redis answers WAIT; lower "
                        "WAIT_TIMEOUT_MS or raise SOCKET_TIMEOUT.")]
    return []


def _url_problems(key: str, url: str) -> list[Problem]:
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        return [Problem("remq.E004", f"REMQ[{key!r}] = {url.split('@')[-1]!r} is not a Redis "
                        "URL (scheme must be redis://, rediss:// or unix://).",
                        "Example: 'redis://127.0.0.1:6379/0' or "
                        "'rediss://:password@host:6380/1'.")]
    if parts.scheme != "unix" and not parts.hostname:
        return [Problem("remq.E004", f"REMQ[{key!r}] has no host.",
                        "Example: 'redis://127.0.0.1:6379/0'.")]
    return []


def cluster_problems(raw: Mapping[str, Any]) -> list[Problem]:
    """``CLUSTER: True`` needs a TCP URL of database 0 (a Redis Cluster has no other)."""
    found: list[Problem] = []
    for key in ("REDIS_URL", "STREAM_REDIS_URL"):
        url = raw.get(key) or (DEFAULT_REDIS_URL if key == "REDIS_URL" else None)
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme == "unix":
            found.append(Problem(
                "remq.E030", f"REMQ[{key!r}] is a unix socket, but REMQ['CLUSTER'] is True.",
                "A Redis Cluster is reached over TCP: give any node's URL, e.g. "
                "'redis://node-1:7000/0', or set CLUSTER to False."))
            continue
        db = parts.path.strip("/") or "0"
        if db != "0":
            found.append(Problem(
                "remq.E030", f"REMQ[{key!r}] selects database {db}, but REMQ['CLUSTER'] is "
                "True and a Redis Cluster has only database 0.",
                "End the URL with /0 (or no path) and keep projects apart with "
                "REMQ['PREFIX']."))
    return found


def _ctx_problems(path: str) -> list[Problem]:
    try:
        factory = import_string(path)
    except ImportError as exc:
        return [Problem("remq.E005", f"REMQ['CTX'] = {path!r} does not import: {exc}.",
                        "Give the dotted path of a callable returning a dict, e.g. "
                        "'myproject.remq.build_ctx'.")]
    if not callable(factory):
        return [Problem("remq.E005", f"REMQ['CTX'] = {path!r} is not callable.",
                        "CTX names a function that returns the handlers' ctx dict.")]
    return []


def processor_problems(processor: Mapping[str, Any]) -> list[Problem]:
    """Options at the wrong level first (the likely mistake), then the engine's own checks."""
    found: list[Problem] = []
    for key in processor:
        if key in TASK_LEVEL_KEYS and key not in PROCESSOR_KEYS:
            found.append(Problem("remq.E007", f"REMQ['PROCESSOR'] has {key!r}, which is a "
                                 "per-task option, not a processor setting.",
                                 f"Move it to {_task_option_home(key)}." + _nested_hint(key)))
        elif key in NESTED_PROCESSOR_KEYS:
            sub = NESTED_PROCESSOR_KEYS[key]
            found.append(Problem("remq.E007", f"REMQ['PROCESSOR'] has {key!r} at the top level.",
                                 f"It belongs under PROCESSOR[{sub!r}]: "
                                 f"{{{sub!r}: {{{key!r}: ...}}}}."))
    retry = processor.get("retry")
    for key in retry if isinstance(retry, Mapping) else ():
        if key in ("attempts", "retry_count"):
            found.append(Problem("remq.E007", f"REMQ['PROCESSOR']['retry'] has {key!r}, the "
                                 "per-task retry count.",
                                 f"Set it per handler (@handler(..., {key}=3)) or per emit; "
                                 "the processor's switch is 'max_retries'."))
    if found:
        return found
    try:
        ProcessorSettings.from_options(processor)
    except (InvalidOptions, TypeError, ValueError) as exc:
        found.append(Problem("remq.E006", f"REMQ['PROCESSOR'] is invalid: {exc}",
                             "See ProcessorSettings in django_remq.core.settings."))
    return found


def _nested_hint(key: str) -> str:
    if key == "retry_delay_ms":
        return " (A processor-wide default delay goes in PROCESSOR['retry']['retry_delay_ms'].)"
    return ""


# -- the admin pages' permission hook ------------------------------------------------


def admin_permission_problems(path: str) -> list[Problem]:
    """``ADMIN_PERMISSION`` names ``callable(request) -> bool``, asked on every admin page."""
    hint = ("Give the dotted path of a function taking the request and returning True "
            "when this staff user may use the task-queue admin pages, e.g. "
            "'myproject.remq.can_admin_queues'.")
    try:
        check = import_string(path)
    except ImportError as exc:
        return [Problem("remq.E010", f"REMQ['ADMIN_PERMISSION'] = {path!r} does not import: "
                        f"{exc}.", hint)]
    if not callable(check):
        return [Problem("remq.E010", f"REMQ['ADMIN_PERMISSION'] = {path!r} is not callable.",
                        hint)]
    return []
