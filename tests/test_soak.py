"""Every handler shape at once: a few thousand jobs through one real ``runworker_remq``.

Async and plain ``def`` handlers log, report progress and emit follow-ups (``ctx.emit``
from both kinds, ``ctx.aemit``), fail and retry, fail for good (dead letters), time out,
are cancelled while running or before they start, wait for their delay, and are
debounced (leading and trailing), all interleaved on one worker. A watchdog wants every
job, follow-ups included, final by a deadline in the state its kind must end in, with
exactly the runs it should have had (each handler counts its runs in Redis: nothing dies
here, so at-least-once never has a reason to run a job twice). Then the worker must be
idle without spinning, and with a handler that will not return, SIGTERM must stop it
within its ``--shutdown-timeout`` and a second.

It caught the worker that spun at 100 % CPU in ``TaskUpdates.drain`` on Python 3.12+
when an async handler logged and then called ``ctx.emit``: the soak is cheap enough to
run on every leg of the matrix, where such a bug shows on some Pythons only.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

import django_remq
from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.types import AdminJobData

from .soak_app.spec import (
    FLAKY_RUNS,
    LEAD_WINDOW_MS,
    OPTIONS,
    QUEUE,
    RETRIES,
    RUNS,
    SAW_CANCEL,
    TRAIL_WINDOW_MS,
)
from .workers import ROOT, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.soak]

CONCURRENCY = 8
SHUTDOWN_TIMEOUT = 2.0  # --shutdown-timeout; SIGTERM must stop the worker within it + 1 s
FINAL_WITHIN = 30.0  # seconds after the last emit for every job to reach a final state
IDLE_SECONDS = 3.0
IDLE_CPU_MAX = 0.3  # seconds of worker CPU allowed over IDLE_SECONDS of idleness
FINAL = frozenset({"completed", "failed", "cancelled"})
CHUNK = 200  # jobs per emit_many; the worker is running while the next chunks go out

#: top-level jobs per event (follow-ups come on top: two per report / chain job)
COUNTS = {
    "soak.report_async": 300, "soak.chain_async": 200, "soak.report_sync": 250,
    "soak.plain_async": 150, "soak.plain_sync": 150,
    "soak.flaky_async": 30, "soak.flaky_sync": 30,
    "soak.doomed_async": 20, "soak.doomed_sync": 20,
    "soak.slow_async": 12, "soak.slow_sync": 3,  # abandoned sync threads stay below the cap
    "soak.long_async": 2, "soak.long_sync": 2,
    "soak.never": 20, "soak.delayed": 100,
}
#: log lines of the jobs that emit two follow-ups
PARENT_LOGS = {"soak.report_async": 1, "soak.chain_async": 1, "soak.report_sync": 2}
#: event -> (final status, runs, errors) of the other jobs
ENDS: dict[str, tuple[str, int, int | None]] = {
    "soak.plain_async": ("completed", 1, 0), "soak.plain_sync": ("completed", 1, 0),
    "soak.flaky_async": ("completed", FLAKY_RUNS, RETRIES),
    "soak.flaky_sync": ("completed", FLAKY_RUNS, RETRIES),
    "soak.doomed_async": ("failed", RETRIES + 1, RETRIES + 1),
    "soak.doomed_sync": ("failed", RETRIES + 1, RETRIES + 1),
    "soak.slow_async": ("failed", 2, 2), "soak.slow_sync": ("failed", 1, 1),  # timed out
    "soak.long_async": ("cancelled", 1, None), "soak.long_sync": ("cancelled", 1, None),
    "soak.never": ("cancelled", 0, None), "soak.delayed": ("completed", 1, 0),
}
RESULT_CHECKED = {"soak.plain_async", "soak.plain_sync", "soak.flaky_async", "soak.flaky_sync"}
LEAD_BURSTS, LEAD_SIZE = 8, 10
TRAIL_BURSTS, TRAIL_SIZE = 8, 8


@dataclass
class Expect:
    """What one job must end as; ``None`` is "not checked" (checked per group instead)."""

    event: str
    status: frozenset[str]
    runs: int | None
    errors: int | None = None
    logs: int | None = None
    result: Any = None
    check_result: bool = False
    not_before_ms: int = 0  # a delayed job must not run before this (epoch ms)


def expect(event: str, status: str, runs: int, **kw: Any) -> Expect:
    return Expect(event, frozenset({status}), runs, **kw)


def _never_here(task: Any, ctx: Any) -> None:
    raise AssertionError("the soak's handlers run in the worker, not in the test")


@pytest.fixture
def emitter(make_tm: Any) -> TaskManager:
    """An emitting TaskManager on the test prefix that knows the soak's handler options
    (trailing debounce is applied by the emitter)."""
    manager: TaskManager = make_tm()
    for event, options in OPTIONS.items():
        manager.register_handler(event, _never_here, queue=QUEUE, options=options)
    return manager


class Worker:
    """A ``runworker_remq`` subprocess logging to a file, and what it was doing."""

    def __init__(self, redis_url: str, prefix: str, log: Path) -> None:
        self.log = log
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django_settings_soak",
               "REMQ_REDIS_URL": redis_url, "REMQ_TEST_PREFIX": prefix,
               "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "django", "runworker_remq", "--queues", QUEUE,
                 "--concurrency", str(CONCURRENCY), "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        self.ps = psutil.Process(self.proc.pid)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def report(self) -> str:
        """Its CPU use now, every thread's stack (faulthandler on SIGUSR1, see the settings;
        py-spy too if installed) and the tail of its log."""
        if self.proc.poll() is not None:
            return f"the worker exited with {self.proc.returncode}; its log:\n{self.text()[-6000:]}"
        parts = [f"worker CPU now: {self.ps.cpu_percent(interval=0.5):.0f} %"]
        if shutil.which("py-spy"):
            spy = subprocess.run(["py-spy", "dump", "--pid", str(self.proc.pid)],
                                 capture_output=True, text=True, timeout=30, check=False)
            parts.append(f"py-spy dump:\n{spy.stdout}{spy.stderr}")
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        parts.append(f"its log (ending with its threads' stacks):\n{self.text()[-8000:]}")
        return "\n".join(parts)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def worker(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(redis_url, prefix, tmp_path / "worker.log")
    try:
        if not wait_until(lambda: "remq worker:" in w.text() or w.proc.poll() is not None, 30):
            pytest.fail(f"the worker did not start in 30 s\n{w.report()}")
        assert w.proc.poll() is None, w.report()
        yield w
    finally:
        w.kill()


class Soak:
    """The plan (job id -> :class:`Expect`) and the emitting side of the soak."""

    def __init__(self, tm: TaskManager, sdk: Sdk, r: redis.Redis, prefix: str,
                 seed: int) -> None:
        self.tm, self.sdk, self.r, self.seed = tm, sdk, r, seed
        self.rng = random.Random(seed)
        self.runs_key, self.saw_cancel_key = f"{prefix}:{RUNS}", f"{prefix}:{SAW_CANCEL}"
        self.jobs: dict[str, Expect] = {}
        self.lead: dict[str, list[str]] = defaultdict(list)  # burst -> its job ids
        self.trail: dict[str, list[str]] = {}  # burst -> the id each emit returned
        self.trail_last: dict[str, Any] = {}  # burst -> the data of its last emit
        self.long: set[str] = set()  # running until cancelled
        self.cancel_asked: set[str] = set()
        self.final: set[str] = set()
        self.status: dict[str, str | None] = {}

    def items(self) -> list[dict[str, Any]]:
        """Every top-level job, its expectation recorded, shuffled."""
        items = []
        for event, count in COUNTS.items():
            for n in range(count):
                items.append(self._plan(event, f"{event}-{n}"))
        for b in range(LEAD_BURSTS):
            for n in range(LEAD_SIZE):
                job_id = f"soak.lead-{b}-{n}"
                self.lead[f"b{b}"].append(job_id)
                self.jobs[job_id] = Expect("soak.lead", frozenset({"completed", "cancelled"}),
                                           None)
                items.append({"event": "soak.lead", "data": {"burst": f"b{b}", "n": n},
                              "options": {"id": job_id}})
        self.rng.shuffle(items)
        return items

    def _plan(self, event: str, job_id: str) -> dict[str, Any]:
        options: dict[str, Any] = {"id": job_id}
        if event in PARENT_LOGS:  # and its two follow-ups, with ids it derives from its own
            self.jobs[job_id] = expect(event, "completed", 1, errors=0, logs=PARENT_LOGS[event])
            self.jobs[f"{job_id}.a"] = expect("soak.child_async", "completed", 1, logs=1,
                                              result=job_id, check_result=True)
            self.jobs[f"{job_id}.s"] = expect("soak.child_sync", "completed", 1,
                                              result=job_id, check_result=True)
        elif event.startswith("soak.doomed") and self.rng.random() < 0.5:
            options["attempts"] = 0  # the emit's own count wins over the handler's
            self.jobs[job_id] = expect(event, "failed", 1, errors=1)
        else:
            status, runs, errors = ENDS[event]
            # checked for these only: plain ones return their data, flaky ones the attempt
            result = {"n": job_id} if event.startswith("soak.plain") else FLAKY_RUNS
            self.jobs[job_id] = expect(event, status, runs, errors=errors, result=result,
                                       check_result=event in RESULT_CHECKED)
        if event == "soak.never":
            options["delay_ms"] = 30_000
        elif event == "soak.delayed":
            options["delay_ms"] = self.rng.randrange(100, 2000)  # not_before: at the emit
        elif event.startswith("soak.long"):
            self.long.add(job_id)
        return {"event": event, "data": {"n": job_id}, "options": options}

    def emit_chunk(self, chunk: list[dict[str, Any]]) -> None:
        for item in chunk:  # a delay counts from the emit: no earlier than now
            if item["event"] == "soak.delayed":
                expectation = self.jobs[item["options"]["id"]]
                expectation.not_before_ms = int(time.time() * 1000) + item["options"]["delay_ms"]
        ids = self.tm.emit_many(chunk)
        assert ids == [item["options"]["id"] for item in chunk]
        for job_id in ids:  # cancelled while delayed: must never run
            if self.jobs[job_id].event == "soak.never":
                assert self.sdk.cancel_job(job_id, QUEUE) is True
                record = self.sdk.get_job(job_id, QUEUE)
                assert record is not None
                assert record.status == "cancelled", record

    def trail_burst(self, b: int) -> None:
        burst = f"t{b}"
        returned = []
        for n in range(TRAIL_SIZE):
            data = {"burst": burst, "n": n}
            returned.append(self.tm.emit("soak.trail", data=data))
            self.trail_last[burst] = data
        self.trail[burst] = returned
        for job_id in set(returned):
            self.jobs[job_id] = expect("soak.trail", "completed", 1)

    def poll(self) -> None:
        """Statuses of the jobs not final yet; cancel the long jobs that have started."""
        open_ids = [j for j in self.jobs if j not in self.final]
        pipe = self.r.pipeline(transaction=False)
        for job_id in open_ids:
            pipe.hget(self.tm.keys.queue(QUEUE).job(job_id), "status")
        for job_id, status in zip(open_ids, pipe.execute(), strict=True):
            self.status[job_id] = status
            if status in FINAL:
                self.final.add(job_id)
        for job_id in self.long - self.cancel_asked:
            if int(self.r.hget(self.runs_key, job_id) or 0) > 0:  # type: ignore[arg-type]
                assert self.sdk.cancel_job(job_id, QUEUE) is True
                self.cancel_asked.add(job_id)

    def not_final(self) -> str:
        left = sorted((j for j in self.jobs if j not in self.final),  # running ones first
                      key=lambda j: self.status.get(j) != "processing")
        by_kind = Counter((self.jobs[j].event, self.status.get(j)) for j in left)
        shown = ", ".join(f"{j} ({self.jobs[j].event}: {self.status.get(j)})" for j in left[:12])
        return (f"{len(left)} of {len(self.jobs)} jobs not final (seed {self.seed}); by event "
                f"and status: {dict(by_kind)}; e.g. {shown}")


def _check(job_id: str, want: Expect, record: AdminJobData | None, runs: int) -> list[str]:
    """What is wrong with one job, if anything."""
    if record is None:
        return [f"{job_id} ({want.event}): no record"]
    bad = []
    if record.status not in want.status:
        bad.append(f"status {record.status}, wanted {sorted(want.status)}")
    if want.runs is not None and runs != want.runs:
        bad.append(f"ran {runs} times, wanted {want.runs}")
    if want.errors is not None and len(record.errors) != want.errors:
        bad.append(f"{len(record.errors)} errors, wanted {want.errors}: "
                   f"{[e.message for e in record.errors]}")
    if want.logs is not None and len(record.logs) != want.logs:
        bad.append(f"{len(record.logs)} log lines, wanted {want.logs}")
    if want.check_result and record.result != want.result:
        bad.append(f"result {record.result!r}, wanted {want.result!r}")
    if want.not_before_ms and isinstance(record.result, int) and (
            record.result < want.not_before_ms):
        bad.append(f"ran at {record.result}, {want.not_before_ms - record.result} ms early")
    return [f"{job_id} ({want.event}): {'; '.join(bad)}"] if bad else []


@pytest.mark.timeout(150)
def test_every_handler_shape_at_once(emitter: TaskManager, worker: Worker, r: redis.Redis,
                                     prefix: str) -> None:
    sdk = Sdk(emitter.conn, prefix=prefix)
    soak = Soak(emitter, sdk, r, prefix, seed=random.randrange(1 << 30))
    whoami = emitter.emit("soak.whoami", options={"id": "whoami"})
    soak.jobs[whoami] = expect("soak.whoami", "completed", 1)
    assert wait_until(lambda: (rec := sdk.get_job(whoami, QUEUE)) and rec.status in FINAL, 30), (
        f"the worker ran no job\n{worker.report()}")
    record = sdk.get_job(whoami, QUEUE)
    assert record is not None
    assert Path(record.result) == Path(django_remq.__file__), (
        f"the worker runs {record.result}, this test {django_remq.__file__}: not the same code")

    cpu0, t0 = worker.cpu(), time.monotonic()
    items = soak.items()
    trail_at = {len(items) * (b + 1) // (TRAIL_BURSTS + 1): b for b in range(TRAIL_BURSTS)}
    for start in range(0, len(items), CHUNK):
        soak.emit_chunk(items[start:start + CHUNK])
        for at, b in trail_at.items():
            if start <= at < start + CHUNK:
                soak.trail_burst(b)
        soak.poll()
    emitted = time.monotonic()

    deadline = emitted + FINAL_WITHIN
    while len(soak.final) < len(soak.jobs):
        if time.monotonic() > deadline or worker.proc.poll() is not None:
            pytest.fail(f"not every job was final {FINAL_WITHIN:.0f} s after the last emit: "
                        f"{soak.not_final()}\n{worker.report()}")
        time.sleep(0.1)
        soak.poll()
    wall, soak_cpu = time.monotonic() - t0, worker.cpu() - cpu0

    # each job ended as its kind must, with exactly the runs it should have had
    runs = {k: int(v) for k, v in r.hgetall(soak.runs_key).items()}  # type: ignore[union-attr]
    records = {j: sdk.get_job(j, QUEUE) for j in soak.jobs}
    wrong = [line for j, want in soak.jobs.items()
             for line in _check(j, want, records[j], runs.get(j, 0))]
    stray = sorted(set(runs) - set(soak.jobs))
    recoveries = [line for line in worker.text().splitlines()
                  if any(w in line for w in ("reclaimed", "taken over", "restarting"))]
    assert not wrong, (f"seed {soak.seed}: {len(wrong)} jobs ended wrong, e.g.\n"
                       + "\n".join(wrong[:30]) + "\nthe worker's recoveries (the only reason "
                       f"to run a job twice): {recoveries[:20]}")
    assert not stray, f"jobs that were never planned ran: {stray[:20]}"

    for burst, ids in soak.lead.items():  # leading: one ran, the others were not run
        ran = [j for j in ids if runs.get(j)]
        assert len(ran) == 1, f"lead burst {burst} (window {LEAD_WINDOW_MS} ms) ran {ran}"
        assert records[ran[0]].status == "completed"  # type: ignore[union-attr]
    for burst, ids in soak.trail.items():  # trailing: one job, with the last emit's data
        assert len(set(ids)) == 1, (
            f"trail burst {burst} (window {TRAIL_WINDOW_MS} ms) made jobs {ids}")
        assert records[ids[0]].result == soak.trail_last[burst]  # type: ignore[union-attr]
    saw = set(r.hkeys(soak.saw_cancel_key))  # type: ignore[arg-type]
    assert saw == soak.long, f"cancelled long handlers that saw it: {saw}, of {soak.long}"

    statuses = Counter(rec.status for rec in records.values() if rec is not None)
    stats = sdk.get_queue_stats(QUEUE)
    assert (stats.waiting, stats.delayed, stats.processing) == (0, 0, 0), stats
    assert (stats.completed, stats.failed, stats.cancelled) == (
        statuses["completed"], statuses["failed"], statuses["cancelled"]), (stats, statuses)
    assert stats.dlq == statuses["failed"], f"dead letters {stats.dlq}, failed jobs {statuses}"

    # idle: the worker waits for work without spinning
    cpu_before = worker.cpu()
    time.sleep(IDLE_SECONDS)
    idle_cpu = worker.cpu() - cpu_before
    assert idle_cpu < IDLE_CPU_MAX, (
        f"the idle worker used {idle_cpu:.2f} s of CPU in {IDLE_SECONDS:.0f} s\n{worker.report()}")

    # SIGTERM with a handler that will not return: out within the shutdown timeout, the
    # job handed back for another worker
    last = emitter.emit("soak.long_sync", data={"n": "at-shutdown"},
                        options={"id": "soak.long_sync-at-shutdown"})
    assert wait_until(lambda: r.hget(soak.runs_key, last), 10), worker.report()
    stop_t0 = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(SHUTDOWN_TIMEOUT + 1)
    except subprocess.TimeoutExpired:
        pytest.fail(f"SIGTERM did not stop the worker within --shutdown-timeout "
                    f"{SHUTDOWN_TIMEOUT:.0f} s + 1 s\n{worker.report()}")
    stopped_in = time.monotonic() - stop_t0
    assert code == 0, worker.text()[-4000:]
    assert "handed back 1 unfinished entries" in worker.text(), worker.text()[-4000:]
    assert r.hget(soak.runs_key, last) == "1"

    total_runs = sum(runs.values())
    ends = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    print(f"\nsoak (seed {soak.seed}, Python {sys.version.split()[0]}): {len(soak.jobs)} jobs "
          f"({ends}), {total_runs} handler runs in {wall:.1f} s, worker CPU "
          f"{soak_cpu:.1f} s ({soak_cpu / total_runs * 1000:.2f} ms a run); idle CPU "
          f"{idle_cpu:.3f} s in {IDLE_SECONDS:.0f} s; SIGTERM to exit {stopped_in:.2f} s "
          f"(--shutdown-timeout {SHUTDOWN_TIMEOUT:.0f}, one handler not returning)")
