"""The Lua scripts of agent conversations (loaded by ``interactions/scripts.py``)."""
