"""The web dashboard (``tta-coord dashboard``; the ``dashboard`` extra).

Server-rendered pages (Starlette + Jinja2) refreshed by htmx: live agents by type, queues
with depth, age and throughput sparklines, each queue's dead letters with detail, replay
and purge (behind a confirmation and a token), shared circuit breakers, plan runs (a
paged list, each run's steps and events, cancel behind the same token), and the Postgres
history of a message when a store is configured. See ``docs/observability.md``.

Needs ``pip install 'tta-agent-coordination[dashboard]'``; the core never imports it.
"""

from tta_agent_coordination.dashboard.app import create_app
from tta_agent_coordination.dashboard.serve import run_dashboard
from tta_agent_coordination.dashboard.sources import DashboardSources

__all__ = ["DashboardSources", "create_app", "run_dashboard"]
