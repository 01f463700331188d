"""The agent runtime: ``AgentWorker`` (handlers, leases, shutdown) and its ``MessageContext``.

The public names are exported from :mod:`tta_agent_coordination`; this package imports
nothing on its own, so that importing one of its modules loads only what that one needs.
"""

__all__: list[str] = []
