"""Resilience: circuit breakers and retry policies around Redis calls and agent calls."""

from tta_agent_coordination.resilience.passthrough import PassthroughGuard

__all__ = ["PassthroughGuard"]
