"""The admin pages live over the WebSocket gateway, in a real browser: daphne serves the
pages and the gateway (tests/admin_asgi.py), a ``runworker_remq`` process runs the jobs,
and chromium opens the pages as a signed-in staff user. The live JSON endpoint is blocked
for the whole test, so every change the page shows came over the broadcast socket.
``REMQ_SCREENSHOTS=docs/screenshots`` saves the README's admin-job-live.png."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from django_remq.core import TaskManager

from .process_stack import Stack, wait_for_port
from .workers import free_port

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
MIDDLE = {13, 25, 38, 50, 63, 75, 88}  # live.report's progress with steps=8, before 100



def frames_of(frames: list[str], task_id: str) -> list[dict[str, Any]]:
    out = []
    for raw in frames:
        frame = json.loads(raw)
        if frame.get("taskId") == task_id:
            out.append(frame)
    return out


def test_pages_follow_the_broadcast_socket_without_polling(stack: Stack, redis_url: str,
                                                           tmp_path: Path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./dev test does)")
    port = free_port()
    daphne = stack.start("daphne", "-b", "127.0.0.1", "-p", str(port),
                         "tests.admin_asgi:application")
    stack.start("django", "runworker_remq", "--concurrency", "2")
    wait_for_port(port, daphne)
    base = f"http://127.0.0.1:{port}"
    tm = TaskManager.init(db=redis_url, prefix=stack.prefix)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 820})
        context.add_cookies([{"name": "sessionid", "value": stack.session, "url": base}])
        page = context.new_page()
        polls: list[str] = []

        def block(route: Any) -> None:
            polls.append(route.request.url)
            route.abort()

        page.route("**/admin/remq/live/**", block)
        sockets: list[str] = []
        frames: list[str] = []

        def on_socket(ws: Any) -> None:
            sockets.append(ws.url)
            ws.on("framereceived", lambda payload: frames.append(payload))

        page.on("websocket", on_socket)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # the job page: status and progress bar move with the task's events
        job_id = tm.emit("live.report", data={"steps": 8, "pause": 0.6},
                         options={"delay_ms": 4000})
        page.goto(f"{base}/admin/remq/jobs/default/{job_id}/")
        assert page.get_attribute("#remq-live", "data-remq-socket") == "/ws/remq/"
        assert page.inner_text("#remq-job-status") == "delayed"
        assert not page.is_visible(".remq-progress")  # no progress yet
        page.wait_for_function(
            "document.getElementById('remq-job-status').textContent === 'processing'"
            " && ['13%','25%','38%','50%','63%','75%','88%'].includes("
            "document.querySelector('.remq-progress-n').textContent)", timeout=30_000)
        shown = int(page.inner_text(".remq-progress-n").rstrip("%"))
        assert shown in MIDDLE
        width = page.get_attribute(".remq-progress [role=progressbar] span", "style")
        assert f"width: {shown}%" in width
        page.wait_for_function(
            "document.getElementById('remq-job-status').textContent === 'completed'",
            timeout=30_000)
        assert page.inner_text(".remq-progress-n") == "100%"
        assert sockets == [f"ws://127.0.0.1:{port}/ws/remq/?broadcast=1"]
        mine = frames_of(frames, job_id)
        assert {"type": "task_update", "progress": shown} in [
            {"type": f["type"], "progress": f.get("progress")} for f in mine]
        assert mine[-1]["type"] == "task_finished"
        assert mine[-1]["status"] == "completed"
        assert polls  # the page did try to re-fetch: every such request was refused

        # the jobs page: the row of a running job changes in place
        other = tm.emit("live.report", data={"steps": 8, "pause": 0.6},
                        options={"delay_ms": 4000})
        page.goto(f"{base}/admin/remq/jobs/?queue=default")
        row = f'tr[data-job="{other}"]'
        assert page.inner_text(f"{row} .remq-badge") == "delayed"
        page.wait_for_function(
            f"(r => r.querySelector('.remq-badge').textContent === 'processing'"
            f" && parseInt(r.querySelector('[role=progressbar]').getAttribute('aria-valuenow'))"
            f" > 0)(document.querySelector('{row}'))", timeout=30_000)
        page.wait_for_function(
            f"document.querySelector('{row} .remq-badge').textContent === 'completed'",
            timeout=30_000)
        assert any(f["type"] == "task_finished" for f in frames_of(frames, other))
        assert len(sockets) == 2
        assert errors == []

        # the README's picture: a page with polling allowed, mid-run, following the socket
        shots = Path(os.environ.get("REMQ_SCREENSHOTS") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        third = tm.emit("live.report", data={"steps": 8, "pause": 1.5})
        view = context.new_page()
        view.goto(f"{base}/admin/remq/jobs/default/{third}/")
        view.wait_for_function(
            "document.getElementById('remq-live-status').textContent.endsWith('WebSocket')"
            " && ['38%','50%','63%'].includes("
            "document.querySelector('.remq-progress-n').textContent)", timeout=30_000)
        view.screenshot(path=str(shots / "admin-job-live.png"), full_page=True)
        browser.close()
    tm.conn.close()
