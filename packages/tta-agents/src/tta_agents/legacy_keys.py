"""Key names of the original TTA coordination layout (``agent_orchestration`` @ ``c0cad2da``).

The original ``RedisMessageCoordinator``, ``RedisAgentRegistry`` and circuit breaker wrote
these keys (see ``docs/tta-key-migration.md``); :mod:`tta_agents.migrate` reads them and
moves what they hold into the core's key space. Every legacy key name is built or parsed
here and nowhere else. ``inst`` is the agent's instance, ``"default"`` when it had none;
``type`` is the ``AgentType`` value (``input_processor`` ...).

=============================================  ======  ========================================
key                                            type    contents
=============================================  ======  ========================================
``{p}:sched:{type}:{inst}:prio:{1|5|9}``       ZSET    ``QueueMessage`` JSON, score due (µs)
``{p}:reserved:{type}:{inst}``                 HASH    token -> ``QueueMessage`` JSON
``{p}:reserved_deadlines:{type}:{inst}``       ZSET    token, score lease deadline (µs)
``{p}:dlq:{type}:{inst}``                      LIST    dead ``QueueMessage`` JSON (or raw)
``{p}:queue:{type}:{inst}``                    LIST    the "audit" list (not migrated)
``{p}:subs:{type}:{inst}``                     SET     subscribed ``MessageType`` values
``{p}:agents:{type}:{inst}`` / ``:index``      STRING  registry record JSON (``state``) / SET
``{p}:capabilities:{type}:{inst}`` / ``:index``  STRING  capability set JSON / SET
``{p}:cb:state:{name}``, ``{p}:cb:metrics:…``  STRING  breaker state / metrics JSON
=============================================  ======  ========================================

The migration's own journal lives beside them (``{p}:migrate:moved``). None of these keys
carries a hash tag: the legacy layout, and so its migration, is for one Redis server (not
a Cluster).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "LEGACY_PRIORITIES",
    "LegacyAgentKey",
    "LegacyKeys",
    "LegacyQueueKey",
]

LEGACY_PRIORITIES = (9, 5, 1)
"""The priorities of the original ``MessagePriority`` (HIGH, NORMAL, LOW), in receive order."""

DEFAULT_INSTANCE = "default"
"""How the original rendered ``instance=None`` in its keys."""

_GLOB = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    """``text`` with SCAN-pattern metacharacters escaped, so it matches only itself."""
    return _GLOB.sub(r"\\\1", text)


@dataclass(frozen=True, slots=True)
class LegacyAgentKey:
    """The ``(type, instance)`` pair a legacy per-agent key is named after."""

    type: str
    instance: str

    def __str__(self) -> str:
        return f"{self.type}:{self.instance}"


@dataclass(frozen=True, slots=True)
class LegacyQueueKey:
    """A parsed ``{p}:sched:{type}:{inst}:prio:{p}`` key."""

    agent: LegacyAgentKey
    priority: int


class LegacyKeys:
    """Builds and parses the original layout's key names under one prefix.

    Args:
        prefix: the original ``key_prefix`` (``"ao"`` by default); a trailing ``:`` is
            stripped, as the original did.
    """

    def __init__(self, prefix: str = "ao") -> None:
        self.prefix = prefix.rstrip(":")

    # --- the message coordinator -------------------------------------------------------

    def sched(self, agent: LegacyAgentKey, priority: int) -> str:
        """The zset of ready and delayed messages of one priority."""
        return f"{self.prefix}:sched:{agent}:prio:{priority}"

    def reserved(self, agent: LegacyAgentKey) -> str:
        """The hash of reservations (token -> payload)."""
        return f"{self.prefix}:reserved:{agent}"

    def reserved_deadlines(self, agent: LegacyAgentKey) -> str:
        """The zset of reservation deadlines (token, µs)."""
        return f"{self.prefix}:reserved_deadlines:{agent}"

    def dlq(self, agent: LegacyAgentKey) -> str:
        """The dead-letter list."""
        return f"{self.prefix}:dlq:{agent}"

    def audit(self, agent: LegacyAgentKey) -> str:
        """The "legacy/audit" list (backpressure gauge of the original; not migrated)."""
        return f"{self.prefix}:queue:{agent}"

    def subs(self, agent: LegacyAgentKey) -> str:
        """The set of message types the agent subscribed to."""
        return f"{self.prefix}:subs:{agent}"

    # --- the registry and the circuit breaker ------------------------------------------

    def agent(self, agent: LegacyAgentKey) -> str:
        """The registry record (JSON with an optional ``state``)."""
        return f"{self.prefix}:agents:{agent}"

    @property
    def agents_index(self) -> str:
        """The set of registry record keys."""
        return f"{self.prefix}:agents:index"

    def capabilities(self, agent: LegacyAgentKey) -> str:
        """The capability set JSON of one agent."""
        return f"{self.prefix}:capabilities:{agent}"

    def breaker_state(self, name: str) -> str:
        """A circuit breaker's persisted state."""
        return f"{self.prefix}:cb:state:{name}"

    # --- the migration's own keys ------------------------------------------------------

    @property
    def journal(self) -> str:
        """HASH ``"{type}:{inst}|{message_id}"`` -> ``"{fingerprint} {kind} {legacy key}"``.

        One field per message moved into the new key space, written in the same script
        that removes the legacy entry, so a re-run (or a second copy of the message left
        by the original's races) never moves it twice.
        """
        return f"{self.prefix}:migrate:moved"

    # --- SCAN patterns and parsing -----------------------------------------------------

    def pattern(self, kind: str) -> str:
        """The SCAN pattern of every key of ``kind`` (``sched``, ``reserved``, ``dlq`` ...)."""
        return f"{_glob_escape(self.prefix)}:{kind}:*"

    def _rest(self, key: str, kind: str) -> str | None:
        head = f"{self.prefix}:{kind}:"
        return key[len(head) :] if key.startswith(head) else None

    @staticmethod
    def _agent(rest: str) -> LegacyAgentKey | None:
        # The type is an AgentType value (no ':'); the instance may hold ':' (the original
        # never validated it), so only the first ':' separates them.
        agent_type, sep, instance = rest.partition(":")
        if not sep or not agent_type or not instance:
            return None
        return LegacyAgentKey(agent_type, instance)

    def parse_sched(self, key: str) -> LegacyQueueKey | None:
        """The agent and priority of a ``sched`` key, or None for another key."""
        rest = self._rest(key, "sched")
        if rest is None:
            return None
        head, sep, priority = rest.rpartition(":prio:")
        agent = self._agent(head) if sep else None
        if agent is None or not priority.isdigit():
            return None
        return LegacyQueueKey(agent, int(priority))

    def parse_agent_key(self, key: str, kind: str) -> LegacyAgentKey | None:
        """The agent of a per-agent key of ``kind`` (``reserved``, ``dlq``, ``subs`` ...).

        None for another kind, and for the registry's ``agents:index`` set.
        """
        rest = self._rest(key, kind)
        if rest is None or (kind in ("agents", "capabilities") and rest == "index"):
            return None
        return self._agent(rest)

    def parse_breaker(self, key: str) -> str | None:
        """The breaker name of a ``cb:state`` key, or None for another key."""
        rest = self._rest(key, "cb:state")
        return rest or None
