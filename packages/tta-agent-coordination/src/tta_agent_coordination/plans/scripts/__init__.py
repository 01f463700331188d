"""Lua scripts of the plan runtime (``run_create.lua``, ``run_advance.lua``)."""

__all__: list[str] = []
