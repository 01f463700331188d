"""Showing the demo: a live view, plain lines, and the summary table at the end.

The live view is redrawn from :meth:`DemoScenario.snapshot`; without a terminal (or
with ``--no-live``) each event is one plain line instead.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .meeting_scene import MeetingSceneResult
from .plan_scene import PlanSceneResult
from .scenario import DemoEvent, DemoResult, DemoScenario, DemoSnapshot
from .tta_scene import TTASceneResult

__all__ = [
    "LiveView",
    "PlainLog",
    "meeting_turns_table",
    "plan_steps_table",
    "render_snapshot",
    "summary_table",
    "tta_turns_table",
]

_STYLES = {"info": "", "ok": "green", "warn": "yellow", "error": "bold red"}
_BREAKER_STYLES = {"closed": "green", "half_open": "yellow", "open": "bold red"}
_EVENTS_SHOWN = 14


class PlainLog:
    """Writes each demo event as one line (for logs, pipes and ``--no-live``)."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def __call__(self, event: DemoEvent) -> None:
        """Print ``event``."""
        self._console.print(
            f"{event.at:6.2f}s [{event.act:<7}] {event.agent:<32} {event.text}",
            style=_STYLES[event.level] or None,
            markup=False,
            highlight=False,
        )


def _agents_table(snapshot: DemoSnapshot) -> Table:
    table = Table(title="agents (workers)", expand=True, title_justify="left")
    table.add_column("agent")
    table.add_column("role")
    table.add_column("state")
    for name in ("received", "acked", "retried", "dead", "replies", "in flight"):
        table.add_column(name, justify="right")
    for row in snapshot.agents:
        s = row.stats
        state_style = "green" if row.state == "running" else "dim"
        table.add_row(
            row.label,
            row.role,
            Text(row.state, style=state_style),
            str(s.received),
            str(s.succeeded),
            str(s.retried),
            str(s.dead_lettered),
            str(s.replies),
            str(s.in_flight),
        )
    return table


def _breaker_panel(snapshot: DemoSnapshot) -> Panel:
    state = Text(snapshot.breaker, style=_BREAKER_STYLES.get(snapshot.breaker, ""))
    redis = Text("DOWN (injected)", style="bold red") if snapshot.outage else Text("up", "green")
    body = Text.assemble(
        "redis: ",
        redis,
        "   breaker 'redis': ",
        state,
        f"   refused fast: {snapshot.rejected}",
    )
    if snapshot.transitions:
        body.append("\ntransitions: " + ", ".join(snapshot.transitions), style="dim")
    return Panel(body, title="Redis and its circuit breaker", title_align="left")


def _events_panel(snapshot: DemoSnapshot) -> Panel:
    lines = Text()
    for event in snapshot.events[-_EVENTS_SHOWN:]:
        lines.append(f"{event.at:6.2f}s {event.agent:<32} ", style="dim")
        lines.append(event.text + "\n", style=_STYLES[event.level])
    return Panel(lines, title="what happens", title_align="left")


def render_snapshot(snapshot: DemoSnapshot) -> RenderableType:
    """The live view of one snapshot: act, agents, breaker and the latest events."""
    header = Text.assemble(
        ("tta-coord demo", "bold"),
        f"   act: {snapshot.act}   {snapshot.elapsed:5.1f}s   ",
        f"requests answered: {snapshot.answered}",
    )
    return Group(header, _agents_table(snapshot), _breaker_panel(snapshot), _events_panel(snapshot))


class LiveView:
    """A rich live view of ``scenario``, refreshed several times a second while open.

    Use as ``with LiveView(scenario, console): await scenario.run()``.
    """

    def __init__(self, scenario: DemoScenario, console: Console) -> None:
        self._scenario = scenario
        self._live = Live(
            get_renderable=lambda: render_snapshot(scenario.snapshot()),
            console=console,
            refresh_per_second=8,
            transient=False,
        )

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)


def summary_table(result: DemoResult) -> Table:
    """One row per check of ``result``: what was expected, what happened, pass or fail."""
    table = Table(title="summary: did every message end where it should?", title_justify="left")
    table.add_column("check")
    table.add_column("expected")
    table.add_column("actual")
    table.add_column("", justify="center")
    for check in result.checks:
        mark = Text("ok", style="green") if check.ok else Text("FAIL", style="bold red")
        table.add_row(check.name, check.expected, check.actual, mark)
    return table


def tta_turns_table(scene: TTASceneResult) -> Table:
    """The TTA scene's turns: what each player typed, who answered, and the narrative."""
    table = Table(title="the TTA scene: each turn's narrative", title_justify="left")
    table.add_column("player")
    table.add_column("typed")
    table.add_column("answered by (ipa → wba → nga)")
    table.add_column("narrative")
    for turn in scene.turns:
        answered = " → ".join(
            turn.answered_by.get(step, "-").rpartition(":")[2] for step in ("ipa", "wba", "nga")
        )
        story = (
            Text(turn.narrative)
            if turn.status == "completed" and turn.narrative
            else Text(f"{turn.status}: {(turn.error or '-').splitlines()[0]}", style="bold red")
        )
        table.add_row(turn.player, turn.text, answered, story)
    return table


def plan_steps_table(scene: PlanSceneResult) -> Table:
    """The plan scene's step attempts, in order: plan version, step, attempt, who, outcome."""
    table = Table(
        title=f"the plan scene: {scene.status}, {scene.replans} replan(s)", title_justify="left"
    )
    for name in ("plan", "step", "attempt", "answered by", "outcome"):
        table.add_column(name)
    ran_by = {run.message_id: run.by for run in scene.executions}
    for record in scene.attempts:
        result = record.result
        outcome = (
            Text("ok", style="green")
            if result.ok
            else Text(f"failed: {result.error.message if result.error else '-'}", "yellow")
        )
        # Who ran the attempt's request (a failed one has no reply naming it).
        by = ran_by.get(f"run:{scene.run_id}:{record.key}", "-")
        table.add_row(str(record.plan_version), record.step_id, str(record.attempt), by, outcome)
    return table


def meeting_turns_table(scene: MeetingSceneResult) -> Table:
    """The meeting scene's turns, in order: who held each, and what was said (or not)."""
    table = Table(
        title=f"the meeting scene: {scene.status} ({scene.end_reason or '-'}), "
        f"{len(scene.timeouts)} timeout(s)",
        title_justify="left",
    )
    for name in ("turn", "speaker", "outcome", "said"):
        table.add_column(name)
    for turn in scene.turns:
        outcome = (
            Text("spoke", style="green")
            if turn.outcome == "spoke"
            else Text("timed out", style="yellow")
        )
        table.add_row(str(turn.turn), turn.agent, outcome, turn.said or "-")
    return table
