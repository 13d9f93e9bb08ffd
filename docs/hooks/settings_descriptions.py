"""One line per setting, for the reference tables of docs/settings.md.

The keys, their types and their defaults come from the code (docs/hooks/settings_reference.py
reads them at build time); only what a key is for is written here. A key the code has and
this file does not describe, or a description of a key the code no longer has, fails
``mkdocs build --strict``. Nested keys are dotted: ``"retry.max_retries"`` is
``REMQ["PROCESSOR"]["retry"]["max_retries"]``. Markdown is allowed.
"""

#: ``REMQ`` (django_remq.conf.SPEC)
REMQ = {
    "REDIS_URL": "The Redis every part uses (`redis://`, `rediss://` or `unix://`); the "
                 "environment variable `REMQ_REDIS_URL` overrides it.",
    "STREAM_REDIS_URL": "The original remq's `streamdb`: must equal `REDIS_URL` if set (a job's "
                        "record and its stream entry change in one script).",
    "PREFIX": "Key prefix; one per project sharing a Redis.",
    "CONCURRENCY": "Tasks at once per worker process (`--concurrency`); each sync slot may "
                   "hold a DB connection.",
    "QUEUES": "The queues a worker serves (`--queues`); `None`: every queue with a handler.",
    "CTX": "Dotted path of a function that returns the handlers' `ctx` dict.",
    "PROCESSOR": "Retries, dead letters, retention, visibility timeout: the table below.",
    "GATEWAY": "The WebSocket gateway's policy (the table below); `{}`: the secure defaults.",
    "EMIT_ON_COMMIT": "`emit()` waits for the transaction to commit (per call: `on_commit=`).",
    "TASKS_MODULE": "The module autodiscovered in each app; `None` turns discovery off.",
    "SOCKET_TIMEOUT": "Seconds to wait for a Redis reply (then `emit` raises `RedisTimeout`).",
    "SOCKET_CONNECT_TIMEOUT": "Seconds to wait for a connection (then `RedisUnavailable`).",
    "ADMIN_PERMISSION": "Dotted path to `fn(request) -> bool`, asked on every admin page after "
                        "the staff check.",
    "CLUSTER": "`REDIS_URL` is any node of a Redis Cluster.",
    "WAIT_REPLICAS": "Emits and acknowledgements wait until this many replicas have the "
                     "writes (`WAIT`).",
    "WAIT_TIMEOUT_MS": "How long they wait (1 to 3,600,000, below `SOCKET_TIMEOUT`); then "
                       "emit raises `ReplicaTimeout`.",
    "CPU_AFFINITY": "`\"threads\"`: a worker's loop and sync handlers' threads share one "
                    "core, their native work keeps every CPU; `\"auto\"` or a list of CPUs: "
                    "each whole worker process on one CPU; `None`: no pinning "
                    "(`--cpu-affinity`, Linux).",
    "MAX_PAYLOAD_BYTES": "Most bytes of JSON a task's data or result may take (`emit` raises "
                         "`PayloadTooLarge`); `None`: no limit.",
    "METRICS": "The Prometheus view (`django_remq.metrics`, [Metrics](metrics.md)): "
               "`{\"TOKEN\": \"...\"}` (16+ characters) lets a scraper in with "
               "`Authorization: Bearer <token>`; `None`: staff sessions only.",
}

#: ``REMQ["PROCESSOR"]`` (django_remq.core.settings: ProcessorOptions, ProcessorSettings)
PROCESSOR = {
    "retry": "When a failed task runs again: the keys below.",
    "retry.max_retries": "The most retries any task gets (it asks with `attempts` / "
                         "`retry_count`); 0 turns retries off everywhere.",
    "retry.retry_delay_ms": "The delay before a retry when the task gives none.",
    "retry.should_retry": "`fn(error, attempt) -> bool`: may refuse a retry (a validation "
                          "error, say).",
    "retry.backoff": "`\"fixed\"`, `\"exponential\"` (doubling, jitter 0.1) or a dict of "
                     "these keys.",
    "dlq": "The dead-letter streams, one per queue: `{}` turns them on with the defaults "
           "below; `None`: off.",
    "dlq.stream_key": "The stream's name inside each queue: `<prefix>:{<queue>}:<stream_key>`.",
    "dlq.maxlen": "Entries kept per queue (`MAXLEN ~`).",
    "dlq.should_send_to_dlq": "`fn(message, error, attempts) -> bool`: may keep a failed "
                              "handler's job out (engine failures always go in).",
    "max_logs_per_task": "Log lines kept per job.",
    "claim_idle_ms": "Visibility timeout: a dead worker's tasks run again after it (plus a "
                     "heartbeat, a third of it).",
    "max_deliveries": "A task that kills its worker this often fails (`PoisonMessage`).",
    "retention": "How long finished jobs stay: the keys below (`None` keeps them).",
    "retention.completed_max_age_ms": "Completed jobs older than this expire.",
    "retention.completed_max_count": "Completed jobs kept per queue.",
    "retention.failed_max_age_ms": "Failed jobs older than this expire.",
    "retention.failed_max_count": "Failed jobs kept per queue.",
    "shutdown_timeout_ms": "How long running tasks may finish when a worker stops "
                           "(`--shutdown-timeout`).",
    "priority_aging_ms": "A job this long at the head of a lower priority lane goes ahead of "
                         "higher ones.",
    "timezone": "The time zone of cron patterns; Django's `TIME_ZONE` unless set here.",
    "pin_threads": "The loop and the sync handlers' threads share one CPU core (Linux); "
                   "`REMQ['CPU_AFFINITY']` sets it, `runworker_remq --cpu-affinity` too.",
    "ack_linger_ms": "A finished job's acknowledgement waits up to this long for others to "
                     "share its Redis call (fewer, larger calls at low concurrency); `0`: "
                     "each batch goes at once.",
}

#: ``REMQ["GATEWAY"]`` (its keys: GATEWAY_KEYS; defaults: GatewayPolicy)
GATEWAY = {
    "allowed_events": "The events clients may emit; unset: the handlers with `expose=True`.",
    "can_emit": "Who may emit; default: signed-in users.",
    "can_subscribe": "Who may follow a task; default: the user who emitted it, and staff.",
    "can_broadcast": "Who may open a feed of every task; default: staff (and "
                     "`ADMIN_PERMISSION`, if set).",
    "client_options": "The emit options a client may set (never `id` unless listed).",
    "max_message_bytes": "The largest client frame.",
    "max_in_flight": "Unfinished tasks one connection follows.",
    "max_in_flight_per_user": "Unfinished tasks one user (anonymous: one address) has emitted, "
                              "over all connections and gateway processes.",
    "max_frames_per_second": "Frames one connection may send a second (a second's worth "
                             "at once); more are dropped unread, the first with "
                             "`rate_limited`, and a connection that keeps it up is closed.",
    "max_client_delay_ms": "The furthest a client may push a task (`delay_ms`, `delayUntil`, "
                           "`retryDelayMs`).",
    "max_connections": "WebSocket connections one process holds; one more is closed at "
                       "once (4503, `too_many_connections`).",
    "max_connections_per_address": "WebSocket connections one process holds from one client "
                                   "address; unset: no such count (behind a proxy whose "
                                   "headers the server does not read, every client has its "
                                   "address).",
    "allowed_origins": "Browser origins allowed to connect; unset: the site's own pages "
                       "(same host and port); `\"*\"`: any.",
}
