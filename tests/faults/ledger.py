"""Accounting: every message reported enqueued is handled or dead-lettered, every duplicate
is explained by a fault.

Worker processes write ``handled`` lines to their ledgers (``worker_main.py``); the
producer remembers which sends reported ``delivered=True``. ``account`` compares them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Handling:
    """One handler start, as a worker process recorded it."""

    message_id: str
    attempt: int
    worker: str
    pid: int
    t: float
    """Wall-clock time the handler started (seconds since the epoch)."""


def read_ledger(directory: Path) -> list[Handling]:
    """Every ``handled`` line of every ledger in ``directory``, oldest first.

    A line cut short by a SIGKILL (the last one of a file, without its newline) is skipped:
    its handler had not finished, so the message was not acked and is redelivered.
    """
    records: list[Handling] = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("event") == "handled":
                records.append(
                    Handling(
                        message_id=entry["id"],
                        attempt=int(entry["attempt"]),
                        worker=entry["worker"],
                        pid=int(entry["pid"]),
                        t=float(entry["t"]),
                    )
                )
    records.sort(key=lambda h: h.t)
    return records


def handled_all(ids: Iterable[str], directory: Path) -> bool:
    """Whether every id in ``ids`` has been handled at least once (per the ledgers)."""
    handled = {h.message_id for h in read_ledger(directory)}
    return all(message_id in handled for message_id in ids)


@dataclass
class Accounting:
    """The outcome of :func:`account`."""

    delivered: int
    handled: int
    dead: int
    lost: set[str] = field(default_factory=set)
    duplicates: dict[str, list[Handling]] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)

    @property
    def redeliveries(self) -> int:
        """Handlings beyond the first of each message."""
        return sum(len(v) - 1 for v in self.duplicates.values())

    def assert_ok(self) -> None:
        """Fail with the details when a message was lost or a duplicate is unexplained."""
        assert not self.lost, (
            f"{len(self.lost)} of {self.delivered} messages reported delivered were neither "
            f"handled nor dead-lettered: {sorted(self.lost)[:20]}"
        )
        assert not self.unexplained, "unexplained duplicates:\n" + "\n".join(self.unexplained)


def account(
    delivered: Iterable[str],
    handled: list[Handling],
    dead: Iterable[str] = (),
    *,
    faulted: Callable[[Handling], bool],
) -> Accounting:
    """Check that nothing reported delivered was lost and that every duplicate is explained.

    Args:
        delivered: ids of the messages whose send reported ``delivered=True``.
        handled: every handling from the ledgers.
        dead: ids found in the dead-letter queues.
        faulted: whether a handling happened in a process or window hit by the fault (a
            killed or frozen worker, a lease lost to a freeze). A message handled more than
            once is explained when every handling but the last is ``faulted`` (its
            outcome never reached Redis), the attempts differ (no delivery was handed out
            twice) and the later handlings count the earlier deliveries (attempt > 1).
    """
    delivered_ids = set(delivered)
    dead_ids = set(dead)
    by_message: dict[str, list[Handling]] = defaultdict(list)
    for h in handled:
        by_message[h.message_id].append(h)
    result = Accounting(delivered=len(delivered_ids), handled=len(by_message), dead=len(dead_ids))
    result.lost = delivered_ids - by_message.keys() - dead_ids
    for message_id, handlings in by_message.items():
        if len(handlings) == 1:
            continue
        result.duplicates[message_id] = handlings
        ordered = sorted(handlings, key=lambda h: (h.attempt, h.t))
        attempts = [h.attempt for h in ordered]
        problems: list[str] = []
        if len(set(attempts)) != len(attempts):
            problems.append("one delivery (same attempt number) was handled twice")
        if any(not faulted(h) for h in ordered[:-1]):
            problems.append("an earlier handling was not hit by the fault")
        if ordered[-1].attempt <= 1:
            problems.append("the redelivery does not count the earlier delivery")
        if problems:
            result.unexplained.append(
                f"{message_id}: {'; '.join(problems)}: "
                + ", ".join(f"attempt {h.attempt} by {h.worker} at {h.t:.3f}" for h in ordered)
            )
    return result
