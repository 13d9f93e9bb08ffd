"""``manage.py remq ...``: inspect and steer queues, jobs, workers and the DLQ.

Thin: parses, calls the :class:`~django_remq.sdk.Sdk`, formats (a table, or JSON
with ``--json``). Every failure is a ``CommandError`` that says what to fix.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from django_remq.core.errors import RemqError
from django_remq.core.types import AdminJobData
from django_remq.sdk import Sdk
from django_remq.worker import ping

JOB_ACTIONS = ("show", "retry", "cancel", "delete", "pause", "resume")
QUEUE_ACTIONS = ("pause-queue", "resume-queue")
ACTIONS = ("queues", "jobs", *JOB_ACTIONS, *QUEUE_ACTIONS, "workers", "dlq", "retry-failed",
           "delete-completed", "health")
USAGE = """
  remq queues                                  queues with counts and paused flag
  remq jobs [--queue Q] [--status S] [--limit N] [--offset N] [--search TEXT]
  remq show|retry|cancel|delete|pause|resume JOB_ID [--queue Q]
  remq pause-queue|resume-queue QUEUE
  remq workers                                 live workers (heartbeats)
  remq dlq [requeue|delete ENTRY_ID]           dead letters, or act on one
  remq retry-failed --queue Q                  retry every failed job of a queue
  remq delete-completed --queue Q --older-than SECONDS
  remq health [--worker-id ID]                 exit 0 if Redis answers (and the worker's
                                               heartbeat is fresh); 1 with the reason if not
