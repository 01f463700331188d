"""Redis back-ends: key names, Lua scripts, the coordinator."""
