"""Redis back-ends: key names, Lua scripts, the coordinator and the registry."""

__all__: list[str] = []
