"""The Lua scripts of agent conversations (loaded by ``interactions/scripts.py``)."""

__all__: list[str] = []
