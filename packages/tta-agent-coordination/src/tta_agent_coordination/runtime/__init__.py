"""The agent runtime: ``AgentWorker`` (handlers, leases, shutdown) and request/reply.

The public names are exported from :mod:`tta_agent_coordination`; this package imports
nothing on its own so that the coordinator can use :mod:`.rpc` without a cycle.
"""

__all__: list[str] = []