"""


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


class Command(BaseCommand):
    help = "Inspect and manage remq queues, jobs, workers and the dead-letter queue." + USAGE

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the usage lines
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=ACTIONS, help="what to do (see above)")
        parser.add_argument("targets", nargs="*", metavar="ARG",
                            help="job id, queue name, or DLQ action + entry id")
        parser.add_argument("--queue", "-q", help="queue name (job actions: found in every "
                            "queue when not given)")
        parser.add_argument("--status", "-s", help="only jobs with this status")
        parser.add_argument("--limit", "-n", type=int, default=20)
        parser.add_argument("--offset", type=int, default=0)
        parser.add_argument("--search", help="id or name contains (newest 10,000 per queue)")
        parser.add_argument("--older-than", type=float, help="seconds, for delete-completed")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--worker-id", help="for health: a worker id, or its start "
                            "(HOST or HOST-PID) to match any worker of that host/process")

    def handle(self, *args: Any, **options: Any) -> None:
        action: str = options["action"]
        handler: Callable[[Sdk, list[str], dict[str, Any]], Any] = getattr(
            self, "do_" + action.replace("-", "_"))
        sdk = Sdk()
        try:
            result = handler(sdk, list(options["targets"]), options)
        except (RemqError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise CommandError(f"cannot reach Redis at {sdk.conn!r}: {exc}; check "
                               "REMQ['REDIS_URL']") from None
        finally:
            sdk.conn.close()
        data, text = result
        self.stdout.write(json.dumps(data, indent=2, default=str) if options["json"] else text)

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _one(args: list[str], what: str, action: str) -> str:
        if len(args) != 1:
            raise CommandError(f"remq {action} takes one {what}, got {len(args)} "
                               f"({' '.join(args) or 'none'}); e.g. remq {action} <{what}>")
        return args[0]

    # -- actions (each returns (JSON-able data, text)) ------------------------------------

    def do_queues(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        infos = sdk.get_queues_info()
        rows = [(i.name, "yes" if i.paused else "no", i.stats.waiting, i.stats.delayed,
                 i.stats.processing, i.stats.completed, i.stats.failed, i.stats.cancelled,
                 i.stats.paused, i.stats.total) for i in infos]
        header = ("QUEUE", "PAUSED", "WAITING", "DELAYED", "RUNNING", "COMPLETED", "FAILED",
                  "CANCELLED", "HELD", "TOTAL")
        dlq = sum(i.stats.dlq for i in infos)
        text = (_table(rows, header) if rows else "no queues yet") + f"\nDLQ: {dlq} entries"
        return [i.to_dict() for i in infos], text

    def do_jobs(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        jobs = sdk.list_jobs(queue=o["queue"], status=o["status"], limit=o["limit"],
                             offset=o["offset"], search=o["search"])
        rows = [(j.id, j.state.queue, j.state.name, j.status, j.retried_attempts + 1,
                 _when(j.finished_at or j.last_run or j.timestamp)) for j in jobs]
        text = _table(rows, ("ID", "QUEUE", "NAME", "STATUS", "ATTEMPT", "UPDATED (UTC)"))
        return [j.to_dict() for j in jobs], text if rows else "no jobs"

    def _job(self, sdk: Sdk, args: list[str], o: dict[str, Any], action: str) -> tuple[str, str]:
        job_id = self._one(args, "job id", action)
        if o["queue"]:
            return job_id, o["queue"]
        return job_id, self._find(sdk, job_id).state.queue

    @staticmethod
    def _find(sdk: Sdk, job_id: str) -> AdminJobData:
        """The job, looked up in every known queue, when ``--queue`` is not given."""
        found = sdk.find_job(job_id)
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(repr(j.state.queue) for j in found)
            raise CommandError(f"job {job_id} exists in {len(found)} queues ({names}); pass "
                               f"--queue Q to choose one")
        names = ", ".join(repr(q) for q in sdk.get_queues()) or "none yet"
        raise CommandError(f"no job {job_id} in any queue (looked in: {names}; prefix "
                           f"{sdk.keys.prefix!r})")

    def do_show(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        job_id = self._one(args, "job id", "show")
        queue = o["queue"]
        job = sdk.get_job(job_id, queue) if queue else self._find(sdk, job_id)
        if job is None:
            raise CommandError(f"no job {job_id} in queue {queue!r}")
        lines = [f"{k}: {v}" for k, v in job.to_dict().items() if k not in ("logs", "errors")]
        lines += ["logs:", *(f"  {_when(e.timestamp)}  {e.message}" for e in job.logs)]
        lines += ["errors:", *(f"  attempt {e.attempt} {_when(e.timestamp)}  {e.type}: "
                               f"{e.message}" for e in job.errors)]
        return job.to_dict(), "\n".join(lines)

    def _change(self, sdk: Sdk, args: list[str], o: dict[str, Any],
                action: str) -> tuple[Any, str]:
        job_id, queue = self._job(sdk, args, o, action)
        method = getattr(sdk, f"{action}_job")
        result = method(job_id, queue)
        if result is None or result is False:
            raise CommandError(f"no job {job_id} in queue {queue!r}")
        if result is True:
            job = sdk.get_job(job_id, queue)
            status = job.status if job else "deleted"
            note = " (running: cancellation requested)" if job and job.cancel_requested else ""
            return {"id": job_id, "queue": queue, "status": status}, f"{action}: {job_id} -> " \
                f"{status}{note}"
        return result.to_dict(), f"{action}: {job_id} -> {result.status}"

    def do_retry(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        return self._change(sdk, args, o, "retry")

    def do_cancel(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        return self._change(sdk, args, o, "cancel")

    def do_delete(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        return self._change(sdk, args, o, "delete")

    def do_pause(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        return self._change(sdk, args, o, "pause")

    def do_resume(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        return self._change(sdk, args, o, "resume")

    def do_pause_queue(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        queue = self._one(args, "queue", "pause-queue")
        sdk.pause_queue(queue)
        return {"queue": queue, "paused": True}, f"queue {queue!r} paused"

    def do_resume_queue(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        queue = self._one(args, "queue", "resume-queue")
        sdk.resume_queue(queue)
        return {"queue": queue, "paused": False}, f"queue {queue!r} resumed"

    def do_workers(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        workers = sdk.get_workers()
        rows = [(w.id, w.host, w.pid, ",".join(w.queues), w.concurrency, len(w.running),
                 _when(w.last_seen)) for w in workers]
        text = _table(rows, ("ID", "HOST", "PID", "QUEUES", "CONCURRENCY", "RUNNING",
                             "LAST SEEN (UTC)"))
        return [w.to_dict() for w in workers], text if rows else "no live workers"

    def do_dlq(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        if args:
            if len(args) != 2 or args[0] not in ("requeue", "delete"):
                raise CommandError("usage: remq dlq [requeue|delete ENTRY_ID]")
            if args[0] == "delete":
                if not sdk.delete_dlq(args[1]):
                    raise CommandError(f"no DLQ entry {args[1]}")
                return {"entry_id": args[1], "deleted": True}, f"deleted DLQ entry {args[1]}"
            job = sdk.requeue_dlq(args[1])
            if job is None:
                raise CommandError(f"no DLQ entry {args[1]}")
            return job.to_dict(), f"requeued {job.id} in {job.state.queue!r}: {job.status}"
        entries = sdk.list_dlq(limit=o["limit"], offset=o["offset"], queue=o["queue"])
        rows = [(e.entry_id, e.queue, e.name, e.id, e.attempts, e.reason, e.error[:60])
                for e in entries]
        text = _table(rows, ("ENTRY", "QUEUE", "NAME", "JOB", "ATTEMPTS", "REASON", "ERROR"))
        return [e.to_dict() for e in entries], text if rows else "DLQ is empty"

    def do_retry_failed(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        queue = o["queue"] or self._one(args, "queue", "retry-failed")
        n = sdk.retry_all_failed(queue)
        return {"queue": queue, "retried": n}, f"retried {n} failed jobs in {queue!r}"

    def do_delete_completed(self, sdk: Sdk, args: list[str],
                            o: dict[str, Any]) -> tuple[Any, str]:
        queue = o["queue"] or self._one(args, "queue", "delete-completed")
        if o["older_than"] is None:
            raise CommandError("remq delete-completed needs --older-than SECONDS")
        n = sdk.delete_completed_older_than(queue, int(o["older_than"] * 1000))
        return {"queue": queue, "deleted": n}, f"deleted {n} completed jobs in {queue!r}"

    def do_health(self, sdk: Sdk, args: list[str], o: dict[str, Any]) -> tuple[Any, str]:
        """For probes (systemd, Kubernetes): a worker is healthy while its heartbeat key
        lives (it expires after three missed heartbeats)."""
        if args:
            raise CommandError("remq health takes no arguments; use --worker-id ID")
        try:
            ping(sdk.conn.sync)
        except (RedisError, RedisClusterException) as exc:
            raise CommandError(f"unhealthy: Redis at {sdk.conn!r} does not answer ({exc})"
                               ) from None
        wanted = o["worker_id"]
        if not wanted:
            return {"redis": "ok"}, f"ok: Redis at {sdk.conn!r} answers"
        workers = sdk.get_workers()
        live = [w for w in workers if w.id == wanted or w.id.startswith(f"{wanted}-")]
        if not live:
            known = ", ".join(w.id for w in workers) or "none"
            raise CommandError(f"unhealthy: no live worker {wanted!r} (no fresh heartbeat; "
                               f"live workers: {known})")
        now_ms = time.time() * 1000
        ages = {w.id: round((now_ms - w.last_seen) / 1000, 1) for w in live}
        text = "; ".join(f"worker {i} last seen {a}s ago" for i, a in ages.items())
        return {"redis": "ok", "workers": ages}, f"ok: Redis answers; {text}"
