"""``TaskGatewayConsumer``: the original remq's WebSocket gateway, on Django Channels.

A connection emits tasks (``queued``), then receives that task's ``task_update`` /
``task_retry`` / ``task_finished`` through its Channels group; one opened with
``x-get-broadcast: true`` (or ``?broadcast=1``) and allowed by the policy receives
every task's events. Workers send them through the channel layer
(:mod:`.delivery`), so they may run in other processes or on other hosts.

``task_finished`` reaches a following connection exactly once: from the layer, or,
if the layer lost it, from the job record (re-read every :data:`RECONCILE_S`).

Client input keys nothing that outlives the frame before the policy has let it in: a
refused frame leaves no state (a queue name a subscribe names is not remembered until
a job is found there), and what a connection keeps is bounded (``watching`` by
``max_in_flight``, ``done`` by :data:`MAX_DONE`). Each emit takes a hold of its user's
(:mod:`.holds`), so one user's unfinished tasks are bounded across connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ..api import get_task_manager
from ..conf import get_settings
from ..core import TaskManager
from ..core.errors import InvalidOptions
from ..core.store.keys import check_queue_name
from .admission import TOO_MANY_CONNECTIONS, client_address, connections
from .delivery import broadcast_group, task_group
from .holds import Holds, holder
from .keys import OWNER, WATCH, GatewayKeys
from .policy import GatewayPolicy
from .protocol import (
    FINAL,
    ClientError,
    check_client_delay,
    emit_fields,
    parse,
    task_id_of,
    wants_broadcast,
)
from .rate import TOO_MANY_FRAMES, FrameRate
from .scripts import JobState, run, watch

log = logging.getLogger("django_remq.gateway")

REGISTRY_TTL_MS = 30_000  # a connection's registry entries outlive it by at most this
REGISTRY_EVERY_S = 10.0
RECONCILE_S = 2.0
FINISH_GRACE_MS = 2_000  # a final state this old whose task_finished never came: send it
MAX_DONE = 1000  # task_finished sent, remembered to drop a late duplicate (newest kept)
DONE_KEEP_S = 60.0
KEEPER = "remq-gateway-keeper"  # each connection's task of rounds (its name)


class TaskGatewayConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Mount under ``RemqOriginValidator(AuthMiddlewareStack(URLRouter(...)))``
    (:mod:`.origin`)."""

    tm: TaskManager
    policy: GatewayPolicy
    holds: Holds
    gateway_keys: GatewayKeys
    _counted = False  # in this process's connection count (:mod:`.admission`)
    address: str | None = None
    _keeper: asyncio.Task[None] | None = None  # the registry and reconcile rounds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # a consumer cancelled before its disconnect ran (the server's close
            self._end()  # timeout, while Redis hangs): its place back, its rounds over

    async def connect(self) -> None:
        self.watching: dict[str, str] = {}  # task id -> queue, until its task_finished
        self.done: dict[str, float] = {}  # task ids whose task_finished was sent
        self.broadcast = False
        self._background: set[asyncio.Future[Any]] = set()
        if self.channel_layer is None:
            log.error("gateway: no channel layer configured (CHANNEL_LAYERS); refusing "
                      "the connection")
            await self.close(code=1011)
            return
        self.policy = GatewayPolicy.from_settings(get_settings().gateway)
        self.address = client_address(self.scope)
        refused = connections.enter(self.address, self.policy.max_connections,
                                    self.policy.max_connections_per_address)
        if refused is not None:
            await self.accept()  # so that the client learns why (daphne drops a reason)
            await self.send_json(ClientError("too_many_connections", refused).frame())
            await self.close(code=TOO_MANY_CONNECTIONS, reason=refused)
            return
        self._counted = True  # given back by _end, however the consumer ends
        self.rate = FrameRate(self.policy.max_frames_per_second)
        self.tm = await sync_to_async(get_task_manager, thread_sensitive=False)()
        self.gateway_keys = GatewayKeys(self.tm.keys.prefix)
        self.holds = Holds(self.tm, holder(self.scope), self.policy.max_in_flight_per_user)
        await self.accept()
        if wants_broadcast(self.scope):
            if await self.policy.check("can_broadcast", self.scope):
                self.broadcast = True
                await self.channel_layer.group_add(broadcast_group(self.tm.keys.prefix),
                                                   self.channel_name)
                await self._register()
            else:
                await self.send_json(ClientError(
                    "not_permitted", "broadcast (every task's events) is not permitted for "
                    "this connection (GATEWAY['can_broadcast']; default: staff)").frame())
        self._keeper = asyncio.create_task(self._keep(), name=KEEPER)

    async def disconnect(self, code: int) -> None:
        self._end()
        if not hasattr(self, "tm"):
            return
        prefix = self.tm.keys.prefix
        for task_id in list(self.watching):
            await self.channel_layer.group_discard(task_group(prefix, task_id),
                                                   self.channel_name)
        if self.broadcast:
            await self.channel_layer.group_discard(broadcast_group(prefix), self.channel_name)
            try:
                await self.tm.conn.aio.zrem(self.gateway_keys.broadcast, self.channel_name)
            except Exception as exc:  # it expires anyway
                log.warning("gateway: could not leave the broadcast registry (%s)", exc)

    def _end(self) -> None:
        if self._counted:
            self._counted = False
            connections.leave(self.address)
        if self._keeper is not None:
            self._keeper.cancel()

    # -- client frames ----------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None,
                      **kwargs: Any) -> None:
        if not self.rate.take():
            await self._over_the_rate()
            return
        task_id = None
        try:
            msg = parse(text_data if text_data is not None else bytes_data,
                        self.policy.max_message_bytes)
            if msg["type"] == "emit":
                await self.emit(msg)
                return
            task_id = task_id_of(msg)
            if msg["type"] == "subscribe":
                await self.subscribe(task_id, msg.get("queue"))
            else:
                await self.unsubscribe(task_id)
        except ClientError as exc:
            await self.send_json(exc.frame())
        except Exception:
            log.exception("gateway: could not handle a client frame")
            await self.send_json(ClientError("unavailable", "the server could not handle "
                                             "this message; try again", task_id).frame())

    async def _over_the_rate(self) -> None:
        if self.rate.dropped == 1:
            await self.send_json(ClientError(
                "rate_limited", f"more than {self.rate.per_second} frames a second: frames "
                "are dropped until you slow down (GATEWAY['max_frames_per_second'])").frame())
        elif self.rate.abusive:
            log.warning("gateway: closing a connection that kept sending over %d frames/s",
                        self.rate.per_second)
            await self.close(code=TOO_MANY_FRAMES)

    async def emit(self, msg: dict[str, Any]) -> None:
        event, queue, data, options = emit_fields(msg, self.policy.client_options)
        check_client_delay(options, self.policy.max_client_delay_ms)
        if not self.policy.allowed(event):  # first: an unknown event reads as a refused one
            raise ClientError("not_allowed", f"{event!r} may not be emitted over the gateway "
                              "(GATEWAY['allowed_events'], or @handler(..., expose=True))")
        queues = sorted({h.queue for h in self.tm.handlers
                         if h.event == event and queue in (None, h.queue)})
        if not queues:
            where = f" in queue {queue!r}" if queue else ""
            raise ClientError("unknown_event", f"there is no task {event!r}{where}")
        if queue is None and len(queues) > 1:
            raise ClientError("invalid_message", f"{event!r} is handled in queues {queues}; "
                              "say which with \"queue\"")
        queue = queue or queues[0]
        if not await self.policy.check("can_emit", self.scope, event, queue, data):
            raise ClientError("not_permitted", f"emitting {event!r} is not permitted for this "
                              "connection (GATEWAY['can_emit']; default: signed-in users)")
        self._room_for_one()
        owner = self._user_id()
        # the record says who follows it (the workers' sink reads "watch" with each job to
        # run) and who emitted it: extra fields, which the engine keeps and never reads
        extra = {WATCH: "1", **({OWNER: owner} if owner else {})}
        try:
            queue, job = self.tm.prepare(event, queue, data, options, extra=extra)
        except (InvalidOptions, TypeError, ValueError) as exc:
            raise ClientError(getattr(exc, "code", "invalid_options"), str(exc)) from None
        if "id" in options:  # GATEWAY['client_options'] lets clients choose ids
            await self._may_take(job.id, queue, owner)
        await self.holds.take(queue, job.id, job.run_at_ms)
        try:
            await self._follow(job.id, queue)  # in the group before the task can run
            task_id = (await self.tm.aenqueue(queue, [job]))[0]
            if "id" in options:  # another emit of that id may have come first
                await self._may_take(job.id, queue, owner, written=True)
        except BaseException:
            await self._unfollow(job.id)
            await self.holds.release(queue, job.id)
            raise
        if task_id != job.id:  # merged into a pending trailing-debounced job
            await self._unfollow(job.id)
            await self.holds.release(queue, job.id)
            await self.holds.take(queue, task_id, job.run_at_ms, force=True)
            await self._follow(task_id, queue)
        await self.send_json({"type": "queued", "taskId": task_id})

    async def _may_take(self, task_id: str, queue: str, owner: str | None, *,
                        written: bool = False) -> None:
        """A client's own id must not name a task it may not follow: emitting it would
        follow that task (a live job is not enqueued twice) or replace its record.
        ``written``: after the emit, when the record's owner being ours means it is ours."""
        found = await self._lookup(task_id, queue)
        if found is None or (found[1].owner == owner and (written or owner is not None)):
            return
        if not await self.policy.check("can_subscribe", self.scope, task_id, found[1].owner):
            raise ClientError("not_permitted", f"task id {task_id!r} is taken by a task this "
                              "connection may not follow; choose another id", task_id)

    async def subscribe(self, task_id: str, queue: Any) -> None:
        if queue is not None:
            try:
                check_queue_name(queue)  # remembers nothing: the name is the client's
            except ValueError as exc:
                raise ClientError("invalid_message", f"\"queue\": {exc}", task_id) from None
        found = await self._lookup(task_id, queue)
        owner = found[1].owner if found else None
        if not await self.policy.check("can_subscribe", self.scope, task_id, owner):
            raise ClientError("not_permitted", "following this task is not permitted for this "
                              "connection (GATEWAY['can_subscribe']; default: its emitter, "
                              "or staff)", task_id)
        if found is None:
            raise ClientError("not_found", f"no task {task_id!r}", task_id)
        queue, state = found
        if state.status not in FINAL:
            if task_id not in self.watching:
                self._room_for_one()
                await self._follow(task_id, queue)
            state = (await run(self.tm, [watch(self.tm, queue, task_id, flag=True)]))[0] or state
        progress = state.progress or {}
        await self.send_json({"type": "subscribed", "taskId": task_id, "queue": queue,
                              "status": state.status, "progress": progress.get("progress"),
                              "data": progress.get("data")})
        if state.status in FINAL:  # its end, as an answer to this subscribe
            await self._send_finished(task_id, queue, state, again=True)

    async def unsubscribe(self, task_id: str) -> None:
        await self._unfollow(task_id)
        await self.send_json({"type": "unsubscribed", "taskId": task_id})

    # -- events from workers (channel layer) -----------------------------------------

    async def remq_events(self, message: dict[str, Any]) -> None:
        """A batch of live events from a worker, in order (see :mod:`.delivery`)."""
        broadcast = message.get("via") == "broadcast"
        for event in message["events"]:
            task_id = event["taskId"]
            if broadcast:
                if task_id in self.watching:
                    continue  # it comes through the task's own group, in order
            elif task_id not in self.watching:
                continue  # unsubscribed, or finished already
            if task_id in self.done:
                continue
            if event["type"] == "task_finished":
                self._mark_finished(task_id)
            await self.send_json(event)

    def _mark_finished(self, task_id: str) -> None:
        """Synchronous on purpose: the one place that lets a task_finished through."""
        self.done.pop(task_id, None)  # to the end: the newest are kept
        self.done[task_id] = time.monotonic()
        queue = self.watching.pop(task_id, None)
        if queue is not None:
            self._in_background(self.channel_layer.group_discard(
                task_group(self.tm.keys.prefix, task_id), self.channel_name))
            self._in_background(self.holds.release(queue, task_id))
        if len(self.done) > MAX_DONE:
            cutoff = time.monotonic() - DONE_KEEP_S
            kept = [(k, t) for k, t in self.done.items() if t > cutoff]
            self.done = dict(kept[-MAX_DONE // 2:])

    def _in_background(self, step: Any) -> None:
        future = asyncio.ensure_future(step)
        self._background.add(future)
        future.add_done_callback(self._done_in_background)

    def _done_in_background(self, future: asyncio.Future[Any]) -> None:
        self._background.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("gateway: could not leave a finished task's group or hold (%s); "
                        "both expire", future.exception())

    async def _send_finished(self, task_id: str, queue: str, state: JobState | None, *,
                             again: bool = False) -> None:
        if task_id in self.done and not again:
            return
        self._mark_finished(task_id)
        await self.send_json({"type": "task_finished", "taskId": task_id, "event": state.name
                              if state else None, "queue": queue,
                              "status": state.status if state else "deleted",
                              "error": state.error if state and state.status == "failed"
                              else None})

    # -- following tasks --------------------------------------------------------------

    def _room_for_one(self) -> None:
        limit = self.policy.max_in_flight
        if len(self.watching) >= limit:
            raise ClientError("too_many_in_flight", f"this connection already follows {limit} "
                              "unfinished tasks (GATEWAY['max_in_flight']); wait for one to "
                              "finish or unsubscribe")

    def _user_id(self) -> str | None:
        user = self.scope.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            return str(user.pk)
        return None

    async def _follow(self, task_id: str, queue: str) -> None:
        self.watching[task_id] = queue
        self.done.pop(task_id, None)
        await self.channel_layer.group_add(task_group(self.tm.keys.prefix, task_id),
                                           self.channel_name)
        expiry = int(time.time() * 1000) + REGISTRY_TTL_MS
        await self.tm.conn.aio.zadd(self.gateway_keys.watched, {task_id: expiry})

    async def _unfollow(self, task_id: str) -> None:
        if self.watching.pop(task_id, None) is not None:
            await self.channel_layer.group_discard(task_group(self.tm.keys.prefix, task_id),
                                                   self.channel_name)

    async def _lookup(self, task_id: str, queue: str | None) -> tuple[str, JobState] | None:
        """The task's queue and state (the protocol's subscribe names no queue)."""
        queues = [queue] if queue else sorted(
            await self.tm.conn.aio.smembers(self.tm.keys.queues))  # type: ignore[misc]
        # a client's queue name is not cached: a refused frame must leave nothing behind
        calls = [watch(self.tm, q, task_id, flag=False, remember=not queue) for q in queues]
        for q, state in zip(queues, await run(self.tm, calls), strict=True):
            if state is not None:
                return q, state
        return None

    async def _register(self) -> None:
        """Refresh this connection's entries in the registries the workers read."""
        keys, expiry = self.gateway_keys, int(time.time() * 1000) + REGISTRY_TTL_MS
        pipe = self.tm.conn.aio.pipeline(transaction=False)
        if self.broadcast:
            pipe.zadd(keys.broadcast, {self.channel_name: expiry})
            pipe.zremrangebyscore(keys.broadcast, "-inf", expiry - 2 * REGISTRY_TTL_MS)
        if self.watching:
            pipe.zadd(keys.watched, dict.fromkeys(self.watching, expiry))
        pipe.zremrangebyscore(keys.watched, "-inf", expiry - 2 * REGISTRY_TTL_MS)
        await pipe.execute()

    async def _reconcile(self) -> None:
        """Send the task_finished of followed tasks that ended without one reaching us."""
        items = list(self.watching.items())
        if not items:
            return
        calls = [watch(self.tm, q, t, flag=False) for t, q in items]
        now = int(time.time() * 1000)
        for (task_id, queue), state in zip(items, await run(self.tm, calls), strict=True):
            if task_id not in self.watching:
                continue
            if state is None:
                await self._send_finished(task_id, queue, None)
            elif state.status in FINAL and now - (state.finished_at or 0) >= FINISH_GRACE_MS:
                log.info("gateway: task_finished of %s came from its record (the channel layer "
                         "did not deliver it)", task_id)
                await self._send_finished(task_id, queue, state)

    async def _keep(self) -> None:
        last_register = time.monotonic()
        while True:
            await asyncio.sleep(RECONCILE_S)
            try:
                await self._reconcile()
                if time.monotonic() - last_register >= REGISTRY_EVERY_S:
                    await self._register()
                    last_register = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("gateway: connection upkeep failed (%s); retrying", exc)
