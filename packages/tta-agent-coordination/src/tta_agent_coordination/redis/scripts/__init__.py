"""The Lua scripts (``<name>.lua``) and, beside each queue script, its typed call.

``<name>.py`` declares the script's arguments and outcome once: a ``call`` function
builds its KEYS and ARGV from named parameters (a
:class:`~tta_agent_coordination.redis.lua.ScriptCall`), and a ``NamedTuple`` names the
positions of what the script returns. The ``.lua`` files are package data, read by
:func:`tta_agent_coordination.redis.lua.script_source`.
"""

__all__: list[str] = []
