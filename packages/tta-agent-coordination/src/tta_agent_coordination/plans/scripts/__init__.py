"""Lua scripts of the plan runtime (``run_create``, ``run_advance``, ``run_restore``)."""

__all__: list[str] = []
