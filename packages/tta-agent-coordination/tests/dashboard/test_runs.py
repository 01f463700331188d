"""The plan-run pages: list, filter and page runs, a run's detail, and cancelling a run.

Runs are real: started with ``PlanRuntime.start`` (legacy single-shot runs wait for a
driver), driven to the end by a real driver worker and agent, cancelled through the page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from tta_agent_coordination.dashboard import DashboardSources
from tta_agent_coordination.dashboard import runs as runs_module
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.plans import (
    Assessment,
    Plan,
    PlanRuntime,
    RunContext,
    RunMode,
    RunStatus,
    RuntimeFlags,
    Task,
)
from tta_agent_coordination.plans.machine import Policy, new_run, single_step_plan
from tta_agent_coordination.runtime.context import MessageContext
from tta_agent_coordination.runtime.worker import AgentWorker

from .conftest import TOKEN, Client

WRITER = AgentId("writer")


class OneStepPlanner:
    """Plans a task as its one request (the runs here are legacy single-shot ones)."""

    async def assess(self, task: Task) -> Assessment:
        return "single_shot"

    async def plan(self, task: Task, ctx: RunContext) -> Plan:
        return single_step_plan(task)


@pytest.fixture
async def runtime(sources: DashboardSources) -> PlanRuntime:
    flags = RuntimeFlags(enhanced=False, run_timeout_s=60)
    return PlanRuntime(sources.coordinator, planner=OneStepPlanner(), flags=flags)


def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="run-([^"]+)">', html)


async def start(runtime: PlanRuntime, *ids: str) -> None:
    for run_id in ids:
        await runtime.start(Task(agent=WRITER, payload={"text": run_id}), run_id=run_id)


async def test_runs_page_lists_runs_newest_first_with_a_live_fragment(
    sources: DashboardSources, client: Client, runtime: PlanRuntime
) -> None:
    await start(runtime, "r1-old", "r2-mid", "r3-new")
    http = await client()

    page = await http.get("/runs")
    assert page.status_code == 200
    assert 'href="/runs" class="on"' in page.text
    assert run_ids(page.text) == ["r3-new", "r2-mid", "r1-old"]
    row = re.search(r'<tr id="run-r3-new">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert "running" in row.group(1)
    assert "legacy" in row.group(1)
    assert re.search(r'class="num">0 / 1<', row.group(1))  # steps done / planned
    assert 'id="run-total">3<' in page.text

    live = await http.get("/runs", headers={"HX-Request": "true"})
    assert live.text.lstrip().startswith('<div id="live"')
    assert "<html" not in live.text
    assert run_ids(live.text) == ["r3-new", "r2-mid", "r1-old"]


async def test_runs_page_through_the_index_without_repeats_even_within_one_millisecond(
    sources: DashboardSources, client: Client
) -> None:
    assert sources.runs_admin is not None
    store = sources.runs_admin.store
    # Seven runs, five of them created in the same millisecond: the cursor's skip count
    # must neither repeat nor lose one of them at a page boundary.
    for n, created in enumerate([1000, 1000, 1000, 1000, 1000, 999, 2000]):
        first = new_run(f"t{n}", Task(agent=WRITER), RunMode.LEGACY, Policy())
        state = first.state.model_copy(update={"created_ms": created})
        assert await store.create(state, first.events, created)
    http = await client(page_size=2)
    seen: list[str] = []
    url = "/runs"
    for _ in range(10):
        page = await http.get(url)
        assert page.status_code == 200
        seen += run_ids(page.text)
        more = re.search(r'id="older-runs" href="/([^"]+)"', page.text)
        if more is None:
            break
        url = "/" + more.group(1).replace("&amp;", "&")
    assert seen[0] == "t6"
    assert sorted(seen[1:6]) == ["t0", "t1", "t2", "t3", "t4"]
    assert seen[6:] == ["t5"]


async def test_runs_filter_by_status(
    sources: DashboardSources, client: Client, runtime: PlanRuntime
) -> None:
    await start(runtime, "keep-1", "stop-1", "keep-2", "stop-2")
    for run_id in ("stop-1", "stop-2"):
        assert await runtime.cancel(run_id, "test")
    http = await client()

    cancelled = await http.get("/runs", params={"status": "cancelled"})
    assert run_ids(cancelled.text) == ["stop-2", "stop-1"]
    assert '<option value="cancelled" selected>' in cancelled.text
    running = await http.get("/runs", params={"status": "running"})
    assert run_ids(running.text) == ["keep-2", "keep-1"]
    none = await http.get("/runs", params={"status": "completed"})
    assert run_ids(none.text) == []
    assert 'id="no-runs"' in none.text

    bad = await http.get("/runs", params={"status": "exploded"})
    assert bad.status_code == 400
    assert "unknown run status &#39;exploded&#39;" in bad.text
    for cursor in ("nonsense", "12:x", "1:2:3"):
        wrong = await http.get("/runs", params={"cursor": cursor})
        assert wrong.status_code == 400
        assert "invalid run cursor" in wrong.text


async def test_a_filtered_page_that_fills_mid_step_loses_no_run(
    sources: DashboardSources, runtime: PlanRuntime
) -> None:
    # Newest first: d (running), c (cancelled), b (running), a (running). With pages of
    # two, the second index step finds two matches when one is missing: the page ends
    # at the first, and the next page starts right after it.
    await start(runtime, "a", "b", "c", "d")
    assert await runtime.cancel("c", "test")
    first = await sources.runs.page(count=2, status=RunStatus.RUNNING)
    assert [r.run_id for r in first.rows] == ["d", "b"]
    assert first.next_cursor is not None
    second = await sources.runs.page(cursor=first.next_cursor, count=2, status=RunStatus.RUNNING)
    assert [r.run_id for r in second.rows] == ["a"]
    assert second.next_cursor is None


async def test_a_filtered_page_examines_a_bounded_slice_of_the_index(
    sources: DashboardSources, runtime: PlanRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs_module, "FILTER_SCAN_LIMIT", 5)
    await start(runtime, *(f"busy-{n:02d}" for n in range(12)))
    page = await sources.runs.page(count=2, status=RunStatus.COMPLETED)
    assert page.rows == []
    assert page.examined == 5
    assert page.next_cursor is not None  # where to go on: never a full scan in one view
    rest = await sources.runs.page(cursor=page.next_cursor, count=2, status=RunStatus.RUNNING)
    assert [r.run_id for r in rest.rows] == ["busy-06", "busy-05"]


async def test_an_expired_run_is_left_out_of_the_list(
    sources: DashboardSources, client: Client, runtime: PlanRuntime
) -> None:
    await start(runtime, "gone", "here")
    assert sources.runs_admin is not None
    await sources.redis.delete(sources.runs_admin.store.keys.run("gone").state)
    page = await (await client()).get("/runs")
    assert run_ids(page.text) == ["here"]
    detail = await (await client()).get("/runs/gone")
    assert detail.status_code == 404
    assert "not found" in detail.text


async def _writer(sources: DashboardSources) -> AgentWorker:
    worker = AgentWorker(
        sources.coordinator, None, AgentId("writer", "w1"), poll_interval=0.1, grace_period=0.5
    )

    @worker.on_request()
    async def write(ctx: MessageContext[Any]) -> dict[str, Any]:
        if ctx.payload.get("fail"):
            from tta_agent_coordination.errors import PermanentError

            raise PermanentError("cannot write that")
        return {"written": ctx.payload.get("text", "")}

    return worker


@pytest.fixture
async def driven(sources: DashboardSources, runtime: PlanRuntime) -> AsyncIterator[PlanRuntime]:
    writer = await _writer(sources)
    driver = runtime.worker(poll_interval=0.1, grace_period=0.5, maintenance_interval=0.2)
    await writer.start()
    await driver.start()
    try:
        yield runtime
    finally:
        await driver.stop(grace_period=0)
        await writer.stop(grace_period=0)


async def test_a_run_page_shows_steps_results_and_events_live_until_it_ends(
    client: Client, runtime: PlanRuntime, driven: PlanRuntime
) -> None:
    http = await client()
    await start(runtime, "waiting")
    live = await http.get("/runs/waiting")
    assert live.status_code == 200
    assert 'id="run-status">running<' in live.text
    assert 'hx-trigger="every 2s"' in live.text  # refreshes itself while live
    assert 'id="cancel-run"' in live.text

    ok = await driven.execute(Task(agent=WRITER, payload={"text": "hello"}), run_id="ok-run")
    assert ok.status is RunStatus.COMPLETED
    page = await http.get("/runs/ok-run")
    assert 'id="run-status">completed<' in page.text
    assert 'hx-trigger="every' not in page.text  # ended: the refreshing stops
    assert 'id="cancel-run"' not in page.text
    step = re.search(r'<tr id="step-0">(.*?)</tr>', page.text, re.S)
    assert step is not None
    assert "succeeded" in step.group(1)
    assert '{"written": "hello"}' in step.group(1)
    kinds = re.findall(
        r'<tr id="event-[0-9-]+" class="event">\s*<td><code>[^<]*</code></td>\s*<td>([a-z_]+)</td>',
        page.text,
    )
    assert kinds[0] == "created"
    assert kinds[-1] == "completed"
    assert "step_succeeded" in kinds
    fragment = await http.get("/runs/ok-run", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="live">')

    failed = await driven.execute(
        Task(agent=WRITER, payload={"fail": True}), run_id="bad-run", timeout=20
    )
    assert failed.status is RunStatus.FAILED
    page = await http.get("/runs/bad-run")
    step = re.search(r'<tr id="step-0">(.*?)</tr>', page.text, re.S)
    assert step is not None
    assert "failed" in step.group(1)
    assert "permanent" in step.group(1)
    assert "cannot write that" in page.text

    listing = await http.get("/runs")
    for run_id, done, status in (("ok-run", "1 / 1", "completed"), ("bad-run", "0 / 1", "failed")):
        row = re.search(rf'<tr id="run-{run_id}">(.*?)</tr>', listing.text, re.S)
        assert row is not None
        cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
        assert cells[:2] == [done, "1"]  # steps done / planned, attempts
        assert status in row.group(1)


async def test_run_page_errors(client: Client, runtime: PlanRuntime) -> None:
    http = await client()
    await start(runtime, "there")
    missing = await http.get("/runs/never-was")
    assert missing.status_code == 404
    invalid = await http.get("/runs/bad%20id")
    assert invalid.status_code == 400
    assert "invalid run id" in invalid.text
    bad_after = await http.get("/runs/there", params={"after": "yesterday"})
    assert bad_after.status_code == 400
    assert "invalid event id" in bad_after.text
    later = await http.get("/runs/there", params={"after": "9999999999999-0"})
    assert 'id="no-events"' in later.text


async def test_cancelling_a_run_needs_the_token_and_a_confirmation_and_is_logged(
    client: Client, runtime: PlanRuntime
) -> None:
    await start(runtime, "to-cancel")
    http = await client()
    confirm = await http.get("/runs/to-cancel/confirm")
    assert 'id="confirm-form"' in confirm.text
    assert 'action="/runs/to-cancel/cancel"' in confirm.text

    with capture_logs() as logs:
        missing = await http.post("/runs/to-cancel/cancel", data={"confirm": "yes"})
        wrong = await http.post("/runs/to-cancel/cancel", data={"confirm": "yes", "token": "nope"})
        unconfirmed = await http.post("/runs/to-cancel/cancel", data={"token": TOKEN})
    assert (missing.status_code, wrong.status_code, unconfirmed.status_code) == (403, 403, 400)
    assert "wrong token: nothing was changed" in wrong.text
    refused = [e for e in logs if e["event"] == "dashboard_write_refused"]
    assert [(e["action"], e["run_id"], e["reason"]) for e in refused] == [
        ("cancel_run", "to-cancel", "missing"),
        ("cancel_run", "to-cancel", "wrong"),
    ]
    assert await runtime.status("to-cancel") is RunStatus.RUNNING

    with capture_logs() as logs:
        done = await http.post(
            "/runs/to-cancel/cancel",
            data={"confirm": "yes", "token": TOKEN, "reason": "operator said so"},
            follow_redirects=False,
        )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/runs/to-cancel?notice=Cancelled")
    result = await runtime.result("to-cancel")
    assert result.status is RunStatus.CANCELLED
    assert result.reason == "operator said so"
    (audit,) = [e for e in logs if e["event"] == "dashboard_write"]
    assert audit["action"] == "cancel_run"
    assert audit["run_id"] == "to-cancel"
    assert audit["applied"] is True
    page = await http.get(done.headers["location"])
    assert 'id="notice">Cancelled the run.<' in page.text
    assert 'id="run-status">cancelled<' in page.text

    again = await http.post(
        "/runs/to-cancel/cancel", data={"confirm": "yes", "token": TOKEN}, follow_redirects=True
    )
    assert "The run had ended already: nothing changed." in again.text
    ended = await http.get("/runs/to-cancel/confirm")
    assert 'id="run-ended"' in ended.text
    assert 'id="confirm-form"' not in ended.text

    unknown = await http.post("/runs/nobody/cancel", data={"confirm": "yes", "token": TOKEN})
    assert unknown.status_code == 404


async def test_a_read_only_dashboard_cannot_cancel(client: Client, runtime: PlanRuntime) -> None:
    await start(runtime, "safe")
    http = await client(token=None)
    page = await http.get("/runs/safe")
    assert 'id="cancel-run"' not in page.text
    assert "Read-only" in page.text
    refused = await http.post("/runs/safe/cancel", data={"confirm": "yes", "token": TOKEN})
    assert refused.status_code == 403
    assert "read-only" in refused.text
    assert await runtime.status("safe") is RunStatus.RUNNING
